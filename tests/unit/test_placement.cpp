// The router's placement table: least-loaded replicas, coverage, join and
// EPLB-style rebalancing plans.
#include <gtest/gtest.h>

#include "services/router/placement.h"

using namespace moemesh;

namespace {
std::set<int32_t> range(int32_t a, int32_t b) {
  std::set<int32_t> s;
  for (int32_t i = a; i < b; ++i) s.insert(i);
  return s;
}
}  // namespace

TEST(Placement, AssignsEachExpertToItsLeastLoadedLiveHolder) {
  Placement p(8);
  const int a = p.upsert("a", "tcp://a", range(0, 8), 8);
  const int b = p.upsert("b", "tcp://b", range(0, 8), 8);
  p.host(a)->inflight_rows = 100;
  std::vector<int64_t> counts(8, 0);
  counts[3] = 5;
  counts[6] = 2;
  auto got = p.assign(counts);
  EXPECT_EQ(got[3], b);
  EXPECT_EQ(got[6], b);
  EXPECT_EQ(got[0], -1) << "no tokens, no host";
  // Work given in this assignment counts: with equal load, big experts spread.
  p.host(a)->inflight_rows = 0;
  counts.assign(8, 0);
  counts[1] = 10;
  counts[2] = 9;
  got = p.assign(counts);
  EXPECT_NE(got[1], got[2]);
  // A dead host is never picked; an expert only it held is uncovered.
  p.set_state(b, HostState::Dead);
  got = p.assign(counts);
  EXPECT_EQ(got[1], a);
  EXPECT_EQ(got[2], a);
  EXPECT_TRUE(p.uncovered().empty());
  p.set_state(a, HostState::Dead);
  EXPECT_EQ(p.uncovered().size(), 8u);
  EXPECT_EQ(p.assign(counts)[1], -1);
}

TEST(Placement, DrainingHostsTakeWorkOnlyWhenNoReadyHostCan) {
  Placement p(4);
  const int a = p.upsert("a", "tcp://a", range(0, 4), 4);
  const int b = p.upsert("b", "tcp://b", range(2, 4), 4);
  p.set_state(a, HostState::Draining);
  EXPECT_EQ(p.holders(3), std::vector<int>{b});
  EXPECT_EQ(p.holders(0), std::vector<int>{a}) << "its sole experts still have a home until moved";
  EXPECT_EQ(p.sole_holdings(a), (std::vector<int32_t>{0, 1}));
}

TEST(Placement, JoiningHostGetsTheLeastReplicatedHottestExperts) {
  Placement p(6);
  p.upsert("a", "tcp://a", range(0, 6), 6);
  p.upsert("b", "tcp://b", range(0, 3), 6);
  for (int i = 0; i < 50; ++i) p.count_tokens(5, 1);
  for (int i = 0; i < 20; ++i) p.count_tokens(4, 1);
  // Experts 3..5 have one replica; of those 5 is hottest, then 4.
  EXPECT_EQ(p.plan_join(2), (std::vector<int32_t>{4, 5}));
  EXPECT_EQ(p.plan_join(4).size(), 4u);
}

TEST(Placement, RebalanceReplicatesHotExpertsAndEvictsColdReplicas) {
  Placement p(8);
  const int a = p.upsert("a", "tcp://a", range(0, 8), 8);
  const int b = p.upsert("b", "tcp://b", {0, 1, 2, 3}, 4);  // full
  const int c = p.upsert("c", "tcp://c", {0, 1, 2, 3}, 6);  // room for 2
  for (int i = 0; i < 1000; ++i) p.count_tokens(7, 1);
  for (int i = 0; i < 600; ++i) p.count_tokens(6, 1);
  for (int i = 0; i < 10; ++i) p.count_tokens(0, 1);
  const auto moves = p.plan_rebalance(4);
  ASSERT_FALSE(moves.empty());
  std::map<int32_t, int> added;
  for (const auto& m : moves) {
    if (m.load) ++added[m.expert];
    if (!m.load) EXPECT_NE(m.expert, 7) << "hot experts are not evicted";
    if (!m.load) EXPECT_EQ(m.host, b) << "only a full host evicts";
  }
  EXPECT_GE(added[7], 1) << "the hottest expert gets a replica";
  EXPECT_GE(added[6], 1);
  for (const auto& m : moves) EXPECT_NE(m.host, a) << "a already holds everything";
  (void)c;
  // No load, no moves.
  Placement q(4);
  q.upsert("a", "tcp://a", range(0, 4), 4);
  q.upsert("b", "tcp://b", range(0, 2), 4);
  EXPECT_TRUE(q.plan_rebalance(8).empty());
}

TEST(Placement, ReRegisteringAHostRevivesIt) {
  Placement p(4);
  const int a = p.upsert("a", "tcp://a", range(0, 4), 4);
  p.set_state(a, HostState::Dead);
  EXPECT_EQ(p.upsert("a", "tcp://a2", {1, 2}, 4), a);
  EXPECT_EQ(p.host(a)->state, HostState::Ready);
  EXPECT_EQ(p.host(a)->endpoint, "tcp://a2");
  EXPECT_EQ(p.host(a)->experts, (std::set<int32_t>{1, 2}));
}
