// The dispatcher's pure parts: deadlines from measured latency, the choice of
// a replica (health, draining, zones, load), and one MoE call's state through
// failures, retries and hedges, with time passed in.
#include <gtest/gtest.h>

#include <cstring>

#include "services/expert_host/dispatch_state.h"

using namespace moemesh;
using namespace moemesh::dispatch_internal;
using namespace std::chrono_literals;

namespace {
TableHost table_host(const std::string& name, std::vector<int32_t> experts, const std::string& zone = "",
                     HostState state = HostState::Ready, bool suspect = false) {
  TableHost h;
  h.name = name;
  h.endpoint = "tcp://" + name;
  h.zone = zone;
  h.state = state;
  h.experts = std::move(experts);
  h.suspect = suspect;
  return h;
}

// A host set from a table, every host connected.
HostSet hosts_of(std::vector<TableHost> hs, const std::string& zone = "", int64_t overload = 1024, uint64_t version = 1) {
  HostSet s(8, zone, overload);
  PlacementTable t;
  t.version = version;
  t.hosts = std::move(hs);
  s.apply(t);
  for (size_t i = 0; i < s.size(); ++i) s.at(static_cast<int>(i)).up = true;
  return s;
}

int chosen(const HostSet& s, int32_t e, std::vector<int> avoid = {}) {
  int h = -1;
  const Pick p = s.choose(e, 1, avoid, &h);
  return p == Pick::Chosen ? h : p == Pick::Wait ? -2 : -3;
}
constexpr int kWait = -2, kNone = -3;

Routing routing(int64_t tokens, int64_t k, std::vector<int32_t> experts) {
  Routing r;
  r.tokens = tokens;
  r.top_k = k;
  r.experts = std::move(experts);
  for (size_t i = 0; i < r.experts.size(); ++i) r.weights.push_back(0.25f + 0.125f * static_cast<float>(i % 4));
  return r;
}

// What a host answers for a part: per row, Σ weight · (expert id + 1) in every column.
std::vector<float> answer(const Part& p, int64_t k, int64_t hidden) {
  std::vector<float> y(p.rows.size() * hidden, 0.0f);
  for (size_t i = 0; i < p.rows.size(); ++i)
    for (int64_t j = 0; j < k; ++j) {
      const int32_t e = p.experts[i * k + j];
      if (e < 0) continue;
      for (int64_t d = 0; d < hidden; ++d) y[i * hidden + d] += p.weights[i * k + j] * static_cast<float>(e + 1 + d);
    }
  return y;
}
}  // namespace

TEST(DispatchDeadline, FollowsTheMeasuredQuantileNeverBelowTheFloor) {
  LatencyTracker t;
  DeadlineRule r;
  r.percentile = 0.99;
  r.factor = 4.0;
  r.floor = 1000us;
  EXPECT_EQ(t.deadline(8, r), 4000us) << "unmeasured: four floors";
  for (int i = 0; i < 64; ++i) t.add(8, i < 63 ? 0.010 : 0.030);
  EXPECT_NEAR(*t.quantile(8, 0.5), 0.010, 1e-6);
  EXPECT_NEAR(*t.quantile(8, 0.99), 0.030, 1e-6);
  EXPECT_NEAR(t.deadline(8, r).count(), 120000, 10) << "4 × p99";
  // A bigger size scales from the nearest smaller one measured.
  EXPECT_NEAR(*t.quantile(32, 0.5), 0.040, 1e-6);
  // A fast host is held to the floor, not to 4 × its microseconds.
  LatencyTracker fast;
  for (int i = 0; i < 16; ++i) fast.add(1, 0.00005);
  r.floor = 500000us;
  EXPECT_EQ(fast.deadline(1, r), 500000us);
}

TEST(HostSet, TakesOnlyNewerTablesAndReconnectsAMovedHost) {
  HostSet s(8, "", 1024);
  PlacementTable t;
  t.version = 5;
  t.hosts = {table_host("a", {0, 1}), table_host("b", {2, 3})};
  auto c = s.apply(t);
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->disconnect.empty());
  EXPECT_TRUE(s.at(0).listed && s.at(1).listed) << "both listed: the dispatcher dials them";
  EXPECT_EQ(chosen(s, 0), kWait) << "listed but not connected yet";
  s.at(0).up = s.at(1).up = true;
  EXPECT_EQ(chosen(s, 0), 0);
  EXPECT_EQ(chosen(s, 7), kNone) << "nobody holds 7";
  t.version = 4;
  EXPECT_FALSE(s.apply(t)) << "an older table is ignored";
  // b moved (restarted elsewhere): dropped and dialled again; a left the table.
  t.version = 6;
  t.hosts = {table_host("b", {2, 3})};
  t.hosts[0].endpoint = "tcp://b2";
  c = s.apply(t);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->disconnect, std::vector<int>{1});
  EXPECT_EQ(s.at(1).endpoint, "tcp://b2");
  EXPECT_TRUE(s.at(1).listed);
  EXPECT_FALSE(s.at(1).up);
  EXPECT_EQ(chosen(s, 0), kNone) << "a is no longer listed";
  // A table naming an expert the model lacks makes that host hold nothing here.
  t.version = 7;
  t.hosts = {table_host("b", {2, 99})};
  s.apply(t);
  s.at(1).up = true;
  EXPECT_EQ(chosen(s, 2), kNone);
}

