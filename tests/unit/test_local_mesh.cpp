// The whole mesh as actors in one process (inproc), and over ipc: it generates
// what the single-process engine generates, refuses what it cannot take with a
// reason, and keeps serving.
#include <gtest/gtest.h>

#include <unistd.h>

#include <sstream>
#include <thread>


#include "model/scheduler.h"
#include "services/attention/client.h"
#include "services/mesh/mesh_launcher.h"
#include "tests/support/http_get.h"
#include "tests/support/test_models.h"

using namespace moemesh;
using namespace moemesh::testing;

namespace {
ClusterConfig config(const std::vector<std::string>& sets) {
  nlohmann::json j = load_cluster_json("", sets, "inproc");
  j["model"] = test_model("tiny", true).string();
  return ClusterConfig::from_json(j);
}

std::vector<int32_t> local_greedy(const std::vector<int32_t>& prompt, int64_t n) {
  EngineOptions o;
  o.compute = cpu::Precision::Exact;
  o.kv_dtype = KvCacheDtype::F32;
  Engine e(test_model("tiny", true), o);
  Scheduler s(e);
  s.submit({1, prompt, n, {}, {}});
  std::vector<int32_t> out;
  while (!s.idle())
    for (const auto& ev : s.step())
      if (ev.token >= 0) out.push_back(ev.token);
  return out;
}
}  // namespace

TEST(LocalMesh, InprocMeshGeneratesWhatOneEngineGenerates) {
  zmq::context_t ctx(1);
  InProcessMesh mesh(config({R"(expert_hosts=[{"name": "e", "experts": "all"}])", "dispatch.activations=f32",
                             "attention.speculative=0", "attention.micro_batches=1",
                             "compute=exact", "attention.kv_cache_dtype=f32"}),
                     ctx);
  const MeshEndpoints ep = mesh.start();
  AttentionClient c(ctx, ep.attention);
  for (int i = 0; i < 3; ++i) {
    GenerationRequest r;
    r.prompt = random_tokens(5 + 4 * i, 1024, 40 + i);
    r.max_new_tokens = 10;
    const TokensUpdate u = c.generate(r);
    EXPECT_EQ(u.finish, FinishReason::Length);
    EXPECT_EQ(u.tokens, local_greedy(r.prompt, 10)) << "prompt " << i;
  }
}

TEST(LocalMesh, IpcMeshWithMicroBatchesAndSpeculationServesAndRefusesCleanly) {
  const std::string base = "ipc://" + temp_dir("ipc-mesh").string() + "/";
  zmq::context_t ctx(1);
  InProcessMesh mesh(config({"router.bind=" + base + "router", "attention.bind=" + base + "attention",
                             "mtp_draft.bind=" + base + "mtp", "expert_hosts.0.bind=" + base + "e0",
                             "expert_hosts.1.bind=" + base + "e1", "attention.speculative=2", "attention.micro_batches=2",
                             "attention.kv_tokens=1024"}),
                     ctx);
  const MeshEndpoints ep = mesh.start();
  EXPECT_EQ(ep.attention, base + "attention");
  std::vector<std::thread> th;
  std::vector<TokensUpdate> res(6);
  for (int i = 0; i < 6; ++i)
    th.emplace_back([&, i] {
      AttentionClient c(ctx, ep.attention);
      GenerationRequest r;
      r.prompt = random_tokens(4 + i, 1024, 90 + i);
      r.max_new_tokens = 9;
      r.sampling.temperature = i % 2 ? 0.8f : 0.0f;
      r.sampling.seed = i;
      res[i] = c.generate(r);
    });
  for (auto& t : th) t.join();
  for (const auto& r : res) {
    EXPECT_EQ(r.finish, FinishReason::Length) << r.error;
    EXPECT_EQ(r.tokens.size(), 9u);
  }
  AttentionClient c(ctx, ep.attention);
  GenerationRequest bad;
  bad.prompt = {1, 2, 5000};  // past the vocabulary
  TokensUpdate u = c.generate(bad);
  EXPECT_EQ(u.finish, FinishReason::Error);
  EXPECT_EQ(u.code, wire::ErrorCode::BadFrame);
  EXPECT_NE(u.error.find("5000"), std::string::npos) << u.error;
  bad.prompt = {1, 2, 3};
  bad.max_new_tokens = 5000;  // never fits a 1024-token cache
  u = c.generate(bad);
  EXPECT_EQ(u.finish, FinishReason::Error);
  EXPECT_EQ(u.code, wire::ErrorCode::TooLarge) << "the gateway answers this one 400, not 503";
  EXPECT_NE(u.error.find("KV cache"), std::string::npos) << u.error;
  // Still serving.
  GenerationRequest ok;
  ok.prompt = {7, 8, 9};
  ok.max_new_tokens = 4;
  EXPECT_EQ(c.generate(ok).tokens.size(), 4u);
  const auto stats = c.stats();
  EXPECT_EQ(stats["kv_pages_used"], 0) << "finished requests leave no cache behind";
}

