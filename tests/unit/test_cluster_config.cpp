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
  std::ofstream(dir / "c.json") << R"({"model": "/m", "dispatch": {"deadline_floor_ms": 700, "activations": "fp8"},
    "expert_hosts": [{"name": "x", "experts": "0-3", "bind": "ipc:///tmp/x", "device": "cuda"}]})";
  setenv("MOEMESH__DISPATCH__DEADLINE_FLOOR_MS", "800", 1);
  setenv("MOEMESH__ATTENTION__SPECULATIVE", "0", 1);
  const auto j = load_cluster_json((dir / "c.json").string(), {"router.heartbeat_timeout_ms=900", "attention.speculative=3"});
  unsetenv("MOEMESH__DISPATCH__DEADLINE_FLOOR_MS");
  unsetenv("MOEMESH__ATTENTION__SPECULATIVE");
  const ClusterConfig c = ClusterConfig::from_json(j);
  EXPECT_EQ(c.model, "/m");
  EXPECT_EQ(c.dispatch.deadline_floor.count(), 800) << "environment over file";
  EXPECT_EQ(c.router.heartbeat_timeout.count(), 900);
  EXPECT_EQ(c.dispatch.activations, WireActivations::FP8);
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
  EXPECT_NE(refused("dispatch.deadline_floor_ms=0").find("dispatch.deadline_floor_ms"), std::string::npos);
  EXPECT_NE(refused("dispatch.deadline_floor_ms=\"soon\"").find("dispatch.deadline_floor_ms"), std::string::npos);
  EXPECT_NE(refused("router.bind=http://x").find("router.bind"), std::string::npos);
  EXPECT_NE(refused("dispatch.activations=fp4").find("fp4"), std::string::npos);
  EXPECT_NE(refused("attention.speculative=99").find("attention.speculative"), std::string::npos);
  EXPECT_NE(refused("attention.micro_batches=3").find("micro_batches"), std::string::npos);
  EXPECT_NE(refused("expert_hosts=5").find("expert_hosts"), std::string::npos);
  EXPECT_NE(refused("expert_hosts.0.bind=7").find("expert_hosts[0].bind"), std::string::npos);
  EXPECT_NE(refused("expert_hosts.0.device=tpu").find("expert_hosts[0].device"), std::string::npos);
  // A key no field has is refused by name; a key of older configs names where it went.
  EXPECT_NE(refused("router.deadline_msec=5").find("router.deadline_msec"), std::string::npos);
  EXPECT_NE(refused("gateway.colour=\"red\"").find("gateway.colour"), std::string::npos);
  EXPECT_NE(refused("router.deadline_ms=700").find("dispatch.deadline_floor_ms"), std::string::npos);
  EXPECT_NE(refused("attention.router_timeout_ms=700").find("dispatch.max_wait_ms"), std::string::npos);
  EXPECT_NE(refused("expert_hosts.0.colour=1").find("colour"), std::string::npos);
  EXPECT_NE(refused("dispatch.deadline_percentile=1.5").find("dispatch.deadline_percentile"), std::string::npos);
  nlohmann::json j;
  EXPECT_THROW(apply_override(j, "novalue"), std::invalid_argument);
  EXPECT_THROW(apply_override(j, "a..b=1"), std::invalid_argument);
  EXPECT_THROW(load_cluster_json("/nonexistent/cluster.json", {}), std::invalid_argument);
  EXPECT_THROW(resolve_experts("3-1", 16), std::invalid_argument);
}

TEST(ClusterConfig, WhatItWritesItReadsBack) {
  nlohmann::json j = ClusterConfig::defaults("tcp");
  apply_override(j, "dispatch.activations=fp8");
  apply_override(j, "attention.zone=\"eu-1\"");
  apply_override(j, "mtp_draft.kv_cache_dtype=\"fp8\"");
  const ClusterConfig c = ClusterConfig::from_json(j);
  EXPECT_EQ(c.dispatch.activations, WireActivations::FP8);
  EXPECT_EQ(c.attention.dispatch.zone, "eu-1");
  ASSERT_TRUE(c.mtp_kv_dtype.has_value());
  EXPECT_EQ(*c.mtp_kv_dtype, KvCacheDtype::FP8);
  EXPECT_FALSE(ClusterConfig::from_json(ClusterConfig::defaults("tcp")).mtp_kv_dtype.has_value())
      << "the default follows the attention role's cache";
}

TEST(ClusterConfig, TheReferenceNamesEveryField) {
  const std::string ref = ClusterConfig::reference();
  for (const char* key : {"heartbeat_timeout_ms", "deadline_floor_ms", "max_wait_ms", "zone_overload_rows", "kv_cache_dtype",
                          "metrics_per_layer", "max_body_bytes", "capacity", "drain_timeout_ms"})
    EXPECT_NE(ref.find(std::string("`") + key + "`"), std::string::npos) << key;
  // docs/MESH.md carries the reference as generated (`moemesh config --reference`).
  std::ifstream in(std::string(MOEMESH_SOURCE_DIR) + "/docs/MESH.md");
  const std::string doc((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(doc.find(ref), std::string::npos) << "docs/MESH.md is out of date: regenerate it with `moemesh config --reference`";
}