TEST(HostSet, PrefersHealthyReadyHostsThenSuspectThenDraining) {
  HostSet s = hosts_of({table_host("draining", {0}, "", HostState::Draining), table_host("suspect", {0}, "", HostState::Ready, true),
                        table_host("ready", {0})});
  EXPECT_EQ(chosen(s, 0), 2);
  EXPECT_EQ(chosen(s, 0, {2}), 1) << "a suspect ready host before a draining one";
  EXPECT_EQ(chosen(s, 0, {2, 1}), 0) << "a draining host only where nothing else is usable";
  EXPECT_EQ(chosen(s, 0, {0, 1, 2}), kWait) << "holders exist, none usable now";
  // The dispatcher's own evidence (a missed deadline) demotes like the router's probation.
  s.at(2).slow_at = 1;
  EXPECT_EQ(chosen(s, 0), 1) << "equal tier: the less loaded";
  // Least cost among equals.
  HostSet t = hosts_of({table_host("a", {0}), table_host("b", {0})});
  t.at(0).inflight_rows = 10;
  EXPECT_EQ(chosen(t, 0), 1);
}

TEST(HostSet, AMuchSlowerReplicaIsChosenOnlyWhenTheFastOnesQueueOutweighsIt) {
  HostSet s = hosts_of({table_host("near", {0}), table_host("slow-link", {0})});
  for (int i = 0; i < 16; ++i) {
    s.at(0).latency.add(1, 0.001);
    s.at(1).latency.add(1, 0.040);
  }
  EXPECT_EQ(chosen(s, 0), 0) << "1 ms before 40 ms";
  s.at(0).inflight_rows = 15;
  EXPECT_EQ(chosen(s, 0), 0) << "16 rows there: ~16 ms, still sooner";
  s.at(0).inflight_rows = 100;
  EXPECT_EQ(chosen(s, 0), 1) << "~128 ms of queue: the slow link is sooner";
  // Unmeasured costs nothing: a new host is tried, and so measured.
  HostSet t = hosts_of({table_host("known", {0}), table_host("new", {0})});
  for (int i = 0; i < 16; ++i) t.at(0).latency.add(1, 0.001);
  EXPECT_EQ(chosen(t, 0), 1);
}

TEST(HostSet, StaysInItsZoneUnlessTheZoneIsOverloaded) {
  HostSet s = hosts_of({table_host("far", {0, 1}, "west"), table_host("near", {0}, "east")}, "east", 100);
  EXPECT_EQ(chosen(s, 0), 1) << "own zone, even when the other is idle";
  EXPECT_EQ(chosen(s, 1), 0) << "another zone when the own has no replica";
  s.at(1).inflight_rows = 150;
  s.at(0).inflight_rows = 80;
  EXPECT_EQ(chosen(s, 0), 1) << "over the limit but the other is not half as busy";
  s.at(0).inflight_rows = 10;
  EXPECT_EQ(chosen(s, 0), 0) << "over the limit and twice the other's cost";
  EXPECT_TRUE(s.cross_zone(0));
  EXPECT_EQ(chosen(s, 0, {0}), 1);
  s.at(1).up = false;  // the zone's replica dropped
  EXPECT_EQ(chosen(s, 0), 0);
}

TEST(CallState, OneHostHoldingEveryExpertGivesItsAnswerBitForBit) {
  HostSet s = hosts_of({table_host("a", {0, 1, 2, 3, 4, 5, 6, 7})});
  const Routing r = routing(3, 2, {0, 5, 1, 2, 7, 3});
  CallState call(1, r, Clock::now(), 30s);
  const auto parts = call.plan(s);
  ASSERT_EQ(parts.size(), 1u);
  const Part& p = call.part(parts[0]);
  EXPECT_EQ(p.rows, (std::vector<int32_t>{0, 1, 2}));
  const auto y = answer(p, 2, 4);
  EXPECT_TRUE(call.combined(parts[0], y));
  ASSERT_TRUE(call.done());
  std::vector<float> out(3 * 4, -1.0f);
  call.sum(out.data(), 4);
  EXPECT_EQ(std::memcmp(out.data(), y.data(), y.size() * sizeof(float)), 0);
}

