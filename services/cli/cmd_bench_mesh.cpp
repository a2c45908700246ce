// moemesh bench-mesh: generation throughput of the whole mesh — every role in
// its own process over tcp loopback, every role as actors in one process over
// inproc — against the single-process engine under the same scheduler; bytes on
// the wire per token; MTP speculation's acceptance and speedup.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <thread>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "model/scheduler.h"
#include "services/attention/client.h"
#include "commands.h"
#include "services/mesh/mesh_launcher.h"

namespace moemesh::cli {
namespace {

using clock_type = std::chrono::steady_clock;

std::vector<std::vector<int32_t>> prompts(int batch, int64_t len, int64_t vocab) {
  std::vector<std::vector<int32_t>> out(batch);
  uint64_t x = 12345;
  for (auto& p : out)
    for (int64_t i = 0; i < len; ++i) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      p.push_back(static_cast<int32_t>((x >> 33) % vocab));
    }
  return out;
}

// The median of `runs` measurements.
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

// Tokens/s of `batch` concurrent requests in one process, one scheduler: a
// warm-up run, then the median of `repeat`.
double run_local(const std::string& model, int batch, int64_t prompt, int64_t n, int repeat) {
  EngineOptions eo;
  eo.kv_tokens = batch * (prompt + n + 64);
  eo.prefix_cache = false;  // the runs repeat the same prompts: each must compute them
  Engine e(model, eo);
  Scheduler s(e);
  const auto ps = prompts(batch, prompt, e.config().vocab_size);
  std::vector<double> runs;
  uint64_t id = 1;
  for (int r = 0; r <= repeat; ++r) {
    const auto t0 = clock_type::now();
    for (int i = 0; i < batch; ++i) s.submit({id++, ps[i], n, {}, {}});
    int64_t tokens = 0;
    while (!s.idle())
      for (const auto& ev : s.step()) tokens += ev.token >= 0;
    if (r > 0) runs.push_back(tokens / std::chrono::duration<double>(clock_type::now() - t0).count());
  }
  return median(runs);
}

struct ClientRun {
  double tokens_per_s = 0;
  int failed = 0;
  int64_t tokens = 0;
};

// Tokens/s of `batch` concurrent clients of a running mesh. A failed request is
// counted (and its reason logged), never fatal.
ClientRun run_clients(zmq::context_t& ctx, const std::string& attention, int batch, int64_t prompt, int64_t n, int64_t vocab) {
  const auto ps = prompts(batch, prompt, vocab);
  std::atomic<int64_t> tokens{0};
  std::atomic<int> failed{0};
  std::vector<std::thread> th;
  const auto t0 = clock_type::now();
  for (int i = 0; i < batch; ++i)
    th.emplace_back([&, i] {
      try {
        AttentionClient c(ctx, attention);
        GenerationRequest r;
        r.prompt = ps[i];
        r.max_new_tokens = n;
        const auto u = c.generate(r);
        tokens += static_cast<int64_t>(u.tokens.size());
        if (u.finish == FinishReason::Error) throw std::runtime_error(u.error);
      } catch (const std::exception& e) {
        ++failed;
        spdlog::warn("bench-mesh: request {} failed: {}", i, e.what());
      }
    });
  for (auto& t : th) t.join();
  ClientRun r;
  r.tokens = tokens;
  r.failed = failed;
  r.tokens_per_s = static_cast<double>(tokens) / std::chrono::duration<double>(clock_type::now() - t0).count();
  return r;
}

// A warm-up run, then the median tokens/s of `repeat` (failures of all of them summed).
ClientRun run_clients_repeated(zmq::context_t& ctx, const std::string& attention, int batch, int64_t prompt, int64_t n,
                               int64_t vocab, int repeat) {
  ClientRun out = run_clients(ctx, attention, batch, prompt, n, vocab);
  std::vector<double> runs;
  for (int r = 0; r < repeat; ++r) {
    const ClientRun one = run_clients(ctx, attention, batch, prompt, n, vocab);
    runs.push_back(one.tokens_per_s);
    out.failed += one.failed;
    out.tokens = one.tokens;
  }
  out.tokens_per_s = median(runs);
  return out;
}

int64_t moe_layers(const ModelConfig& mc) {
  int64_t n = 0;
  for (int64_t l = 0; l < mc.num_hidden_layers; ++l) n += mc.is_moe_layer(l) ? 1 : 0;
  return n;
}

}  // namespace

