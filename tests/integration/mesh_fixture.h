// A whole mesh for an integration test: every role its own `moemesh serve`
// process on 127.0.0.1, over the tiny fp8 test model.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "services/attention/client.h"
#include "services/router/client.h"
#include "services/mesh/mesh_launcher.h"
#include "tests/support/test_models.h"

namespace moemesh::testing {

inline std::string moemesh_bin() {
  const char* b = std::getenv("MOEMESH_BIN");
  return b ? b : "moemesh";
}

// Polls `f` until it holds or `limit` passes.
template <class F>
bool eventually(F f, std::chrono::seconds limit = std::chrono::seconds(30)) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (f()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

// One expert host holding every expert.
inline const char* kOneHost = R"(expert_hosts=[{"name": "experts-0", "experts": "all"}])";

struct TestMesh {
  zmq::context_t ctx{1};
  std::unique_ptr<ProcessMesh> mesh;
  MeshEndpoints ep;

  TestMesh(const std::string& tag, const std::vector<std::string>& sets, const std::string& model = {}) {
    nlohmann::json j = load_cluster_json("", sets, "tcp");
    j["model"] = model.empty() ? test_model("tiny", true).string() : model;
    mesh = std::make_unique<ProcessMesh>(moemesh_bin(), j, temp_dir(tag), ctx);
    ep = mesh->start();
  }
  ~TestMesh() { mesh->stop(); }

  nlohmann::json router_stats() { return moemesh::router_stats(ctx, ep.router); }
  // The attention role's dispatcher: calls, failed_calls, retries by reason, hosts.
  nlohmann::json dispatch_stats() { return AttentionClient(ctx, ep.attention).stats()["dispatch"]; }
  // A host's entry in the dispatcher's stats (null until the dispatcher has it).
  static nlohmann::json dispatch_host(const nlohmann::json& dispatch, const std::string& name) {
    return dispatch["hosts"].contains(name) ? dispatch["hosts"][name] : nlohmann::json::object();
  }
  bool host_up(const std::string& name) { return dispatch_host(dispatch_stats(), name).value("up", false); }
  int64_t host_dispatches(const std::string& name) { return dispatch_host(dispatch_stats(), name).value("dispatches", int64_t{0}); }
  uint64_t retries(const nlohmann::json& dispatch, const std::string& reason = {}) {
    uint64_t n = 0;
    for (const auto& [k, v] : dispatch["retries"].items())
      if (reason.empty() || k == reason) n += v.get<uint64_t>();
    return n;
  }
  const nlohmann::json* host_entry(const nlohmann::json& stats, const std::string& name) {
    for (const auto& h : stats["hosts"])
      if (h["name"] == name) return &h;
    return nullptr;
  }
};

// How late this process's own thread wakes from 10 ms sleeps, at worst, while
// it lives: how much the shared machine stalled everything (a timing assertion
// allows for that much more, and says so).
class StallWatch {
 public:
  StallWatch()
      : thread_([this] {
          while (!stop_) {
            const auto t0 = std::chrono::steady_clock::now();
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
            const double late = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() - 10;
            double seen = worst_.load();
            while (late > seen && !worst_.compare_exchange_weak(seen, late)) {
            }
          }
        }) {}
  ~StallWatch() {
    stop_ = true;
    thread_.join();
  }
  double worst_ms() const { return worst_.load(); }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<double> worst_{0};
  std::thread thread_;
};

// `n` streaming generations of `tokens` tokens each on their own threads, with
// the longest gap between two updates of any one stream (after its first).
struct StreamLoad {
  std::vector<TokensUpdate> results;
  std::vector<std::string> errors;
  std::vector<double> max_gap_ms;
  std::vector<std::thread> threads;
  std::atomic<int> tokens_seen{0};

  StreamLoad(TestMesh& m, int n, int64_t tokens, uint64_t seed) : results(n), errors(n), max_gap_ms(n, 0.0) {
    for (int i = 0; i < n; ++i)
      threads.emplace_back([&m, this, i, tokens, seed] {
        try {
          AttentionClient c(m.ctx, m.ep.attention);
          GenerationRequest r;
          r.prompt = random_tokens(6 + i % 5, 1024, seed + i);
          r.max_new_tokens = tokens;
          auto last = std::chrono::steady_clock::time_point{};
          results[i] = c.generate(r, [&](const TokensUpdate& u) {
            const auto now = std::chrono::steady_clock::now();
            if (last != std::chrono::steady_clock::time_point{})
              max_gap_ms[i] = std::max(max_gap_ms[i], std::chrono::duration<double, std::milli>(now - last).count());
            last = now;
            tokens_seen += static_cast<int>(u.tokens.size());
          });
        } catch (const std::exception& e) {
          errors[i] = e.what();
        }
      });
  }
  // Joins; every request got all its tokens. Returns the longest stall of any stream.
  double expect_all_complete(size_t tokens) {
    for (auto& t : threads) t.join();
    threads.clear();
    double worst = 0;
    for (size_t i = 0; i < results.size(); ++i) {
      EXPECT_EQ(errors[i], "") << "request " << i;
      EXPECT_EQ(results[i].finish, FinishReason::Length) << "request " << i << ": " << results[i].error;
      EXPECT_EQ(results[i].tokens.size(), tokens) << "request " << i;
      worst = std::max(worst, max_gap_ms[i]);
    }
    return worst;
  }
  ~StreamLoad() {
    for (auto& t : threads) t.join();
  }
};

}  // namespace moemesh::testing
