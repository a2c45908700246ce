// Roles failing, restarting, joining and leaving, and slow links, while the mesh serves.
#include <signal.h>

#include <atomic>
#include <thread>

#include "tests/integration/mesh_fixture.h"
#include "tests/support/delay_proxy.h"

using namespace moemesh;
using namespace moemesh::testing;

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
  // The host comes back (a new process on a new port, the same name): it rejoins and serving resumes.
  m.mesh->restart_expert_host(1);
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

  // The drafter comes back on its address: once the attention role's back-off
  // runs out, drafts are made (and verified) again.
  auto drafted = [&] {
    int64_t n = 0;
    const auto stats = control_call(m.ctx, m.ep.attention, {{"cmd", "stats"}});  // kept: the loop reads into it
    for (const auto& d : stats["drafted"]) n += d.get<int64_t>();
    return n;
  };
  const int64_t before = drafted();
  m.mesh->restart_mtp();
  ASSERT_TRUE(eventually(
      [&] {
        EXPECT_EQ(c.generate(r).tokens.size(), 6u);
        return drafted() > before;
      },
      std::chrono::seconds(60)))
      << "speculation did not resume: " << before << " drafts before, " << drafted() << " after";
}

TEST(MeshFaults, RequestsCompleteOrFailCleanlyWhenTheRouterRestarts) {
  TestMesh m("mesh-router-restart", {"attention.router_timeout_ms=2000", "attention.speculative=0"});
  std::atomic<int> tokens_seen{0};
  std::vector<TokensUpdate> results(8);
  std::vector<std::string> errors(8);
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&, i] {
      try {
        AttentionClient c(m.ctx, m.ep.attention);
        GenerationRequest r;
        r.prompt = random_tokens(6 + i, 1024, 600 + i);
        r.max_new_tokens = 64;
        results[i] = c.generate(r, [&](const TokensUpdate& u) { tokens_seen += static_cast<int>(u.tokens.size()); });
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    });
  ASSERT_TRUE(eventually([&] { return tokens_seen.load() > 16; }));
  m.mesh->router().signal(SIGKILL);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  m.mesh->restart_router();  // the same address: attention and the hosts reconnect
  for (auto& t : threads) t.join();
  for (int i = 0; i < 8; ++i) {
    // Every request got an answer: all its tokens, or a clear error.
    EXPECT_EQ(errors[i], "") << "request " << i;
    if (results[i].finish == "length") {
      EXPECT_EQ(results[i].tokens.size(), 64u) << "request " << i;
    } else {
      EXPECT_EQ(results[i].finish, "error") << "request " << i;
      EXPECT_NE(results[i].error, "") << "request " << i;
    }
  }
  // The hosts' heartbeats register them with the new router; serving resumes.
  wait_for_experts(m.ctx, m.ep.router, std::chrono::seconds(30));
  AttentionClient c(m.ctx, m.ep.attention);
  GenerationRequest r;
  r.prompt = random_tokens(9, 1024, 4242);
  r.max_new_tokens = 12;
  const TokensUpdate u = c.generate(r);
  EXPECT_EQ(u.finish, "length") << u.error;
  EXPECT_EQ(u.tokens.size(), 12u);
  EXPECT_EQ(control_call(m.ctx, m.ep.attention, {{"cmd", "stats"}})["kv_pages_used"], 0) << "failed requests left cache behind";
}

TEST(MeshFaults, ASlowLinkOnlyAddsLatencyAndOneBeyondTheDeadlineIsRoutedAround) {
  // experts-0 is reached directly; "far", holding every expert too, through a
  // relay that delays each direction (heartbeats go straight to the router).
  TestMesh m("mesh-slow-link", {kOneHost, "router.deadline_ms=400", "attention.speculative=0"});
  const uint16_t port = free_port();
  DelayProxy link(port, std::chrono::milliseconds(20));
  m.mesh->add_expert_host("far", "all",
                          {"--bind", "tcp://127.0.0.1:" + std::to_string(port), "--advertise", "tcp://127.0.0.1:" + std::to_string(link.port())});
  ASSERT_TRUE(eventually([&] {
    const auto s = m.router_stats();
    const auto* h = m.host_entry(s, "far");
    return h && (*h)["state"] == "ready";
  }));
  auto serve = [&](uint64_t seed) {
    std::vector<std::thread> threads;
    std::vector<TokensUpdate> results(4);
    for (int i = 0; i < 4; ++i)
      threads.emplace_back([&, i] {
        AttentionClient c(m.ctx, m.ep.attention);
        GenerationRequest r;
        r.prompt = random_tokens(8, 1024, seed + i);
        r.max_new_tokens = 24;
        results[i] = c.generate(r);
      });
    for (auto& t : threads) t.join();
    for (const auto& r : results) {
      EXPECT_EQ(r.finish, "length") << r.error;
      EXPECT_EQ(r.tokens.size(), 24u);
    }
  };
  // 20 ms each way: slower, and nothing else; the far host takes its share.
  serve(700);
  EXPECT_GT((*m.host_entry(m.router_stats(), "far"))["rows_served"].get<int64_t>(), 0);
  EXPECT_EQ(m.router_stats()["retries"], 0);
  // 600 ms each way, beyond the 400 ms deadline: its work is retried on
  // experts-0 and no request fails.
  link.set_delay(std::chrono::milliseconds(600));
  serve(800);
  const auto stats = m.router_stats();
  EXPECT_GT(stats["retries"].get<int64_t>(), 0) << stats.dump();
  EXPECT_EQ(stats["failed"], 0);
}
