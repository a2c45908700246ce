// moemesh eval: logits of every position for given sequences, for comparing
// implementations (docs/EVAL.md).
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <spdlog/spdlog.h>

#include "model/eval.h"
#include "services/attention/client.h"
#include "services/expert_host/api.h"
#include "services/expert_host/client.h"
#include "commands.h"
#include "engine_flags.h"
#include "services/mesh/mesh_eval.h"
#include "services/mesh/mesh_launcher.h"

namespace moemesh::cli {

void add_eval_command(CLI::App& app) {
  struct Args {
    std::string model, input, out, wire = "f32";
    EngineFlags engine;
    std::vector<std::string> hosts, sets;
    bool mesh = false;
    std::string config;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("eval", "run token sequences through the model and write every position's logits");
  cmd->add_option("--model", a->model, "checkpoint directory")->required();
  cmd->add_option("--input", a->input, "input JSON: {\"sequences\": [[ids...]], \"greedy\": {...}}")->required();
  cmd->add_option("--out", a->out, "output JSON")->required();
  add_engine_flags(*cmd, a->engine, /*mla=*/true);
  cmd->add_option("--expert-host", a->hosts,
                  "run routed experts on expert hosts: ENDPOINT=IDS, e.g. tcp://127.0.0.1:5555=0-7 (repeatable)");
  cmd->add_option("--wire", a->wire, "activations sent to expert hosts")->check(CLI::IsMember({"f32", "bf16", "fp8"}));
  cmd->add_flag("--mesh", a->mesh,
                "run through the mesh: router, expert hosts, mtp-draft and attention each in its own process over tcp loopback");
  cmd->add_option("--config", a->config, "with --mesh: cluster config (default: two expert hosts holding every expert)");
  cmd->add_option("--set", a->sets, "with --mesh: override a config value (repeatable)");
  cmd->callback([a] {
    std::ifstream in(a->input);
    if (!in) throw std::runtime_error("cannot open " + a->input);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      throw std::runtime_error(a->input + ": invalid JSON: " + e.what());
    }
    const EvalRequest req = EvalRequest::from_json(j);
    if (a->mesh) {
      // f32 on every hop unless --wire says otherwise, so the mesh can be compared exactly.
      std::vector<std::string> sets{"dispatch.activations=" + a->wire, "compute=" + a->engine.compute,
                                    "attention.kv_cache_dtype=" + a->engine.kv_dtype};
      if (a->engine.mla != "auto") throw CLI::ValidationError("--mla", "is not a setting of the mesh (eval without --mesh)");
      sets.insert(sets.end(), a->sets.begin(), a->sets.end());
      nlohmann::json cj = load_cluster_json(a->config, sets, "tcp");
      cj["model"] = a->model;
      int64_t tokens = 0;
      for (const auto& s : req.sequences) tokens += static_cast<int64_t>(s.size());
      cj["attention"]["kv_tokens"] = std::max<int64_t>(cj["attention"].value("kv_tokens", int64_t{16384}),
                                                        tokens + static_cast<int64_t>(req.greedy_prompt.size()) + req.greedy_new_tokens + 1024);
      const std::string bin = self_binary();
      zmq::context_t ctx(1);
      const auto dir = std::filesystem::temp_directory_path() / ("moemesh-eval-" + std::to_string(getpid()));
      nlohmann::json out;
      {
        ProcessMesh mesh(bin, cj, dir, ctx);
        const MeshEndpoints ep = mesh.start([](const std::string& s) { spdlog::info("eval --mesh: {}", s); });
        AttentionClient client(ctx, ep.attention);
        const ModelConfig mc = ModelConfig::load(a->model);
        out = run_eval_on_mesh(client, req, mc.vocab_size, !ep.mtp.empty());
      }
      std::filesystem::remove_all(dir);
      std::ofstream o(a->out);
      o << out.dump() << "\n";
      if (!o) throw std::runtime_error("cannot write " + a->out);
      spdlog::info("eval --mesh: {} sequences -> {}", req.sequences.size(), a->out);
      return;
    }
    EngineOptions opts = a->engine.options();
    int64_t tokens = 0;
    for (const auto& s : req.sequences) tokens += static_cast<int64_t>(s.size());
    opts.kv_tokens = std::max<int64_t>(opts.kv_tokens, tokens + req.greedy_prompt.size() + req.greedy_new_tokens + 1024);
    if (!a->hosts.empty()) {
      // The mesh's own dispatch, with a fixed placement instead of the router's table.
      std::vector<StaticExpertHost> hosts;
      const ModelConfig cfg = ModelConfig::load(a->model);
      for (const auto& spec : a->hosts) {
        const size_t eq = spec.rfind('=');
        if (eq == std::string::npos) throw CLI::ValidationError("--expert-host", "'" + spec + "' is not ENDPOINT=IDS");
        hosts.push_back({spec.substr(0, eq), spec.substr(0, eq), "",
                         parse_id_ranges(spec.substr(eq + 1), static_cast<int32_t>(cfg.n_routed_experts))});
      }
      DispatcherOptions d;
      d.name = "eval";
      d.activations = *wire_activations_from_name(a->wire);
      auto ctx = std::make_shared<zmq::context_t>(1);
      opts.make_moe = [hosts, d, ctx](const ModelConfig& c, const Checkpoint& ck, const std::vector<int64_t>& layers) {
        return std::make_unique<ExpertDispatcher>(*ctx, c, ck, layers, hosts, d);
      };
    }
    Engine engine(a->model, opts);
    const nlohmann::json out = run_eval(engine, req);
    std::ofstream o(a->out);
    o << out.dump() << "\n";
    if (!o) throw std::runtime_error("cannot write " + a->out);
    spdlog::info("eval: {} sequences, {} tokens -> {}", req.sequences.size(), tokens, a->out);
  });
}

}  // namespace moemesh::cli
