// moemesh serve ROLE: one role of the mesh as its own process.
#include <csignal>
#include <iostream>

#include <spdlog/spdlog.h>

#include "services/cli/commands.h"
#include "services/expert_host/expert_host.h"

namespace moemesh::cli {
namespace {
std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop = true; }
}  // namespace

void add_serve_command(CLI::App& app) {
  auto* serve = app.add_subcommand("serve", "run one role of the mesh");
  serve->require_subcommand(1);
  struct Args { std::string model, experts, bind = "tcp://127.0.0.1:0"; };
  auto a = std::make_shared<Args>();
  auto* eh = serve->add_subcommand("expert-host", "serve a subset of routed experts over ZeroMQ");
  eh->add_option("--model", a->model, "checkpoint directory")->required();
  eh->add_option("--experts", a->experts, "expert ids held, e.g. 0-127 or 0-7,64-71 (default: all)");
  eh->add_option("--bind", a->bind, "ZeroMQ endpoint (tcp port 0: any free port)");
  eh->callback([a] {
    const ModelConfig cfg = ModelConfig::load(a->model);
    Checkpoint ckpt(a->model);
    const auto ids = a->experts.empty() ? ExpertSet::all(cfg)
                                        : parse_id_ranges(a->experts, static_cast<int32_t>(cfg.n_routed_experts));
    ExpertHost host(cfg, ckpt, ids);
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    ServeStats stats;
    serve_expert_host(host, a->bind, g_stop,
                      [&](const std::string& ep) {
                        // The first line on stdout is the endpoint, for whoever started us.
                        std::cout << ep << std::endl;
                        spdlog::info("expert host: {} experts of {} MoE layers on {}", ids.size(),
                                     cfg.num_hidden_layers - cfg.first_k_dense_replace + cfg.num_nextn_predict_layers, ep);
                      },
                      stats);
    spdlog::info("expert host: stopped after {} messages ({} bad)", stats.served.load(), stats.bad_frames.load());
  });
}

}  // namespace moemesh::cli
