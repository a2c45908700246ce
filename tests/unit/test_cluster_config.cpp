// The cluster config: defaults, file, environment and --set overrides, and
// clear errors for bad values.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "services/mesh/cluster_config.h"
#include "tests/support/test_models.h"

using namespace moemesh;

TEST(ClusterConfig, DefaultsFileEnvironmentAndSetsLayerInOrder) {
  const auto dir = moemesh::testing::temp_dir("cluster-config");
  std::ofstream(dir / "c.json") << R"({"model": "/m", "router": {"deadline_ms": 700, "dispatch": "fp8"},
    "expert_hosts": [{"name": "x", "experts": "0-3", "bind": "ipc:///tmp/x", "device": "cuda"}]})";
  setenv("MOEMESH__ROUTER__DEADLINE_MS", "800", 1);
  setenv("MOEMESH__ATTENTION__SPECULATIVE", "0", 1);
  const auto j = load_cluster_json((dir / "c.json").string(), {"router.heartbeat_timeout_ms=900", "attention.speculative=3"});
  unsetenv("MOEMESH__ROUTER__DEADLINE_MS");
  unsetenv("MOEMESH__ATTENTION__SPECULATIVE");
  const ClusterConfig c = ClusterConfig::from_json(j);
  EXPECT_EQ(c.model, "/m");
  EXPECT_EQ(c.router.deadline.count(), 800) << "environment over file";
  EXPECT_EQ(c.router.heartbeat_timeout.count(), 900);
  EXPECT_EQ(c.router.dispatch, WireActivations::FP8);
  EXPECT_EQ(c.attention.speculative, 3) << "--set over environment";
  EXPECT_EQ(c.router.bind, "inproc://moemesh-router") << "default";
  EXPECT_EQ(c.attention.router, c.router.bind) << "roles reach the router where it binds unless told otherwise";
  ASSERT_EQ(c.expert_hosts.size(), 1u) << "the file's hosts replace the default ones";
  EXPECT_EQ(c.expert_hosts[0].options.name, "x");
  EXPECT_EQ(c.expert_hosts[0].experts, "0-3");
  EXPECT_EQ(c.expert_hosts[0].options.device, "cuda");
  EXPECT_EQ(resolve_experts("0-3", 16), (std::vector<int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(resolve_experts("all", 4).size(), 4u);
  EXPECT_TRUE(resolve_experts("none", 4).empty());
}

TEST(ClusterConfig, BadValuesAreRefusedWithTheFieldNamed) {
  auto refused = [](const std::string& set) {
    nlohmann::json j = ClusterConfig::defaults("tcp");
    apply_override(j, set);
    try {
      ClusterConfig::from_json(j);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(refused("router.deadline_ms=0").find("router.deadline_ms"), std::string::npos);
  EXPECT_NE(refused("router.deadline_ms=\"soon\"").find("router.deadline_ms"), std::string::npos);
  EXPECT_NE(refused("router.bind=http://x").find("router.bind"), std::string::npos);
  EXPECT_NE(refused("router.dispatch=fp4").find("fp4"), std::string::npos);
  EXPECT_NE(refused("attention.speculative=99").find("attention.speculative"), std::string::npos);
  EXPECT_NE(refused("attention.micro_batches=3").find("micro_batches"), std::string::npos);
  EXPECT_NE(refused("expert_hosts=5").find("expert_hosts"), std::string::npos);
  EXPECT_NE(refused("expert_hosts.0.bind=7").find("expert_hosts[0].bind"), std::string::npos);
  EXPECT_NE(refused("expert_hosts.0.device=tpu").find("expert_hosts[0].device"), std::string::npos);
  nlohmann::json j;
  EXPECT_THROW(apply_override(j, "novalue"), std::invalid_argument);
  EXPECT_THROW(apply_override(j, "a..b=1"), std::invalid_argument);
  EXPECT_THROW(load_cluster_json("/nonexistent/cluster.json", {}), std::invalid_argument);
  EXPECT_THROW(resolve_experts("3-1", 16), std::invalid_argument);
}
