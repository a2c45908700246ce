// Roles failing, restarting, joining and leaving, and slow links, while the
// mesh serves (failover timing and zones: test_mesh_failover.cpp).
#include <signal.h>

#include <atomic>
#include <thread>

#include "services/router/client.h"
#include "tests/integration/mesh_fixture.h"
#include "tests/support/delay_proxy.h"

using namespace moemesh;
using namespace moemesh::testing;

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
          if (u.finish != FinishReason::Length) throw std::runtime_error(std::string(finish_reason_name(u.finish)) + ": " + u.error);
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
  router_command(m.ctx, m.ep.router, {RouterCommandKind::Drain, "experts-0"});
  ASSERT_TRUE(eventually([&] { return m.host_entry(m.router_stats(), "experts-0") == nullptr; })) << m.router_stats().dump();
  ASSERT_TRUE(eventually([&] { return !m.mesh->expert_host(0).running(); })) << "a drained host exits by itself";
  ASSERT_TRUE(eventually([&] { return done.load() >= served_before + 8; }));
  stop = true;
  for (auto& t : load) t.join();
  EXPECT_EQ(failed.load(), 0) << (failures.empty() ? "" : failures[0]);
  EXPECT_TRUE(late.running());
  EXPECT_EQ(m.dispatch_stats()["failed"], 0);
}

TEST(MeshFaults, WithoutAReplicaTheAffectedRequestsFailClearlyAndTheMeshKeepsServing) {
  TestMesh m("mesh-noreplica", {R"(expert_hosts=[{"name": "low", "experts": "0-7"}, {"name": "high", "experts": "8-15"}])",
                                "router.heartbeat_timeout_ms=1000", "attention.speculative=0"});
  AttentionClient c(m.ctx, m.ep.attention);
  GenerationRequest r;
  r.prompt = random_tokens(12, 1024, 77);
  r.max_new_tokens = 8;
  ASSERT_EQ(c.generate(r).finish, FinishReason::Length);
  m.mesh->expert_host(1).signal(SIGKILL);
  // Every token routes to 8 of 16 experts, so a request needs experts 8-15 almost surely.
  // The dropped connection takes it out of the dispatcher's choice at once,
  // and the router's table soon after; with no replica the request fails.
  ASSERT_TRUE(eventually([&] { return !m.router_stats()["uncovered"].empty(); }));
  TokensUpdate u = c.generate(r);
  EXPECT_EQ(u.finish, FinishReason::Error);
  EXPECT_EQ(u.code, wire::ErrorCode::NoReplica) << "the gateway answers 503: worth retrying later";
  EXPECT_NE(u.error.find("no live expert host"), std::string::npos) << u.error;
  // Everything else keeps serving: the roles answer, and the failed request left no cache behind.
  EXPECT_GE(m.dispatch_stats()["failed"].get<int64_t>(), 1);
  const auto attn = AttentionClient(m.ctx, m.ep.attention).stats();
  EXPECT_EQ(attn["kv_pages_used"], 0);
  // The host comes back (a new process on a new port, the same name): it rejoins and serving resumes.
  m.mesh->restart_expert_host(1);
  ASSERT_TRUE(eventually([&] { return m.router_stats()["uncovered"].empty(); }));
  ASSERT_TRUE(eventually([&] { return c.generate(r).finish == FinishReason::Length; }))
      << "the dispatcher follows the new table to the restarted host";
  // Rebalancing on command answers with the moves it made.
  const auto moves = router_command(m.ctx, m.ep.router, {RouterCommandKind::Rebalance, ""});
  EXPECT_TRUE(moves["moves"].is_array());
}

// A host stopped past the router's heartbeat timeout is taken out (the
// router's own evidence); its next heartbeat readmits it.
TEST(MeshFaults, AStoppedHostIsRoutedAroundAndReadmittedWhenItContinues) {
  TestMesh m("mesh-sigstop", {"router.heartbeat_timeout_ms=1000", "attention.speculative=0"});
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
  m.mesh->expert_host(0).signal(SIGSTOP);  // alive but silent: deadline or link heartbeat, then the router's timeout
  for (auto& t : threads) t.join();
  for (const auto& r : results) {
    EXPECT_EQ(r.finish, FinishReason::Length) << r.error;
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
    EXPECT_EQ(c.generate(r).finish, FinishReason::Length);
    const auto s = m.router_stats();
    return (*m.host_entry(s, "experts-0"))["rows_served"].get<int64_t>() > before;
  })) << "the readmitted host serves again";
  EXPECT_EQ(m.dispatch_stats()["failed"], 0);
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
    EXPECT_EQ(r.finish, FinishReason::Length) << r.error;
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
    const auto stats = c.stats();
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

