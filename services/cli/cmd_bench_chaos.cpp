// moemesh bench-chaos: the mesh under faults, as an operator's worst week
// would have it. Every role its own process (two attention replicas, each with
// its mtp-draft, three expert hosts holding every expert twice, the router) and
// the gateway in this process; streaming clients over SSE and the WebSocket
// chat, half each; every 10-20 s a random role is SIGKILLed (and started again)
// or SIGSTOPped (and continued a few seconds later). Reports requests, failed
// requests, the longest wait a client saw, and memory before and after.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "chat_clients.h"
#include "commands.h"
#include "core/model_config.h"
#include "services/gateway/api.h"
#include "services/mesh/mesh_launcher.h"
#include "services/router/client.h"

namespace moemesh::cli {
namespace {

using Clock = std::chrono::steady_clock;

// Resident memory of a process in MiB (0 when it is gone).
double rss_mib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return 0;
}

// Each expert on two of the three hosts: host h holds e where e % 3 == h or (e + 1) % 3 == h.
std::string twice_over_three(int64_t n_experts, int h) {
  std::string ids;
  for (int64_t e = 0; e < n_experts; ++e)
    if (e % 3 == h || (e + 1) % 3 == h) ids += (ids.empty() ? "" : ",") + std::to_string(e);
  return ids;
}

struct Totals {
  std::mutex mu;
  uint64_t requests = 0, failed = 0, sse = 0, websocket = 0;
  double max_gap_ms = 0, max_first_ms = 0;
  std::vector<std::string> errors;  // the first few
};

}  // namespace

