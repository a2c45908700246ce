// moemesh bench-replicas: what more attention replicas give. The same mesh
// (every role its own process, the expert hosts of the config) with 1, 2, ...
// replicas behind the gateway, one after the other in one run; WebSocket
// clients stream chats for a fixed time; generated tokens per second of each.
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "chat_clients.h"
#include "commands.h"
#include "services/gateway/api.h"
#include "services/mesh/mesh_launcher.h"

namespace moemesh::cli {

void add_bench_replicas_command(CLI::App& app) {
  struct Args {
    std::string model;
    std::vector<int> replicas{1, 2};
    int clients = 16;
    double seconds = 20;
    int64_t max_tokens = 64;
    std::string routing = "least_load";
    std::vector<std::string> sets;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("bench-replicas", "tokens per second with 1, 2, ... attention replicas behind the gateway");
  cmd->add_option("--model", a->model, "checkpoint directory (with a tokenizer)")->required();
  cmd->add_option("--replicas", a->replicas, "replica counts to run, in order")->delimiter(',')->check(CLI::Range(1, 64));
  cmd->add_option("--clients", a->clients, "WebSocket clients streaming at once")->check(CLI::Range(1, 1024));
  cmd->add_option("--seconds", a->seconds, "load per replica count")->check(CLI::Range(1.0, 3600.0));
  cmd->add_option("--max-tokens", a->max_tokens, "tokens per answer")->check(CLI::Range(int64_t{1}, int64_t{4096}));
  cmd->add_option("--routing", a->routing, "gateway.routing")->check(CLI::IsMember({"cache_aware", "least_load", "round_robin"}));
  cmd->add_option("--set", a->sets, "cluster config overrides (repeatable)");
  cmd->callback([a] {
    std::printf("| attention replicas | requests | failed | generated tok/s | ratio to the first |\n|---:|---:|---:|---:|---:|\n");
    double first = 0;
    for (int n : a->replicas) {
      std::vector<std::string> sets = a->sets;
      sets.push_back("attention.replicas=" + std::to_string(n));
      nlohmann::json j = load_cluster_json("", sets, "tcp");
      j["model"] = a->model;
      const ClusterConfig config = ClusterConfig::from_json(j);
      zmq::context_t ctx(1);
      const auto dir = std::filesystem::temp_directory_path() / ("moemesh-replicas-" + std::to_string(getpid()) + "-" + std::to_string(n));
      double tps = 0;
      uint64_t requests = 0, failed = 0;
      {
        ProcessMesh mesh(self_binary(), j, dir, ctx);
        const MeshEndpoints ep = mesh.start();
        GatewayOptions go = config.gateway;
        go.port = 0;
        go.host = "127.0.0.1";
        go.routing = a->routing;
        go.max_inflight = std::max<size_t>(go.max_inflight, static_cast<size_t>(a->clients) * 2);
        GatewayService gateway(go, a->model, GatewayUpstream{ep.attention_replicas, ep.router}, ctx);
        const uint16_t port = gateway.start();
        auto chat = [&](int c, int k, int64_t max_tokens) {
          const nlohmann::json body{{"model", "m"},
                                    {"messages", {{{"role", "user"}, {"content", "Tell of the days of old, reader " + std::to_string(c) + ", verse " + std::to_string(k)}}}},
                                    {"max_tokens", max_tokens},
                                    {"temperature", 0}};
          return chat_websocket("127.0.0.1", port, body);
        };
        // Every replica known and warm before the clock starts.
        std::this_thread::sleep_for(std::chrono::milliseconds(1500));
        for (int w = 0; w < 2 * n; ++w) (void)chat(-1, w, 8);
        std::mutex mu;
        int64_t tokens = 0;
        std::atomic<bool> stop{false};
        std::vector<std::thread> clients;
        const auto t0 = std::chrono::steady_clock::now();
        for (int c = 0; c < a->clients; ++c)
          clients.emplace_back([&, c] {
            for (int k = 0; !stop; ++k) {
              const ChatOutcome o = chat(c, k, a->max_tokens);
              std::lock_guard<std::mutex> lock(mu);
              ++requests;
              if (!o.ok) ++failed;
              tokens += o.completion_tokens;
            }
          });
        std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int64_t>(a->seconds * 1000)));
        stop = true;
        for (auto& t : clients) t.join();
        tps = static_cast<double>(tokens) / std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        gateway.stop();
        mesh.stop();
      }
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
      if (first == 0) first = tps;
      std::printf("| %d | %llu | %llu | %.1f | %.2f |\n", n, static_cast<unsigned long long>(requests), static_cast<unsigned long long>(failed), tps,
                  first > 0 ? tps / first : 0.0);
      std::fflush(stdout);
    }
  });
}

}  // namespace moemesh::cli
