// The pure parts of attention replicas: the gateway's prefix index and
// routing policies, the router's replica registry, the Replica report's codec.
#include <gtest/gtest.h>

#include "services/gateway/prefix_index.h"
#include "services/gateway/replica_choice.h"
#include "services/router/replica_registry.h"
#include "services/gateway/generation_client.h"
#include "services/mesh/cluster_config.h"

using namespace moemesh;

namespace {
std::vector<int32_t> seq(int32_t from, int n) {
  std::vector<int32_t> v;
  for (int i = 0; i < n; ++i) v.push_back(from + i);
  return v;
}
}  // namespace

TEST(PrefixIndex, MatchesTheLongestRememberedPrefixByWholeBlocks) {
  PrefixIndex idx;
  const auto a = seq(0, 40);  // two whole blocks and a part
  idx.insert(a);
  EXPECT_EQ(idx.blocks(), 2u);
  EXPECT_EQ(idx.match(a), 32);
  auto b = seq(0, 20);
  EXPECT_EQ(idx.match(b), 16);
  b[3] = 999;  // a different first block: nothing of it is known
  EXPECT_EQ(idx.match(b), 0);
  auto c = a;
  c[20] = 7;  // differs in the second block
  EXPECT_EQ(idx.match(c), 16);
  // A block is named by everything before it: the same tokens after another start do not match.
  auto d = seq(100, 16);
  d.insert(d.end(), a.begin() + 16, a.begin() + 32);
  EXPECT_EQ(idx.match(d), 0);
}

TEST(PrefixIndex, EvictsTheLeastRecentlyUsedBeyondItsSize) {
  PrefixIndex idx(8);
  for (int k = 0; k < 12; ++k) idx.insert(seq(1000 * k, 16));
  EXPECT_LE(idx.blocks(), 9u);
  EXPECT_EQ(idx.match(seq(11000, 16)), 16) << "the newest stays";
  EXPECT_EQ(idx.match(seq(0, 16)), 0) << "the oldest went";
}

TEST(ReplicaChoice, PoliciesByName) {
  EXPECT_EQ(routing_policy_from_name("cache_aware"), RoutingPolicy::CacheAware);
  EXPECT_EQ(routing_policy_from_name("least_load"), RoutingPolicy::LeastLoad);
  EXPECT_EQ(routing_policy_from_name("round_robin"), RoutingPolicy::RoundRobin);
  EXPECT_FALSE(routing_policy_from_name("random"));
}

TEST(ReplicaChoice, RoundRobinTurnsAndLeastLoadPicksTheIdlest) {
  std::vector<ReplicaCandidate> c(3);
  size_t cursor = 0;
  std::vector<size_t> seen;
  for (int i = 0; i < 6; ++i) seen.push_back(choose_replica(RoutingPolicy::RoundRobin, c, cursor).index);
  EXPECT_EQ(seen, (std::vector<size_t>{0, 1, 2, 0, 1, 2}));
  c[0].load = 5;
  c[1].load = 2;
  c[2].load = 7;
  EXPECT_EQ(choose_replica(RoutingPolicy::LeastLoad, c, cursor).index, 1u);
  // Equal loads take turns rather than piling onto the first.
  std::vector<ReplicaCandidate> eq(2);
  const size_t first = choose_replica(RoutingPolicy::LeastLoad, eq, cursor).index;
  EXPECT_NE(choose_replica(RoutingPolicy::LeastLoad, eq, cursor).index, first);
}

TEST(ReplicaChoice, CacheAwareFollowsThePrefixUnlessItsReplicaIsOverloaded) {
  std::vector<ReplicaCandidate> c(2);
  size_t cursor = 0;
  c[1].matched = 64;
  c[0].load = 0;
  c[1].load = 3;
  auto ch = choose_replica(RoutingPolicy::CacheAware, c, cursor);
  EXPECT_EQ(ch.index, 1u);
  EXPECT_TRUE(ch.cached);
  // Busier by more than both thresholds: the least loaded instead.
  c[1].load = 40;
  c[0].load = 10;
  ch = choose_replica(RoutingPolicy::CacheAware, c, cursor, {16, 1.5});
  EXPECT_EQ(ch.index, 0u);
  EXPECT_FALSE(ch.cached);
  // Beyond the absolute threshold but not the relative one: the prefix still wins.
  c[0].load = 30;
  EXPECT_EQ(choose_replica(RoutingPolicy::CacheAware, c, cursor, {16, 1.5}).index, 1u);
  // No match anywhere: least loaded.
  c[1].matched = 0;
  EXPECT_EQ(choose_replica(RoutingPolicy::CacheAware, c, cursor).index, 0u);
  // Equal matches: the less loaded of them.
  c[0].matched = c[1].matched = 32;
  c[0].load = 9;
  c[1].load = 4;
  EXPECT_EQ(choose_replica(RoutingPolicy::CacheAware, c, cursor).index, 1u);
}

