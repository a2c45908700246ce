// SIGTERM to each role while it has work: it stops taking new work, finishes
// what it had accepted, and exits 0 (docs/RELIABILITY.md).
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <future>
#include <thread>

#include "tests/integration/mesh_fixture.h"

using namespace moemesh;
using namespace moemesh::testing;

namespace {
bool exited_zero(int status) { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }

// `n` streaming generations of `tokens` tokens each, on their own threads.
struct Load {
  std::vector<TokensUpdate> results;
  std::vector<std::string> errors;
  std::vector<std::thread> threads;
  std::atomic<int> tokens_seen{0};
  Load(TestMesh& m, int n, int64_t tokens, uint64_t seed) : results(n), errors(n) {
    for (int i = 0; i < n; ++i)
      threads.emplace_back([&, i, tokens, seed] {
        try {
          AttentionClient c(m.ctx, m.ep.attention);
          GenerationRequest r;
          r.prompt = random_tokens(5 + i, 1024, seed + i);
          r.max_new_tokens = tokens;
          results[i] = c.generate(r, [&](const TokensUpdate& u) { tokens_seen += static_cast<int>(u.tokens.size()); });
        } catch (const std::exception& e) {
          errors[i] = e.what();
        }
      });
  }
  ~Load() { join(); }  // also when an assertion left the test early
  void join() {
    for (auto& t : threads)
      if (t.joinable()) t.join();
  }
  void expect_all_complete(size_t tokens) {
    join();
    for (size_t i = 0; i < results.size(); ++i) {
      EXPECT_EQ(errors[i], "") << "request " << i;
      EXPECT_EQ(results[i].finish, FinishReason::Length) << "request " << i << ": " << results[i].error;
      EXPECT_EQ(results[i].tokens.size(), tokens) << "request " << i;
    }
  }
};

// SIGTERM without blocking the test; the future holds the wait status.
std::future<int> terminate(ChildProcess& p) {
  return std::async(std::launch::async, [&p] { return p.stop(SIGTERM, std::chrono::seconds(40)); });
}
}  // namespace

TEST(GracefulShutdown, EachRoleFinishesItsAcceptedWorkAndExitsZero) {
  TestMesh m("graceful", {"attention.speculative=2", "attention.speculative_max_batch=64", "router.heartbeat_timeout_ms=3000"});

  // An expert host (the other holds every expert too): the dispatchers stop
  // sending it work, it answers what it has, is told to leave, exits 0.
  {
    StallWatch machine;
    Load load(m, 4, 48, 100);
    ASSERT_TRUE(eventually([&] { return load.tokens_seen.load() > 8; }));
    auto host = terminate(m.mesh->expert_host(0));
    load.expect_all_complete(48);
    EXPECT_TRUE(exited_zero(host.get()));
    EXPECT_EQ(m.host_entry(m.router_stats(), "experts-0"), nullptr) << "a stopped host leaves the placement";
    const auto d = m.dispatch_stats();
    EXPECT_EQ(d["failed"], 0) << d.dump();
    if (machine.worst_ms() < 300) {
      EXPECT_EQ(m.retries(d, "deadline"), 0u) << "a stopping host is left before it goes, never timed out";
    }
  }

  // The drafter: its drafts in flight are answered; generation goes on without it.
  {
    Load load(m, 4, 32, 200);
    ASSERT_TRUE(eventually([&] { return load.tokens_seen.load() > 8; }));
    auto mtp = terminate(*m.mesh->mtp());
    load.expect_all_complete(32);
    EXPECT_TRUE(exited_zero(mtp.get()));
  }

  // Attention: running generations finish; a new one is refused at once, clearly.
  // The late request goes once the drain has begun (its stats say so) and
  // while the load still runs: long enough that a fast machine is not done first.
  {
    constexpr int64_t kTokens = 480;
    Load load(m, 4, kTokens, 300);
    ASSERT_TRUE(eventually([&] { return load.tokens_seen.load() > 8; }));
    auto attention = terminate(m.mesh->attention());
    ASSERT_TRUE(eventually([&] { return AttentionClient(m.ctx, m.ep.attention).stats().value("draining", false); }));
    ASSERT_LT(load.tokens_seen.load(), 4 * kTokens) << "the load ended before the late request could be sent";
    AttentionClient late(m.ctx, m.ep.attention, std::chrono::seconds(20));
    GenerationRequest r;
    r.prompt = {1, 2, 3};
    r.max_new_tokens = 4;
    const TokensUpdate u = late.generate(r);
    EXPECT_EQ(u.finish, FinishReason::Error) << "a request during the drain was served";
    EXPECT_EQ(u.code, wire::ErrorCode::ShuttingDown) << u.error;
    EXPECT_NE(u.error.find("shutting down"), std::string::npos) << u.error;
    load.expect_all_complete(kTokens);
    EXPECT_TRUE(exited_zero(attention.get()));
  }

  // The router, with nothing left in flight, exits 0 at once.
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(exited_zero(m.mesh->router().stop(SIGTERM, std::chrono::seconds(40))));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(20));
}

// The router is the control plane only: stopping it under load stops nothing
// else. Generation goes on with the table the dispatchers hold.
TEST(GracefulShutdown, ARouterStoppedUnderLoadExitsZeroAndGenerationGoesOn) {
  TestMesh m("graceful-router", {kOneHost, "attention.speculative=0"});
  Load load(m, 4, 120, 400);
  ASSERT_TRUE(eventually([&] { return load.tokens_seen.load() > 8; }));
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(exited_zero(m.mesh->router().stop(SIGTERM, std::chrono::seconds(40))));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10)) << "nothing in flight at a control plane";
  load.expect_all_complete(120);
  EXPECT_EQ(m.dispatch_stats()["failed"], 0);
}