TEST(CallState, SplitsByHostAndSumsThePartsWhereverTheyWereComputed) {
  HostSet s = hosts_of({table_host("a", {0, 1, 2, 3}), table_host("b", {4, 5, 6, 7})});
  const Routing r = routing(2, 2, {0, 5, 6, 1});
  CallState call(1, r, Clock::now(), 30s);
  const auto parts = call.plan(s);
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(s.at(0).inflight_rows + s.at(1).inflight_rows, 4) << "every row counted where it went";
  for (int q : parts) EXPECT_TRUE(call.combined(q, answer(call.part(q), 2, 3)));
  ASSERT_TRUE(call.done());
  std::vector<float> out(2 * 3), want(2 * 3, 0.0f);
  call.sum(out.data(), 3);
  for (int t = 0; t < 2; ++t)
    for (int j = 0; j < 2; ++j)
      for (int d = 0; d < 3; ++d) want[t * 3 + d] += r.weights[t * 2 + j] * static_cast<float>(r.experts[t * 2 + j] + 1 + d);
  for (size_t i = 0; i < out.size(); ++i) EXPECT_FLOAT_EQ(out[i], want[i]);
}

TEST(CallState, ALostHostsWorkIsPlannedAgainOnAReplica) {
  HostSet s = hosts_of({table_host("a", {0, 1}), table_host("b", {0, 1})});
  const Routing r = routing(2, 1, {0, 0});
  CallState call(2, r, Clock::now(), 30s);
  auto parts = call.plan(s);
  ASSERT_EQ(parts.size(), 1u) << "an expert's rows go to one replica";
  const int first = call.part(parts[0]).host;
  // Its connection drops: the part fails and the group waits for a plan.
  s.at(first).up = false;
  EXPECT_EQ(call.live_parts_on(first), parts);
  call.failed(parts[0], false);
  EXPECT_TRUE(call.waiting());
  auto again = call.plan(s);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_NE(call.part(again[0]).host, first);
  EXPECT_FALSE(call.combined(parts[0], answer(call.part(parts[0]), 1, 2))) << "a late answer of a failed part is not used";
  EXPECT_TRUE(call.combined(again[0], answer(call.part(again[0]), 1, 2)));
  EXPECT_TRUE(call.done());
}

TEST(CallState, NotHeldAvoidsTheHostAndAsksAgainWhenNoOtherIsLeft) {
  HostSet s = hosts_of({table_host("a", {0}), table_host("b", {0})});
  CallState call(1, routing(1, 1, {0}), Clock::now(), 30s);
  auto p1 = call.plan(s);
  const int h1 = call.part(p1[0]).host;
  call.failed(p1[0], true);  // NotHeld
  auto p2 = call.plan(s);
  ASSERT_EQ(p2.size(), 1u);
  EXPECT_NE(call.part(p2[0]).host, h1);
  call.failed(p2[0], true);
  auto p3 = call.plan(s);
  ASSERT_EQ(p3.size(), 1u) << "every holder refused once: asked again rather than waiting for nothing";
}

TEST(CallState, AnExpertWithNoHolderFailsTheCallClearly) {
  HostSet s = hosts_of({table_host("a", {0, 1})});
  CallState call(3, routing(1, 2, {1, 6}), Clock::now(), 30s);
  try {
    call.plan(s);
    ADD_FAILURE() << "planned";
  } catch (const CallFailure& f) {
    EXPECT_TRUE(f.no_replica);
    EXPECT_NE(f.what.find("expert 6 of layer 3"), std::string::npos) << f.what;
  }
  // Holders that exist but are all unreachable: the call waits (up to max_wait), it does not fail.
  s.at(0).up = false;
  CallState waits(3, routing(1, 1, {1}), Clock::now(), 30s);
  EXPECT_TRUE(waits.plan(s).empty());
  EXPECT_TRUE(waits.waiting());
  EXPECT_NE(waits.pending_summary(s).find("no usable host"), std::string::npos);
}

TEST(CallState, AnOverduePartIsHedgedOnAReplicaAndTheFirstAnswerWins) {
  HostSet s = hosts_of({table_host("a", {0, 1}), table_host("b", {0, 1})});
  const auto t0 = Clock::now();
  CallState call(1, routing(2, 1, {0, 0}), t0, 30s);
  auto parts = call.plan(s);
  ASSERT_EQ(parts.size(), 1u);
  call.part(parts[0]).deadline = t0 + 100ms;
  EXPECT_TRUE(call.overdue(t0 + 50ms).empty());
  EXPECT_EQ(call.next_deadline(), t0 + 100ms);
  EXPECT_EQ(call.overdue(t0 + 150ms), parts);
  const auto hedge = call.hedge(parts[0], s);
  ASSERT_EQ(hedge.size(), 1u);
  EXPECT_NE(call.part(hedge[0]).host, call.part(parts[0]).host);
  EXPECT_TRUE(call.overdue(t0 + 150ms).empty()) << "a hedged part is not hedged twice";
  // The slow host answers first after all: its answer is used, the hedge's is not.
  EXPECT_TRUE(call.combined(parts[0], answer(call.part(parts[0]), 1, 2)));
  EXPECT_TRUE(call.done());
  EXPECT_FALSE(call.combined(hedge[0], answer(call.part(hedge[0]), 1, 2)));
  // With no other replica there is nothing to hedge on.
  HostSet one = hosts_of({table_host("a", {0, 1})});
  CallState lone(1, routing(1, 1, {0}), t0, 30s);
  auto lp = lone.plan(one);
  EXPECT_TRUE(lone.hedge(lp[0], one).empty());
}