TEST(ReplicaRegistry, ListsReportingReplicasAndDropsSilentOnes) {
  using namespace std::chrono_literals;
  router_internal::ReplicaRegistry reg(3000ms);
  const auto t0 = router_internal::ReplicaRegistry::Clock::now();
  ReplicaReport a{"attention-0", "tcp://10.0.0.1:7430", "z1", 3, 1, 100, 256, false};
  ReplicaReport b{"attention-1", "tcp://10.0.0.2:7430", "z2", 0, 0, 256, 256, false};
  EXPECT_TRUE(reg.report(a, t0));
  EXPECT_FALSE(reg.report(a, t0 + 250ms)) << "a known replica's report is not a join";
  EXPECT_TRUE(reg.report(b, t0 + 250ms));
  EXPECT_EQ(reg.list().replicas.size(), 2u);
  a.endpoint = "tcp://10.0.0.9:7430";  // restarted elsewhere
  EXPECT_TRUE(reg.report(a, t0 + 2000ms));
  EXPECT_EQ(reg.expire(t0 + 4000ms), 1u) << "attention-1 has been silent 3.75 s";
  ASSERT_EQ(reg.list().replicas.size(), 1u);
  EXPECT_EQ(reg.list().replicas[0].endpoint, "tcp://10.0.0.9:7430");
}

TEST(ReplicaRegistry, ReportsRoundTripAndBadOnesAreRefusedByField) {
  ReplicaReport r{"attention-0", "tcp://127.0.0.1:1", "", 2, 5, 10, 20, true};
  const ReplicaReport back = replica_report_from_json(to_json(r));
  EXPECT_EQ(back.name, r.name);
  EXPECT_EQ(back.waiting, 5);
  EXPECT_TRUE(back.draining);
  EXPECT_THROW(replica_report_from_json({{"name", "x"}}), std::invalid_argument);
  EXPECT_THROW(replica_report_from_json({{"name", "x"}, {"endpoint", "e"}, {"running", -1}}), std::invalid_argument);
  EXPECT_THROW(replica_report_from_json({{"name", "x"}, {"endpoint", "e"}, {"draining", "yes"}}), std::invalid_argument);
  EXPECT_EQ(replica_list_from_json(to_json(ReplicaList{{r, r}})).replicas.size(), 2u);
  EXPECT_THROW(replica_list_from_json(nlohmann::json::object()), std::invalid_argument);
}

TEST(ReplicaConfig, EndpointListsAndTheIthReplicasAddress) {
  EXPECT_EQ(split_endpoints("tcp://a:1, tcp://b:2,,"), (std::vector<std::string>{"tcp://a:1", "tcp://b:2"}));
  EXPECT_EQ(nth_endpoint("inproc://attention", 0), "inproc://attention");
  EXPECT_EQ(nth_endpoint("inproc://attention", 2), "inproc://attention-2");
  EXPECT_EQ(nth_endpoint("tcp://0.0.0.0:7410", 1), "tcp://0.0.0.0:7411");
  EXPECT_EQ(nth_endpoint("tcp://127.0.0.1:0", 3), "tcp://127.0.0.1:0") << "any free port stays any";
  EXPECT_EQ(nth_endpoint("127.0.0.1:9102", 1), "127.0.0.1:9103");
  nlohmann::json j = load_cluster_json("", {"attention.replicas=2"}, "tcp");
  const ClusterConfig c = ClusterConfig::from_json(j);
  EXPECT_EQ(c.attention_replicas, 2);
  EXPECT_EQ(c.attention_connect, "router") << "several replicas: the gateway finds them through the router";
  EXPECT_THROW(ClusterConfig::from_json(load_cluster_json("", {"attention.replicas=0"}, "tcp")), std::invalid_argument);
  EXPECT_THROW(ClusterConfig::from_json(load_cluster_json("", {"gateway.routing=random"}, "tcp")), std::invalid_argument);
  GatewayOptions o;
  o.balance_rel = 0.5;
  EXPECT_THROW(replica_routing(o), std::invalid_argument);
}

TEST(ReplicaRegistry, TwoLiveReplicasUnderOneNameKeepTheFirst) {
  using namespace std::chrono_literals;
  router_internal::ReplicaRegistry reg(3000ms);
  const auto t0 = router_internal::ReplicaRegistry::Clock::now();
  ReplicaReport a{"attention", "tcp://10.0.0.1:7430", "", 0, 0, 0, 0, false}, b = a;
  b.endpoint = "tcp://10.0.0.2:7430";
  EXPECT_TRUE(reg.report(a, t0));
  EXPECT_FALSE(reg.report(b, t0 + 100ms)) << "a still reports: b may not take its name";
  EXPECT_EQ(reg.conflicts(), 1u);
  EXPECT_EQ(reg.list().replicas[0].endpoint, a.endpoint);
  EXPECT_TRUE(reg.report(b, t0 + 2000ms)) << "a silent for 2 s: b is its restart";
  EXPECT_EQ(reg.list().replicas[0].endpoint, b.endpoint);
}