void add_bench_mesh_command(CLI::App& app) {
  struct Args {
    std::string model;
    std::vector<int> batches{1, 8, 32};
    int64_t prompt = 16, tokens = 32;
    int spec = 2, repeat = 3;
    std::vector<std::string> sets;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("bench-mesh", "throughput of the mesh against one process, wire bytes per token, MTP speedup");
  cmd->add_option("--model", a->model, "checkpoint directory")->required();
  cmd->add_option("--batches", a->batches, "concurrent requests")->delimiter(',');
  cmd->add_option("--prompt", a->prompt, "prompt tokens per request");
  cmd->add_option("--tokens", a->tokens, "new tokens per request");
  cmd->add_option("--speculative", a->spec, "drafts per step for the MTP rows");
  cmd->add_option("--repeat", a->repeat, "measured runs per cell after a warm-up (the median is shown)")->check(CLI::Range(1, 100));
  cmd->add_option("--set", a->sets, "override a cluster config value for every mesh run (repeatable)");
  cmd->callback([a] {
    const ModelConfig mc = ModelConfig::load(a->model);
    const std::string bin = self_binary();
    zmq::context_t ctx(1);
    auto config = [&](std::vector<std::string> sets, const std::string& transport) {
      sets.insert(sets.begin(), a->sets.begin(), a->sets.end());
      nlohmann::json j = load_cluster_json("", sets, transport);
      j["model"] = a->model;
      j["attention"]["kv_tokens"] = 64 * (a->prompt + a->tokens + 64);
      j["attention"]["prefix_cache"] = false;  // as in run_local: repeated prompts are computed each time
      return j;
    };
    const auto dir = std::filesystem::temp_directory_path() / ("moemesh-bench-" + std::to_string(getpid()));
    const int64_t layers = moe_layers(mc);
    // Like for like with one process on the same cores: one expert host holding
    // every expert and one micro-batch (two replicas and two micro-batches
    // overlap work only where roles have their own cores; shown apart).
    const std::vector<std::string> same_cores = {"attention.speculative=0", "mtp_draft.enabled=false",
                                                 R"(expert_hosts=[{"name": "experts-0", "experts": "all"}])",
                                                 "attention.micro_batches=1"};
    const std::vector<std::string> deployment = {"attention.speculative=0", "mtp_draft.enabled=false"};
    std::cout << "| batch | one process tok/s | mesh inproc tok/s | mesh tcp tok/s | tcp / one process |"
                 " tcp: added µs per MoE layer per step | tcp, 2 replica hosts, 2 micro-batches | failed requests |\n"
                 "|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    for (int b : a->batches) {
      const double local = run_local(a->model, b, a->prompt, a->tokens, a->repeat);
      ClientRun inproc, tcp, tcp2;
      {
        InProcessMesh m(ClusterConfig::from_json(config(same_cores, "inproc")), ctx);
        const auto ep = m.start();
        inproc = run_clients_repeated(ctx, ep.attention, b, a->prompt, a->tokens, mc.vocab_size, a->repeat);
      }
      {
        ProcessMesh m(bin, config(same_cores, "tcp"), dir, ctx);
        const auto ep = m.start();
        tcp = run_clients_repeated(ctx, ep.attention, b, a->prompt, a->tokens, mc.vocab_size, a->repeat);
      }
      {
        ProcessMesh m(bin, config(deployment, "tcp"), dir, ctx);
        const auto ep = m.start();
        tcp2 = run_clients_repeated(ctx, ep.attention, b, a->prompt, a->tokens, mc.vocab_size, a->repeat);
      }
      // A step makes `b` tokens: the mesh's extra time per step, spread over its MoE layers.
      const double added_us = layers > 0 && tcp.tokens_per_s > 0
                                  ? (b / tcp.tokens_per_s - b / local) / static_cast<double>(layers) * 1e6
                                  : 0.0;
      std::printf("| %d | %.1f | %.1f | %.1f | %.2f | %.0f | %.1f | %d |\n", b, local, inproc.tokens_per_s, tcp.tokens_per_s,
                  tcp.tokens_per_s / local, added_us, tcp2.tokens_per_s, inproc.failed + tcp.failed + tcp2.failed);
      std::fflush(stdout);
    }
    // Bytes between attention and the expert hosts per generated token (tcp, batch 8).
    std::cout << "\n| dispatch | bytes on the wire per token (to hosts and back) | tok/s |\n|---|---:|---:|\n";
    for (const char* d : {"f32", "bf16", "fp8"}) {
      ProcessMesh m(bin, config({"attention.speculative=0", "mtp_draft.enabled=false", std::string("dispatch.activations=") + d}, "tcp"), dir, ctx);
      const auto ep = m.start();
      const ClientRun run = run_clients(ctx, ep.attention, 8, a->prompt, a->tokens, mc.vocab_size);
      const auto st = AttentionClient(ctx, ep.attention).stats()["dispatch"];
      const double bytes = (st["bytes_sent"].get<double>() + st["bytes_received"].get<double>()) /
                           std::max<double>(1.0, static_cast<double>(run.tokens) + 8.0 * static_cast<double>(a->prompt));
      std::printf("| %s | %.0f | %.1f |\n", d, bytes, run.tokens_per_s);
    }
    // What CURVE costs (every hop authenticated and encrypted), like for like over tcp.
    std::cout << "\n| CURVE (tcp, one host) | batch | off tok/s | on tok/s | on / off |\n|---|---:|---:|---:|---:|\n";
    for (int b : {1, 8}) {
      double tps[2] = {0, 0};
      for (int on = 0; on < 2; ++on) {
        std::vector<std::string> sets = same_cores;
        sets.push_back(on ? "security.curve=on" : "security.curve=off");
        ProcessMesh m(bin, config(sets, "tcp"), dir, ctx);
        const auto ep = m.start();
        tps[on] = run_clients_repeated(ctx, ep.attention, b, a->prompt, a->tokens, mc.vocab_size, a->repeat).tokens_per_s;
      }
      std::printf("| | %d | %.1f | %.1f | %.2f |\n", b, tps[0], tps[1], tps[0] > 0 ? tps[1] / tps[0] : 0.0);
      std::fflush(stdout);
    }
    if (mc.num_nextn_predict_layers > 0 && a->spec > 0) {
      std::cout << "\n| speculation (batch 1, tcp mesh) | tok/s | acceptance per draft position |\n|---|---:|---|\n";
      for (int k : {0, a->spec}) {
        ProcessMesh m(bin, config({"attention.speculative=" + std::to_string(k)}, "tcp"), dir, ctx);
        const auto ep = m.start();
        const double tps = run_clients(ctx, ep.attention, 1, a->prompt, a->tokens * 4, mc.vocab_size).tokens_per_s;
        const auto st = AttentionClient(ctx, ep.attention).stats();
        std::string acc;
        for (size_t i = 0; i < st["drafted"].size(); ++i)
          acc += (i ? ", " : "") + std::to_string(st["accepted"][i].get<double>() / std::max(1.0, st["drafted"][i].get<double>())).substr(0, 4);
        std::printf("| k=%d | %.1f | %s |\n", k, tps, acc.empty() ? "-" : acc.c_str());
      }
    }
    std::filesystem::remove_all(dir);
  });
}

}  // namespace moemesh::cli
