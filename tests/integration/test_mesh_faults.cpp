// Expert hosts failing, joining and leaving while the mesh serves.
#include <signal.h>

#include <atomic>
#include <thread>

#include "tests/integration/mesh_fixture.h"

using namespace moemesh;
using namespace moemesh::testing;

namespace {
template <class F>
bool eventually(F f, std::chrono::seconds limit = std::chrono::seconds(30)) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (f()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}
}  // namespace

TEST(MeshFaults, ThirtyTwoRequestsSurviveAnExpertHostKilled) {
  // Two hosts, each holding every expert: either can serve any token.
  TestMesh m("mesh-kill", {"router.deadline_ms=500", "router.heartbeat_timeout_ms=1000"});
  std::atomic<int> tokens_seen{0};
  std::vector<TokensUpdate> results(32);
  std::vector<std::string> errors(32);
  std::vector<std::thread> threads;
  for (int i = 0; i < 32; ++i)
    threads.emplace_back([&, i] {
      try {
        AttentionClient c(m.ctx, m.ep.attention);
        GenerationRequest r;
        r.prompt = random_tokens(6 + i % 5, 1024, 500 + i);
        r.max_new_tokens = 48;
        results[i] = c.generate(r, [&](const TokensUpdate& u) { tokens_seen += static_cast<int>(u.tokens.size()); });
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    });
  // Kill one host mid-run, once generation is under way.
  ASSERT_TRUE(eventually([&] { return tokens_seen.load() > 64; }));
  m.mesh->expert_host(0).signal(SIGKILL);
  for (auto& t : threads) t.join();
  for (int i = 0; i < 32; ++i) {
    EXPECT_EQ(errors[i], "") << "request " << i;
    EXPECT_EQ(results[i].finish, "length") << "request " << i << ": " << results[i].error;
    EXPECT_EQ(results[i].tokens.size(), 48u) << "request " << i;
  }
  const auto stats = m.router_stats();
  const auto* dead = m.host_entry(stats, "experts-0");
  ASSERT_NE(dead, nullptr);
  EXPECT_EQ((*dead)["state"], "dead");
  EXPECT_EQ(stats["failed"], 0);
}

TEST(MeshFaults, AJoiningHostTakesLoadAndADrainedHostLeavesCleanly) {
  TestMesh m("mesh-join", {kOneHost});
  std::atomic<bool> stop{false};
  std::atomic<int> done{0}, failed{0};
  std::vector<std::string> failures;
  std::mutex mu;
  std::vector<std::thread> load;
  for (int i = 0; i < 4; ++i)
    load.emplace_back([&, i] {
      AttentionClient c(m.ctx, m.ep.attention);
      for (int n = 0; !stop; ++n) {
        GenerationRequest r;
        r.prompt = random_tokens(8, 1024, 1000 * i + n);
        r.max_new_tokens = 12;
        try {
          const TokensUpdate u = c.generate(r);
          if (u.finish != "length") throw std::runtime_error(u.finish + ": " + u.error);
          ++done;
        } catch (const std::exception& e) {
          ++failed;
          std::lock_guard<std::mutex> lock(mu);
          failures.push_back(e.what());
        }
      }
    });
  ASSERT_TRUE(eventually([&] { return done.load() >= 4; }));

  // A host with no experts joins: the router assigns it experts, it loads them and takes load.
  ChildProcess& late = m.mesh->add_expert_host("experts-late", "none");
  ASSERT_TRUE(eventually([&] {
    const auto s = m.router_stats();
    const auto* h = m.host_entry(s, "experts-late");
    return h && (*h)["experts"].size() == 16 && (*h)["rows_served"].get<int64_t>() > 0;
  })) << m.router_stats().dump();

  // The original host is drained: no new work, in-flight work finished, then it leaves.
  const int served_before = done.load();
  control_call(m.ctx, m.ep.router, {{"cmd", "drain"}, {"host", "experts-0"}});
  ASSERT_TRUE(eventually([&] { return m.host_entry(m.router_stats(), "experts-0") == nullptr; })) << m.router_stats().dump();
  ASSERT_TRUE(eventually([&] { return !m.mesh->expert_host(0).running(); })) << "a drained host exits by itself";
  ASSERT_TRUE(eventually([&] { return done.load() >= served_before + 8; }));
  stop = true;
  for (auto& t : load) t.join();
  EXPECT_EQ(failed.load(), 0) << (failures.empty() ? "" : failures[0]);
  EXPECT_TRUE(late.running());
  EXPECT_EQ(m.router_stats()["failed"], 0);
}

TEST(MeshFaults, WithoutAReplicaTheAffectedRequestsFailClearlyAndTheMeshKeepsServing) {
  TestMesh m("mesh-noreplica", {R"(expert_hosts=[{"name": "low", "experts": "0-7"}, {"name": "high", "experts": "8-15"}])",
                                "router.deadline_ms=500", "router.heartbeat_timeout_ms=1000", "attention.speculative=0"});
  AttentionClient c(m.ctx, m.ep.attention);
  GenerationRequest r;
  r.prompt = random_tokens(12, 1024, 77);
  r.max_new_tokens = 8;
  ASSERT_EQ(c.generate(r).finish, "length");
  m.mesh->expert_host(1).signal(SIGKILL);
  // Every token routes to 8 of 16 experts, so a request needs experts 8-15 almost surely.
  TokensUpdate u = c.generate(r);
  EXPECT_EQ(u.finish, "error");
  EXPECT_NE(u.error.find("no live expert host"), std::string::npos) << u.error;
  // Everything else keeps serving: the roles answer, and the failed request left no cache behind.
  const auto stats = m.router_stats();
  EXPECT_GE(stats["failed"].get<int64_t>(), 1);
  EXPECT_FALSE(stats["uncovered"].empty());
  const auto attn = control_call(m.ctx, m.ep.attention, {{"cmd", "stats"}});
  EXPECT_EQ(attn["kv_pages_used"], 0);
  // A host holding the missing experts joins: serving resumes.
  m.mesh->add_expert_host("high-again", "8-15");
  ASSERT_TRUE(eventually([&] { return m.router_stats()["uncovered"].empty(); }));
  EXPECT_EQ(c.generate(r).finish, "length");
  // Rebalancing on command answers with the moves it made.
  const auto moves = control_call(m.ctx, m.ep.router, {{"cmd", "rebalance"}});
  EXPECT_TRUE(moves["moves"].is_array());
}

TEST(MeshFaults, AStoppedHostIsRoutedAroundAndReadmittedWhenItContinues) {
  TestMesh m("mesh-sigstop", {"router.deadline_ms=500", "router.heartbeat_timeout_ms=1000", "attention.speculative=0"});
  std::atomic<int> tokens_seen{0};
  std::vector<TokensUpdate> results(8);
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&, i] {
      AttentionClient c(m.ctx, m.ep.attention);
      GenerationRequest r;
      r.prompt = random_tokens(7, 1024, 900 + i);
      r.max_new_tokens = 40;
      results[i] = c.generate(r, [&](const TokensUpdate& u) { tokens_seen += static_cast<int>(u.tokens.size()); });
    });
  ASSERT_TRUE(eventually([&] { return tokens_seen.load() > 16; }));
  m.mesh->expert_host(0).signal(SIGSTOP);  // alive but silent: deadline, then heartbeat timeout
  for (auto& t : threads) t.join();
  for (const auto& r : results) {
    EXPECT_EQ(r.finish, "length") << r.error;
    EXPECT_EQ(r.tokens.size(), 40u);
  }
  ASSERT_TRUE(eventually([&] {
    const auto s = m.router_stats();
    const auto* h = m.host_entry(s, "experts-0");
    return h && (*h)["state"] == "dead";
  }));
  // SIGCONT: its next heartbeat readmits it, and it takes work again.
  m.mesh->expert_host(0).signal(SIGCONT);
  ASSERT_TRUE(eventually([&] {
    const auto s = m.router_stats();
    const auto* h = m.host_entry(s, "experts-0");
    return h && (*h)["state"] == "ready";
  })) << m.router_stats().dump();
  const auto before = (*m.host_entry(m.router_stats(), "experts-0"))["rows_served"].get<int64_t>();
  ASSERT_TRUE(eventually([&] {
    AttentionClient c(m.ctx, m.ep.attention);
    GenerationRequest r;
    r.prompt = random_tokens(16, 1024, 77);
    r.max_new_tokens = 8;
    EXPECT_EQ(c.generate(r).finish, "length");
    const auto s = m.router_stats();
    return (*m.host_entry(s, "experts-0"))["rows_served"].get<int64_t>() > before;
  })) << "the readmitted host serves again";
  EXPECT_EQ(m.router_stats()["failed"], 0);
}