namespace {
// The sum of the samples whose line starts with `prefix` (and has `label`).
double sample(const std::string& text, const std::string& prefix, const std::string& label = {}) {
  std::istringstream in(text);
  std::string line;
  double sum = 0;
  while (std::getline(in, line))
    if (line.rfind(prefix, 0) == 0 && line.find(label) != std::string::npos) sum += std::stod(line.substr(line.rfind(' ') + 1));
  return sum;
}
}  // namespace

TEST(LocalMesh, EveryRoleServesItsPrometheusMetrics) {
  zmq::context_t ctx(1);
  InProcessMesh mesh(config({"router.metrics=127.0.0.1:0", "attention.metrics=127.0.0.1:0", "expert_hosts.0.metrics=127.0.0.1:0",
                             "expert_hosts.1.metrics=127.0.0.1:0", "attention.speculative=2"}),
                     ctx);
  const MeshEndpoints ep = mesh.start();
  ASSERT_EQ(ep.metrics.size(), 4u);
  AttentionClient c(ctx, ep.attention);
  GenerationRequest r;
  r.prompt = random_tokens(9, 1024, 5);
  r.max_new_tokens = 7;
  const TokensUpdate u = c.generate(r);
  ASSERT_EQ(u.tokens.size(), 7u) << u.error;
  // The router counts rows from the hosts' heartbeats (every 250 ms) and
  // dispatchers as they subscribe (mtp-draft's first table may come later, under TSan): wait for both.
  std::string router;
  for (int i = 0; i < 100 && (sample(router, "moemesh_tokens_routed_total{") == 0 || sample(router, "moemesh_dispatchers{") < 2); ++i) {
    if (i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    router = http_get(ep.metrics[0]);
  }
  const std::string attention = http_get(ep.metrics[1]);
  const std::string host0 = http_get(ep.metrics[2]), host1 = http_get(ep.metrics[3]);
  EXPECT_GT(sample(router, "moemesh_tokens_routed_total{"), 0);
  EXPECT_GE(sample(router, "moemesh_dispatchers{"), 2) << "attention and mtp-draft follow the table";
  EXPECT_GT(sample(router, "moemesh_placement_table_version{"), 0);
  EXPECT_NE(router.find("role=\"router\""), std::string::npos);
  // Dispatch is the attention role's now: it talks to the hosts directly.
  EXPECT_GT(sample(attention, "moemesh_moe_requests_total{", "status=\"ok\""), 0);
  EXPECT_GT(sample(attention, "moemesh_dispatch_seconds_count{"), 0);
  EXPECT_GT(sample(attention, "moemesh_dispatches_total{"), 0);
  EXPECT_EQ(sample(router, "moemesh_dispatches_total{"), 0) << "no activation passes the router";
  EXPECT_EQ(sample(attention, "moemesh_generated_tokens_total{"), 7);
  EXPECT_NE(attention.find("moemesh_kv_cache_pages{"), std::string::npos);
  EXPECT_GT(sample(attention, "moemesh_engine_step_seconds_count{"), 0);
  EXPECT_GT(sample(attention, "moemesh_mtp_drafted_tokens_total{"), 0);
  EXPECT_GT(sample(host0, "moemesh_expert_dispatches_total{") + sample(host1, "moemesh_expert_dispatches_total{"), 0);
  EXPECT_EQ(sample(host0, "moemesh_experts_loaded{"), 16);
}
