// moemesh bench-speculative: tokens/s with MTP speculation off, adaptive, and at
// a fixed draft length, at several batch sizes, in one process and over the tcp
// mesh (every role its own process), with acceptance per draft position. Greedy,
// so every mode emits the same tokens; prompts cut from a real text where one is
// given (random prompts meet no acceptance a model could have learned).
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <iostream>

#include <nlohmann/json.hpp>

#include "bench_clients.h"
#include "commands.h"
#include "text_file.h"
#include "services/attention/client.h"
#include "services/mesh/mesh_launcher.h"

namespace moemesh::cli {
namespace {

// off: no drafts; adaptive: up to kMaxDrafts, as many as pay; K: always K.
struct Mode {
  std::string name;
  int k = 0;
  bool adaptive = false;
};
constexpr int kMaxDrafts = 3;

Mode parse_mode(const std::string& m) {
  if (m == "off") return {m, 0, false};
  if (m == "adaptive") return {m, kMaxDrafts, true};
  try {
    size_t used = 0;
    const int k = std::stoi(m, &used);
    if (used == m.size() && k >= 1 && k <= 8) return {"k=" + m, k, false};
  } catch (const std::exception&) {
  }
  throw CLI::ValidationError("--modes", "'" + m + "' is not off, adaptive or a draft length 1..8");
}

struct Cell {
  double tokens_per_s = 0;
  std::string acceptance;  // per draft position
  int failed = 0;
};

// Per draft position: "accepted/drafted as a rate (drafted)", "-" where never drafted.
std::string acceptance_of(const std::vector<int64_t>& drafted, const std::vector<int64_t>& accepted) {
  std::string s;
  for (size_t i = 0; i < drafted.size() && i < accepted.size(); ++i) {
    char b[48];
    if (drafted[i] == 0) std::snprintf(b, sizeof b, "%s-", i ? ", " : "");
    else std::snprintf(b, sizeof b, "%s%.2f (%lld)", i ? ", " : "", static_cast<double>(accepted[i]) / static_cast<double>(drafted[i]),
                       static_cast<long long>(drafted[i]));
    s += b;
  }
  return s.empty() ? "-" : s;
}

// `count` configurations measured in rounds, one run (its tokens/s) of each per
// round after a warm-up round, so that the machine's slow spells fall on every
// one: per configuration the median tokens/s and the median of its per-round
// ratio to the first.
std::vector<std::pair<double, double>> interleaved(size_t count, int repeat, const std::function<double(size_t)>& run) {
  std::vector<std::vector<double>> tps(count), ratios(count);
  for (int r = 0; r <= repeat; ++r) {
    std::vector<double> round;
    for (size_t i = 0; i < count; ++i) round.push_back(run(i));
    if (r == 0) continue;
    for (size_t i = 0; i < count; ++i) {
      tps[i].push_back(round[i]);
      ratios[i].push_back(round[0] > 0 ? round[i] / round[0] : 0.0);
    }
  }
  std::vector<std::pair<double, double>> out;
  for (size_t i = 0; i < count; ++i) out.emplace_back(median(tps[i]), median(ratios[i]));
  return out;
}

// Every mode in one process, interleaved.
std::vector<std::pair<Cell, double>> run_local(const std::string& model, const std::vector<Mode>& modes,
                                               const std::vector<std::vector<int32_t>>& ps, int64_t n, int repeat) {
  const int64_t kv = static_cast<int64_t>(ps.size()) * (static_cast<int64_t>(ps[0].size()) + n + 64);
  std::vector<std::unique_ptr<LocalRunner>> runners;
  for (const auto& m : modes) runners.push_back(std::make_unique<LocalRunner>(model, m.k, m.adaptive, kv));
  const auto rates = interleaved(modes.size(), repeat, [&](size_t i) { return runners[i]->run(ps, n); });
  std::vector<std::pair<Cell, double>> out;
  for (size_t i = 0; i < modes.size(); ++i) {
    Cell c;
    c.tokens_per_s = rates[i].first;
    c.acceptance = acceptance_of(runners[i]->speculation().drafted, runners[i]->speculation().accepted);
    out.emplace_back(c, rates[i].second);
  }
  return out;
}

// The same over the tcp mesh: every mode's mesh started first and left
// running, then the rounds interleaved across them (meshes
// started and measured one after another met different slow spells of the
// shared machine: ±10 % between modes that draft nothing).
std::vector<std::pair<Cell, double>> run_meshes(const std::vector<nlohmann::json>& configs, const std::filesystem::path& dir,
                                                zmq::context_t& ctx, const std::vector<std::vector<int32_t>>& ps, int64_t n,
                                                int repeat) {
  const std::string bin = self_binary();
  std::vector<std::unique_ptr<ProcessMesh>> meshes;
  std::vector<std::string> attention;
  for (size_t i = 0; i < configs.size(); ++i) {
    meshes.push_back(std::make_unique<ProcessMesh>(bin, configs[i], dir / ("mode-" + std::to_string(i)), ctx));
    attention.push_back(meshes.back()->start().attention);
  }
  std::vector<int> failed(configs.size(), 0);
  const auto rates = interleaved(configs.size(), repeat, [&](size_t i) {
    const ClientRun run = run_clients(ctx, attention[i], ps, n);
    failed[i] += run.failed;
    return run.tokens_per_s;
  });
  std::vector<std::pair<Cell, double>> out;
  for (size_t i = 0; i < configs.size(); ++i) {
    const auto st = AttentionClient(ctx, attention[i]).stats();
    Cell c;
    c.tokens_per_s = rates[i].first;
    c.failed = failed[i];
    c.acceptance = acceptance_of(st["drafted"].get<std::vector<int64_t>>(), st["accepted"].get<std::vector<int64_t>>());
    out.emplace_back(c, rates[i].second);
  }
  return out;
}

}  // namespace

void add_bench_speculative_command(CLI::App& app) {
  struct Args {
    std::string model, text, tokenizer;
    std::vector<int> batches{1, 4, 8, 32};
    std::vector<std::string> modes{"off", "adaptive", "1", "2", "3"};
    int64_t prompt = 32, tokens = 64;
    int repeat = 3;
    bool mesh = true;
    std::vector<std::string> sets;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("bench-speculative",
                                 "tokens/s with MTP speculation off, adaptive and at fixed draft lengths, in one process and over the tcp mesh");
  cmd->add_option("--model", a->model, "checkpoint directory (with an MTP module)")->required();
  cmd->add_option("--text", a->text, "cut the prompts from this UTF-8 text (default: random token ids)");
  cmd->add_option("--tokenizer", a->tokenizer, "with --text: tokenizer directory (default: the model directory)");
  cmd->add_option("--batches", a->batches, "concurrent requests")->delimiter(',')->capture_default_str();
  cmd->add_option("--modes", a->modes, "off, adaptive (up to 3 drafts) or a fixed draft length; the first is the one the others are compared with")->delimiter(',')->capture_default_str();
  cmd->add_option("--prompt", a->prompt, "prompt tokens per request")->check(CLI::Range(int64_t{1}, int64_t{4096}))->capture_default_str();
  cmd->add_option("--tokens", a->tokens, "new tokens per request")->check(CLI::Range(int64_t{1}, int64_t{4096}))->capture_default_str();
  cmd->add_option("--repeat", a->repeat, "measured runs per cell after a warm-up (the median is shown)")->check(CLI::Range(1, 100));
  cmd->add_flag("!--no-mesh", a->mesh, "one process only");
  cmd->add_option("--set", a->sets, "override a cluster config value for every mesh run (repeatable)");
  cmd->callback([a] {
    std::vector<Mode> modes;
    for (const auto& m : a->modes) modes.push_back(parse_mode(m));
    const ModelConfig mc = ModelConfig::load(a->model);
    if (mc.num_nextn_predict_layers == 0)
      for (const auto& m : modes)
        if (m.k > 0) throw CLI::ValidationError("--modes", a->model + " has no MTP module to draft with: only 'off' applies");
    std::vector<int32_t> text;
    if (!a->text.empty()) text = tokenize_file(a->text, a->tokenizer.empty() ? a->model : a->tokenizer);
    auto prompts_for = [&](int b) {
      return text.empty() ? random_prompts(b, a->prompt, mc.vocab_size) : text_prompts(text, b, a->prompt);
    };
    zmq::context_t ctx(1);
    const auto dir = std::filesystem::temp_directory_path() / ("moemesh-bench-spec-" + std::to_string(getpid()));
    const int max_batch = *std::max_element(a->batches.begin(), a->batches.end());
    // Like for like with one process: one expert host holding every expert, one
    // micro-batch, the drafter in its own process.
    auto config = [&](const Mode& m) {
      std::vector<std::string> sets{R"(expert_hosts=[{"name": "experts-0", "experts": "all"}])", "attention.micro_batches=1",
                                    "attention.speculative=" + std::to_string(m.k),
                                    std::string("attention.speculative_adaptive=") + (m.adaptive ? "true" : "false"),
                                    std::string("mtp_draft.enabled=") + (m.k > 0 ? "true" : "false")};
      sets.insert(sets.end(), a->sets.begin(), a->sets.end());
      nlohmann::json j = load_cluster_json("", sets, "tcp");
      j["model"] = a->model;
      j["attention"]["kv_tokens"] = (max_batch + 4) * (a->prompt + a->tokens + 64);
      j["attention"]["prefix_cache"] = false;
      return j;
    };
    const std::string first = modes.front().name;
    std::cout << "| batch | mode | one process tok/s | / " << first << " (per round) | acceptance per position | tcp mesh tok/s | / " << first
              << " (per round) | acceptance per position | failed |\n"
                 "|---:|---|---:|---:|---|---:|---:|---|---:|\n";
    for (int b : a->batches) {
      const auto ps = prompts_for(b);
      const auto locals = run_local(a->model, modes, ps, a->tokens, a->repeat);
      std::vector<std::pair<Cell, double>> meshes;
      if (a->mesh) {
        std::vector<nlohmann::json> configs;
        for (const auto& m : modes) configs.push_back(config(m));
        meshes = run_meshes(configs, dir, ctx, ps, a->tokens, a->repeat);
      }
      for (size_t mi = 0; mi < modes.size(); ++mi) {
        const Mode& m = modes[mi];
        const Cell& local = locals[mi].first;
        char tcp[256] = "| - | - | - | - |";
        if (a->mesh) {
          const Cell& mesh = meshes[mi].first;
          std::snprintf(tcp, sizeof tcp, "| %.1f | %.2f | %s | %d |", mesh.tokens_per_s, meshes[mi].second, mesh.acceptance.c_str(),
                        mesh.failed);
        }
        std::printf("| %d | %s | %.1f | %.2f | %s %s\n", b, m.name.c_str(), local.tokens_per_s, locals[mi].second,
                    local.acceptance.c_str(), tcp);
        std::fflush(stdout);
      }
    }
    std::filesystem::remove_all(dir);
  });
}

}  // namespace moemesh::cli