void add_bench_chaos_command(CLI::App& app) {
  struct Args {
    std::string model;
    double seconds = 300;
    int clients = 32;
    double every_min = 10, every_max = 20;
    int64_t max_tokens = 48;
    uint64_t seed = 1;
    bool json = false;
    std::vector<std::string> sets;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("bench-chaos", "streaming clients against the whole mesh while random roles are killed or stopped");
  cmd->add_option("--model", a->model, "checkpoint directory (with a tokenizer)")->required();
  cmd->add_option("--seconds", a->seconds, "how long the load and the faults run")->check(CLI::Range(5.0, 86400.0));
  cmd->add_option("--clients", a->clients, "streaming clients at once (half SSE, half WebSocket)")->check(CLI::Range(1, 1024));
  cmd->add_option("--fault-min", a->every_min, "seconds between faults, at least")->check(CLI::Range(1.0, 3600.0));
  cmd->add_option("--fault-max", a->every_max, "... and at most")->check(CLI::Range(1.0, 3600.0));
  cmd->add_option("--max-tokens", a->max_tokens, "tokens per answer")->check(CLI::Range(int64_t{1}, int64_t{4096}));
  cmd->add_option("--seed", a->seed, "which faults, when");
  cmd->add_option("--set", a->sets, "cluster config overrides (repeatable)");
  cmd->add_flag("--json", a->json, "print the report as JSON");
  cmd->callback([a] {
    if (a->every_max < a->every_min) throw CLI::ValidationError("--fault-max", "must be at least --fault-min");
    std::vector<std::string> sets{"attention.replicas=2"};
    sets.insert(sets.end(), a->sets.begin(), a->sets.end());
    nlohmann::json j = load_cluster_json("", sets, "tcp");
    j["model"] = a->model;
    const int64_t n_experts = ModelConfig::load(a->model).n_routed_experts;
    j["expert_hosts"] = nlohmann::json::array();
    for (int h = 0; h < 3; ++h)
      j["expert_hosts"].push_back({{"name", "experts-" + std::to_string(h)}, {"experts", n_experts > 0 ? twice_over_three(n_experts, h) : "all"}});
    const ClusterConfig config = ClusterConfig::from_json(j);
    zmq::context_t ctx(1);
    const auto dir = std::filesystem::temp_directory_path() / ("moemesh-chaos-" + std::to_string(getpid()));
    ProcessMesh mesh(self_binary(), j, dir, ctx);
    const MeshEndpoints ep = mesh.start([](const std::string& s) { spdlog::info("chaos: {}", s); });
    GatewayOptions go = config.gateway;
    go.port = 0;
    go.host = "127.0.0.1";
    go.max_inflight = std::max<size_t>(go.max_inflight, static_cast<size_t>(a->clients) * 2);
    GatewayService gateway(go, a->model, GatewayUpstream{ep.attention_replicas, ep.router}, ctx);
    const uint16_t port = gateway.start();

    auto mesh_rss = [&] {
      double sum = mesh.router().running() ? rss_mib(mesh.router().pid()) : 0;
      for (size_t i = 0; i < 3; ++i) sum += rss_mib(mesh.expert_host(i).pid());
      for (size_t i = 0; i < mesh.attention_replicas(); ++i) {
        sum += rss_mib(mesh.attention(i).pid());
        if (mesh.mtp(i)) sum += rss_mib(mesh.mtp(i)->pid());
      }
      return sum;
    };

    Totals t;
    std::atomic<bool> stop{false};
    auto client = [&](int c) {
      for (int k = 0; !stop; ++k) {
        const nlohmann::json body{{"model", "m"},
                                  {"messages", {{{"role", "user"}, {"content", "Tell of the days of old, reader " + std::to_string(c) + ", verse " + std::to_string(k)}}}},
                                  {"max_tokens", a->max_tokens},
                                  {"temperature", 0}};
        const bool ws = c % 2 == 1;
        const ChatOutcome o = ws ? chat_websocket("127.0.0.1", port, body) : chat_sse("127.0.0.1", port, body);
        std::lock_guard<std::mutex> lock(t.mu);
        ++t.requests;
        ++(ws ? t.websocket : t.sse);
        if (!o.ok) {
          ++t.failed;
          if (t.errors.size() < 8) t.errors.push_back((ws ? "websocket: " : "sse: ") + o.error);
        }
        t.max_gap_ms = std::max(t.max_gap_ms, o.max_gap_ms);
        t.max_first_ms = std::max(t.max_first_ms, o.first_ms);
      }
    };
    // A few requests first, so memory is measured warm.
    for (int c = 0; c < 2; ++c)
      (void)chat_sse("127.0.0.1", port, {{"model", "m"}, {"messages", {{{"role", "user"}, {"content", "Hello"}}}}, {"max_tokens", 8}});
    const double rss_before = mesh_rss(), self_before = rss_mib(getpid());

    std::vector<std::thread> clients;
    for (int c = 0; c < a->clients; ++c) clients.emplace_back(client, c);
    std::mt19937_64 rng(a->seed);
    std::uniform_real_distribution<double> every(a->every_min, a->every_max), pause(2.0, 5.0);
    nlohmann::json faults = nlohmann::json::array();
    const auto t0 = Clock::now();
    auto elapsed = [&] { return std::chrono::duration<double>(Clock::now() - t0).count(); };
    auto sleep_s = [](double s) { std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int64_t>(s * 1000))); };
    for (;;) {
      const double wait = every(rng);
      if (elapsed() + wait >= a->seconds) break;
      sleep_s(wait);
      // The victim: an expert host, an attention replica, an mtp-draft or the router.
      std::vector<std::string> roles{"experts-0", "experts-1", "experts-2", "attention-0", "attention-1", "router"};
      for (size_t i = 0; i < mesh.attention_replicas(); ++i)
        if (mesh.mtp(i)) roles.push_back("mtp-draft-" + std::to_string(i));
      const std::string victim = roles[rng() % roles.size()];
      const bool kill = rng() % 2 == 0;
      const size_t index = static_cast<size_t>(victim.back() - '0');
      ChildProcess& p = victim == "router" ? mesh.router()
                        : victim.rfind("experts", 0) == 0 ? mesh.expert_host(index)
                        : victim.rfind("attention", 0) == 0 ? mesh.attention(index)
                                                            : *mesh.mtp(index);
      const double at = elapsed();
      double down = 0;
      if (kill) {
        p.signal(SIGKILL);
        down = pause(rng) / 2;
        sleep_s(down);
        try {
          if (victim == "router") mesh.restart_router();
          else if (victim.rfind("experts", 0) == 0) mesh.restart_expert_host(index);
          else if (victim.rfind("attention", 0) == 0) mesh.restart_attention(index);
          else mesh.restart_mtp(index);
        } catch (const std::exception& e) {
          spdlog::error("chaos: {} did not come back: {}", victim, e.what());
          faults.push_back({{"at_s", at}, {"role", victim}, {"fault", "SIGKILL"}, {"restart_failed", e.what()}});
          continue;
        }
      } else {
        p.signal(SIGSTOP);
        down = pause(rng);
        sleep_s(down);
        p.signal(SIGCONT);
      }
      spdlog::info("chaos: {:.0f} s: {} {} for {:.1f} s", at, kill ? "SIGKILL" : "SIGSTOP", victim, down);
      faults.push_back({{"at_s", at}, {"role", victim}, {"fault", kill ? "SIGKILL" : "SIGSTOP"}, {"down_s", down}});
    }
    if (elapsed() < a->seconds) sleep_s(a->seconds - elapsed());
    stop = true;
    for (auto& c : clients) c.join();
    const double rss_after = mesh_rss(), self_after = rss_mib(getpid());
    gateway.stop();

    nlohmann::json report{{"seconds", a->seconds},
                          {"clients", a->clients},
                          {"requests", t.requests},
                          {"sse", t.sse},
                          {"websocket", t.websocket},
                          {"failed", t.failed},
                          {"errors", t.errors},
                          {"longest_gap_ms", t.max_gap_ms},
                          {"longest_first_token_ms", t.max_first_ms},
                          {"faults", faults},
                          {"mesh_rss_mib", {{"before", rss_before}, {"after", rss_after}}},
                          {"gateway_rss_mib", {{"before", self_before}, {"after", self_after}}}};
    if (a->json) {
      std::cout << report.dump(2) << std::endl;
    } else {
      std::printf("%.0f s, %d clients: %llu requests (%llu SSE, %llu WebSocket), %llu failed; %zu faults\n", a->seconds, a->clients,
                  static_cast<unsigned long long>(t.requests), static_cast<unsigned long long>(t.sse),
                  static_cast<unsigned long long>(t.websocket), static_cast<unsigned long long>(t.failed), faults.size());
      std::printf("longest wait between two pieces %.0f ms, before a first piece %.0f ms\n", t.max_gap_ms, t.max_first_ms);
      std::printf("memory: mesh roles %.0f -> %.0f MiB, gateway process %.0f -> %.0f MiB\n", rss_before, rss_after, self_before, self_after);
      for (const auto& f : faults) std::cout << "  " << f.dump() << "\n";
      for (const auto& e : t.errors) std::cout << "  failed: " << e << "\n";
    }
    mesh.stop();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  });
}

}  // namespace moemesh::cli