TEST(MeshFaults, GenerationGoesOnWithoutSpeculationWhenTheDrafterDies) {
  TestMesh m("mesh-mtpkill", {kOneHost, "attention.speculative=2", "attention.speculative_max_batch=64"});
  ASSERT_NE(m.mesh->mtp(), nullptr);
  std::atomic<int> tokens_seen{0};
  std::vector<TokensUpdate> results(4);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&, i] {
      AttentionClient c(m.ctx, m.ep.attention);
      GenerationRequest r;
      r.prompt = random_tokens(6, 1024, 300 + i);
      r.max_new_tokens = 40;
      results[i] = c.generate(r, [&](const TokensUpdate& u) { tokens_seen += static_cast<int>(u.tokens.size()); });
    });
  ASSERT_TRUE(eventually([&] { return tokens_seen.load() > 8; }));
  m.mesh->mtp()->signal(SIGKILL);
  for (auto& t : threads) t.join();
  for (const auto& r : results) {
    EXPECT_EQ(r.finish, "length") << r.error;
    EXPECT_EQ(r.tokens.size(), 40u);
  }
  // New requests are served too (without drafts).
  AttentionClient c(m.ctx, m.ep.attention);
  GenerationRequest r;
  r.prompt = {5, 6, 7};
  r.max_new_tokens = 6;
  EXPECT_EQ(c.generate(r).tokens.size(), 6u);
}