// The router is off the data path: generation goes on while it is down (the
// dispatchers keep the last table), and membership resumes when it is back.
TEST(MeshFaults, GenerationGoesOnWhileTheRouterIsDownAndMembershipResumes) {
  TestMesh m("mesh-router-restart", {"attention.speculative=0"});
  const uint64_t version_before = m.dispatch_stats()["table_version"].get<uint64_t>();
  StreamLoad load(m, 8, 64, 600);
  ASSERT_TRUE(eventually([&] { return load.tokens_seen.load() > 16; }));
  m.mesh->router().signal(SIGKILL);
  ASSERT_TRUE(eventually([&] { return !m.mesh->router().running(); }));
  load.expect_all_complete(64);
  // Still down: new requests are served too.
  AttentionClient c(m.ctx, m.ep.attention);
  GenerationRequest r;
  r.prompt = random_tokens(9, 1024, 4242);
  r.max_new_tokens = 12;
  EXPECT_EQ(c.generate(r).finish, FinishReason::Length);
  EXPECT_EQ(m.dispatch_stats()["failed"], 0);

  // Back on its address: the hosts' heartbeats register them, the dispatchers
  // subscribe again, and a membership change (a drain) reaches them.
  m.mesh->restart_router();
  wait_for_experts(m.ctx, m.ep.router, std::chrono::seconds(30));
  ASSERT_TRUE(eventually([&] { return m.router_stats()["dispatchers"].get<int64_t>() >= 2; })) << m.router_stats().dump();
  router_command(m.ctx, m.ep.router, {RouterCommandKind::Drain, "experts-0"});
  ASSERT_TRUE(eventually([&] { return !m.mesh->expert_host(0).running(); })) << "the drained host left";
  ASSERT_TRUE(eventually([&] {
    const auto d = m.dispatch_stats();
    return d["table_version"].get<uint64_t>() > version_before && !d["hosts"]["experts-0"].value("listed", true);
  })) << m.dispatch_stats().dump();
  const TokensUpdate u = c.generate(r);
  EXPECT_EQ(u.finish, FinishReason::Length) << u.error;
  EXPECT_EQ(c.stats()["kv_pages_used"], 0);
}

TEST(MeshFaults, ALinkTurningSlowIsRoutedAroundAndSlownessIsNotDeath) {
  // experts-0 is reached directly; "far", holding every expert too, through a
  // relay that delays each direction (heartbeats go straight to the router).
  TestMesh m("mesh-slow-link", {kOneHost, "dispatch.deadline_floor_ms=400", "attention.speculative=0"});
  const uint16_t port = free_port();
  DelayProxy link(port, std::chrono::milliseconds(0));
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
      EXPECT_EQ(r.finish, FinishReason::Length) << r.error;
      EXPECT_EQ(r.tokens.size(), 24u);
    }
  };
  // The relay adds only a hop: far is about as quick and takes its share.
  {
    StallWatch machine;
    serve(700);
    const auto d = m.dispatch_stats();
    EXPECT_GT(m.host_dispatches("far"), 0) << d.dump();
    if (machine.worst_ms() < 300) {
      EXPECT_EQ(m.retries(d), 0u) << d.dump();
    }
  }
  // 300 ms each way, beyond the deadline (4 × its measured p99, at least
  // 400 ms): its work is hedged on experts-0, no request fails, and far, slow
  // now, is sent nothing while experts-0 is quicker.
  link.set_delay(std::chrono::milliseconds(300));
  serve(800);
  const auto d = m.dispatch_stats();
  EXPECT_GT(m.retries(d, "deadline"), 0u) << d.dump();
  EXPECT_GT(d["hedges"].get<int64_t>(), 0) << d.dump();
  EXPECT_EQ(d["failed"], 0);
  // Slowness is not death: the router keeps it (on probation at most).
  const auto far_stats = m.router_stats();
  const auto* far = m.host_entry(far_stats, "far");
  ASSERT_NE(far, nullptr);
  EXPECT_EQ((*far)["state"], "ready");
}
