// moemesh bench-mesh: generation throughput of the whole mesh — every role in
// its own process over tcp loopback, every role as actors in one process over
// inproc — against the single-process engine under the same scheduler; bytes on
// the wire per token; MTP speculation's acceptance and speedup.
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <iostream>

#include <nlohmann/json.hpp>

#include "model/scheduler.h"
#include "model/step_profile.h"
#include "services/attention/client.h"
#include "bench_clients.h"
#include "commands.h"
#include "services/mesh/mesh_launcher.h"

namespace moemesh::cli {
namespace {

int64_t moe_layers(const ModelConfig& mc) {
  int64_t n = 0;
  for (int64_t l = 0; l < mc.num_hidden_layers; ++l) n += mc.is_moe_layer(l) ? 1 : 0;
  return n;
}

struct LocalRun {
  double tokens_per_s = 0;
  double moe_us = 0;  // gate and routed experts, per MoE layer per step (one more, profiled run)
};

// Tokens/s of `batch` concurrent requests in one process, one scheduler: a
// warm-up run, then the median of `repeat`.
LocalRun run_local(const std::string& model, int batch, int64_t prompt, int64_t n, int repeat) {
  const ModelConfig mc = ModelConfig::load(model);
  LocalRunner local(model, /*k=*/0, /*adaptive=*/false, batch * (prompt + n + 64));
  const auto ps = random_prompts(batch, prompt, mc.vocab_size);
  local.run(ps, n);
  std::vector<double> runs;
  for (int r = 0; r < repeat; ++r) runs.push_back(local.run(ps, n));
  StepProfile profile;
  local.set_profile(&profile);
  const int64_t steps_before = local.steps();
  local.run(ps, n);
  local.set_profile(nullptr);
  const double calls = static_cast<double>((local.steps() - steps_before) * moe_layers(mc));
  const double moe = profile.seconds(OpClass::Gate) + profile.seconds(OpClass::RoutedExperts);
  return {median(runs), calls > 0 ? moe / calls * 1e6 : 0.0};
}

// Where a dispatcher's MoE call spends its time, µs per call, from the attention role's stats.
struct CallPhases {
  double gate = 0, send = 0, wait = 0, host = 0, sum = 0;
};
CallPhases call_phases(const nlohmann::json& dispatch) {
  const auto& p = dispatch.at("phase_seconds");
  const double calls = std::max(1.0, p.at("calls").get<double>());
  auto us = [&](const char* k) { return p.at(k).get<double>() / calls * 1e6; };
  return {us("gate"), us("send"), us("wait"), us("host_compute"), us("sum")};
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
    std::vector<std::pair<int, CallPhases>> phases;
    std::vector<double> local_moe_us;
    for (int b : a->batches) {
      const LocalRun one = run_local(a->model, b, a->prompt, a->tokens, a->repeat);
      const double local = one.tokens_per_s;
      ClientRun inproc, tcp, tcp2;
      {
        InProcessMesh m(ClusterConfig::from_json(config(same_cores, "inproc")), ctx);
        const auto ep = m.start();
        inproc = run_clients_repeated(ctx, ep.attention, random_prompts(b, a->prompt, mc.vocab_size), a->tokens, a->repeat);
      }
      {
        ProcessMesh m(bin, config(same_cores, "tcp"), dir, ctx);
        const auto ep = m.start();
        tcp = run_clients_repeated(ctx, ep.attention, random_prompts(b, a->prompt, mc.vocab_size), a->tokens, a->repeat);
        phases.emplace_back(b, call_phases(AttentionClient(ctx, ep.attention).stats()["dispatch"]));
        local_moe_us.push_back(one.moe_us);
      }
      {
        ProcessMesh m(bin, config(deployment, "tcp"), dir, ctx);
        const auto ep = m.start();
        tcp2 = run_clients_repeated(ctx, ep.attention, random_prompts(b, a->prompt, mc.vocab_size), a->tokens, a->repeat);
      }
      // A step makes `b` tokens: the mesh's extra time per step, spread over its MoE layers.
      const double added_us = layers > 0 && tcp.tokens_per_s > 0
                                  ? (b / tcp.tokens_per_s - b / local) / static_cast<double>(layers) * 1e6
                                  : 0.0;
      std::printf("| %d | %.1f | %.1f | %.1f | %.2f | %.0f | %.1f | %d |\n", b, local, inproc.tokens_per_s, tcp.tokens_per_s,
                  tcp.tokens_per_s / local, added_us, tcp2.tokens_per_s, inproc.failed + tcp.failed + tcp2.failed);
      std::fflush(stdout);
    }
    // The tcp mesh's MoE call, phase by phase, beside one process's gate and routed experts.
    std::cout << "\n| batch | one process: gate + routed experts µs per MoE layer per step | tcp mesh, µs per MoE call: gate |"
                 " pack and send | wait for answers | of which host compute | sum | total |\n"
                 "|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    for (size_t i = 0; i < phases.size(); ++i) {
      const CallPhases& p = phases[i].second;
      std::printf("| %d | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f |\n", phases[i].first, local_moe_us[i], p.gate, p.send,
                  p.wait, p.host, p.sum, p.gate + p.send + p.wait + p.sum);
    }
    // Bytes between attention and the expert hosts per generated token (tcp, batch 8).
    std::cout << "\n| dispatch | bytes on the wire per token (to hosts and back) | tok/s |\n|---|---:|---:|\n";
    for (const char* d : {"f32", "bf16", "fp8"}) {
      ProcessMesh m(bin, config({"attention.speculative=0", "mtp_draft.enabled=false", std::string("dispatch.activations=") + d}, "tcp"), dir, ctx);
      const auto ep = m.start();
      const ClientRun run = run_clients(ctx, ep.attention, random_prompts(8, a->prompt, mc.vocab_size), a->tokens);
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
        tps[on] = run_clients_repeated(ctx, ep.attention, random_prompts(b, a->prompt, mc.vocab_size), a->tokens, a->repeat).tokens_per_s;
      }
      std::printf("| | %d | %.1f | %.1f | %.2f |\n", b, tps[0], tps[1], tps[0] > 0 ? tps[1] / tps[0] : 0.0);
      std::fflush(stdout);
    }
    if (mc.num_nextn_predict_layers > 0 && a->spec > 0) {
      std::cout << "\n| speculation (batch 1, tcp mesh) | tok/s | acceptance per draft position |\n|---|---:|---|\n";
      for (int k : {0, a->spec}) {
        ProcessMesh m(bin, config({"attention.speculative=" + std::to_string(k)}, "tcp"), dir, ctx);
        const auto ep = m.start();
        const double tps = run_clients(ctx, ep.attention, random_prompts(1, a->prompt, mc.vocab_size), a->tokens * 4).tokens_per_s;
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
