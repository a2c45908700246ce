// The router's pure parts: the placement table (replicas, coverage, zones, join
// and rebalance plans) and membership (who is in the expert tier, probation,
// drain), with time passed in.
#include <gtest/gtest.h>

#include "services/router/membership.h"
#include "services/router/placement.h"

using namespace moemesh;
using namespace moemesh::router_internal;
using namespace std::chrono_literals;

namespace {
std::set<int32_t> range(int32_t a, int32_t b) {
  std::set<int32_t> s;
  for (int32_t i = a; i < b; ++i) s.insert(i);
  return s;
}

HostReport report(const std::string& name, std::vector<int32_t> experts, uint64_t generation = 1, int64_t capacity = -1,
                  const std::string& zone = "") {
  HostReport r;
  r.name = name;
  r.endpoint = "tcp://" + name;
  r.zone = zone;
  r.experts = std::move(experts);
  r.generation = generation;
  r.capacity = capacity;
  return r;
}

std::vector<int32_t> iota(int32_t a, int32_t b) {
  const auto s = range(a, b);
  return {s.begin(), s.end()};
}

const TableHost* in_table(const PlacementTable& t, const std::string& name) {
  for (const auto& h : t.hosts)
    if (h.name == name) return &h;
  return nullptr;
}

MembershipOptions options() {
  MembershipOptions o;
  o.heartbeat_timeout = 1000ms;
  o.leave_grace = 200ms;
  o.probation = 5000ms;
  o.probation_max = 60000ms;
  o.strike_window = 60000ms;
  return o;
}
}  // namespace

TEST(Placement, DrainingHostsServeOnlyWhatNoReadyHostHolds) {
  Placement p(4);
  const int a = p.upsert("a", "tcp://a", "", range(0, 4), 4);
  const int b = p.upsert("b", "tcp://b", "", range(2, 4), 4);
  p.set_state(a, HostState::Draining);
  EXPECT_EQ(p.holders(3), std::vector<int>{b});
  EXPECT_EQ(p.holders(0), std::vector<int>{a}) << "its sole experts still have a home until moved";
  EXPECT_EQ(p.sole_holdings(a), (std::vector<int32_t>{0, 1}));
  EXPECT_TRUE(p.uncovered().empty());
  p.set_state(a, HostState::Dead);
  EXPECT_EQ(p.uncovered(), (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(in_table(p.table(1), "a"), nullptr) << "a dead host leaves the table";
}

TEST(Placement, JoiningHostGetsItsZonesMissingExpertsThenTheLeastReplicatedHottest) {
  Placement p(6);
  p.upsert("a", "tcp://a", "east", range(0, 6), 6);
  p.upsert("b", "tcp://b", "east", range(0, 3), 6);
  p.upsert("w", "tcp://w", "west", range(0, 2), 6);
  p.count_rows(5, 50);
  p.count_rows(4, 20);
  // In the east experts 3..5 have one replica; of those 5 is hottest, then 4.
  EXPECT_EQ(p.plan_join("east", 2), (std::vector<int32_t>{4, 5}));
  EXPECT_EQ(p.plan_join("east", 4).size(), 4u);
  // In the west 2..5 have no replica at all: they come first, hottest first.
  EXPECT_EQ(p.plan_join("west", 2), (std::vector<int32_t>{4, 5}));
  EXPECT_EQ(p.plan_join("west", 4), (std::vector<int32_t>{2, 3, 4, 5}));
  EXPECT_EQ(p.uncovered_in_zone("west"), (std::vector<int32_t>{2, 3, 4, 5}));
}

TEST(Placement, RebalanceReplicatesHotExpertsAndEvictsColdReplicas) {
  Placement p(8);
  const int a = p.upsert("a", "tcp://a", "", range(0, 8), 8);
  const int b = p.upsert("b", "tcp://b", "", {0, 1, 2, 3}, 4);  // full
  p.upsert("c", "tcp://c", "", {0, 1, 2, 3}, 6);                 // room for 2
  p.count_rows(7, 1000);
  p.count_rows(6, 600);
  p.count_rows(0, 10);
  const auto moves = p.plan_rebalance(4);
  ASSERT_FALSE(moves.empty());
  std::map<int32_t, int> added;
  for (const auto& m : moves) {
    if (m.load) {
      ++added[m.expert];
    } else {
      EXPECT_NE(m.expert, 7) << "hot experts are not evicted";
      EXPECT_EQ(m.host, b) << "only a full host evicts";
    }
    EXPECT_NE(m.host, a) << "a already holds everything";
  }
  EXPECT_GE(added[7], 1) << "the hottest expert gets a replica";
  EXPECT_GE(added[6], 1);
  // No load, no moves.
  Placement q(4);
  q.upsert("a", "tcp://a", "", range(0, 4), 4);
  q.upsert("b", "tcp://b", "", range(0, 2), 4);
  EXPECT_TRUE(q.plan_rebalance(8).empty());
}

TEST(Placement, RebalanceGivesEveryZoneAReplicaNeverEvictingAZonesLast) {
  Placement p(4);
  p.upsert("e", "tcp://e", "east", range(0, 4), 4);
  const int w = p.upsert("w", "tcp://w", "west", {0, 1}, 3);
  p.count_rows(3, 100);
  p.count_rows(2, 50);
  const auto moves = p.plan_rebalance(8);
  std::set<int32_t> loaded_west;
  for (const auto& m : moves) {
    if (m.host == w && m.load) loaded_west.insert(m.expert);
    if (!m.load) ADD_FAILURE() << "evicted " << m.expert << ": the zone's last replica";
  }
  EXPECT_TRUE(loaded_west.count(3)) << "the hottest expert the west lacks comes first";
  EXPECT_EQ(loaded_west.size(), 1u) << "only one fits";
}

TEST(Membership, ReportsRegisterHostsAndEveryChangeIsANewerTable) {
  Membership m(8, options(), 100);
  const auto t0 = Clock::now();
  Actions a = m.report(report("a", iota(0, 8)), t0);
  EXPECT_TRUE(a.publish);
  EXPECT_EQ(a.connect.size(), 1u) << "the router opens its control connection";
  const uint64_t v1 = m.version();
  EXPECT_GT(v1, 100u);
  a = m.report(report("a", iota(0, 8)), t0 + 100ms);
  EXPECT_FALSE(a.publish) << "a heartbeat with nothing new publishes nothing";
  EXPECT_EQ(m.version(), v1);
  // The host's own word on its experts wins when no command is pending.
  a = m.report(report("a", iota(0, 4), 2), t0 + 200ms);
  EXPECT_TRUE(a.publish);
  EXPECT_GT(m.version(), v1);
  EXPECT_EQ(in_table(m.table(), "a")->experts, iota(0, 4));
}

TEST(Membership, AnEmptyHostIsGivenExpertsAndAStaleReportDoesNotUndoTheAnswer) {
  Membership m(8, options(), 1);
  const auto t0 = Clock::now();
  m.report(report("a", iota(0, 8)), t0);
  Actions a = m.report(report("b", {}, 0, 4), t0);
  ASSERT_EQ(a.commands.size(), 1u);
  EXPECT_EQ(a.commands[0].command.kind, HostCommandKind::Load);
  EXPECT_EQ(a.commands[0].command.experts.size(), 4u);
  const int b = a.commands[0].host;
  // While the load is pending b's heartbeats (still empty) do not overwrite the plan ...
  m.report(report("b", {}, 0, 4), t0 + 100ms);
  // ... the answer makes the experts routable ...
  a = m.holds(b, a.commands[0].command.experts, 1);
  EXPECT_TRUE(a.publish);
  EXPECT_EQ(in_table(m.table(), "b")->experts.size(), 4u);
  // ... and a report older than the answer (generation 0) changes nothing.
  a = m.report(report("b", {}, 0, 4), t0 + 200ms);
  EXPECT_FALSE(a.publish);
  EXPECT_EQ(in_table(m.table(), "b")->experts.size(), 4u);
}

TEST(Membership, OnlyTheRoutersOwnEvidenceTakesAHostOut) {
  Membership m(4, options(), 1);
  const auto t0 = Clock::now();
  Actions a = m.report(report("a", iota(0, 4)), t0);
  const int id = a.connect.at(0);
  m.report(report("b", iota(0, 4)), t0);
  // A suspicion of a host that still reports is probation: it stays in the table, marked.
  a = m.suspect({"a", SuspicionReason::Deadline, "late"}, t0 + 100ms);
  EXPECT_TRUE(a.publish);
  ASSERT_NE(in_table(m.table(), "a"), nullptr);
  EXPECT_TRUE(in_table(m.table(), "a")->suspect);
  EXPECT_EQ(m.suspicions(SuspicionReason::Deadline), 1u);
  // Reports keep it in; the probation runs out by itself.
  auto beat = [&](Clock::time_point t) {
    m.report(report("a", iota(0, 4)), t);
    m.report(report("b", iota(0, 4)), t);
  };
  for (auto t = 500ms; t <= 4500ms; t += 500ms) {
    beat(t0 + t);
    m.tick(t0 + t);
    ASSERT_NE(in_table(m.table(), "a"), nullptr);
    EXPECT_TRUE(in_table(m.table(), "a")->suspect) << "still on probation at " << t.count() << " ms";
  }
  beat(t0 + 5000ms);
  a = m.tick(t0 + 5200ms);
  EXPECT_TRUE(a.publish);
  ASSERT_NE(in_table(m.table(), "a"), nullptr);
  EXPECT_FALSE(in_table(m.table(), "a")->suspect) << "probation lifted";
  // Silence past heartbeat_timeout takes it out; so does its connection closing.
  a = m.tick(t0 + 6100ms);
  ASSERT_EQ(in_table(m.table(), "a"), nullptr) << "silent for 1100 ms";
  EXPECT_TRUE(a.publish);
  m.report(report("a", iota(0, 4)), t0 + 6200ms);
  ASSERT_NE(in_table(m.table(), "a"), nullptr) << "a report readmits it";
  m.connection_down(id);
  EXPECT_EQ(in_table(m.table(), "a"), nullptr);
}

TEST(Membership, SuspicionOfASilentHostTakesItOut) {
  Membership m(4, options(), 1);
  const auto t0 = Clock::now();
  m.report(report("a", iota(0, 4)), t0);
  m.report(report("b", iota(0, 4)), t0 + 1500ms);
  m.suspect({"a", SuspicionReason::Disconnect, "link down"}, t0 + 1500ms);
  EXPECT_EQ(in_table(m.table(), "a"), nullptr);
  EXPECT_NE(in_table(m.table(), "b"), nullptr);
  EXPECT_EQ(m.suspicions(SuspicionReason::Disconnect), 1u);
}

TEST(Membership, AFlappingHostsProbationDoublesWithEachStrike) {
  MembershipOptions o = options();
  o.heartbeat_timeout = 600000ms;  // never silent here: only probation is under test
  Membership m(4, o, 1);
  const auto t0 = Clock::now();
  m.report(report("a", iota(0, 4)), t0);
  m.suspect({"a", SuspicionReason::Deadline, ""}, t0);
  m.tick(t0 + 5001ms);
  EXPECT_FALSE(in_table(m.table(), "a")->suspect) << "first strike: 5 s";
  m.suspect({"a", SuspicionReason::Deadline, ""}, t0 + 6000ms);
  m.tick(t0 + 6000ms + 9000ms);
  EXPECT_TRUE(in_table(m.table(), "a")->suspect) << "second strike within the window: 10 s";
  m.tick(t0 + 6000ms + 10001ms);
  EXPECT_FALSE(in_table(m.table(), "a")->suspect);
  // Long after the last strike the count starts again.
  const auto later = t0 + 200000ms;
  m.suspect({"a", SuspicionReason::Deadline, ""}, later);
  m.tick(later + 5001ms);
  EXPECT_FALSE(in_table(m.table(), "a")->suspect);
  // Many strikes stay capped at probation_max.
  auto t = later + 10000ms;
  for (int i = 0; i < 10; ++i) m.suspect({"a", SuspicionReason::Deadline, ""}, t);
  m.tick(t + 59000ms);
  EXPECT_TRUE(in_table(m.table(), "a")->suspect);
  m.tick(t + 60001ms);
  EXPECT_FALSE(in_table(m.table(), "a")->suspect);
}

TEST(Membership, DrainMovesSoleExpertsFirstAndTheHostLeavesOnlyThen) {
  Membership m(4, options(), 1);
  const auto t0 = Clock::now();
  Actions a = m.report(report("a", iota(0, 4)), t0);
  const int ida = a.connect.at(0);
  a = m.report(report("b", iota(2, 4), 1, 4), t0);
  const int idb = a.connect.at(0);
  std::vector<int32_t> reassigned;
  a = m.drain("a", t0, &reassigned);
  EXPECT_EQ(reassigned, iota(0, 2));
  ASSERT_EQ(a.commands.size(), 1u);
  EXPECT_EQ(a.commands[0].host, idb);
  EXPECT_EQ(a.commands[0].command.experts, iota(0, 2));
  EXPECT_EQ(in_table(m.table(), "a")->state, HostState::Draining);
  // Not yet: 0 and 1 are still only on a.
  for (const auto& c : m.tick(t0 + 500ms).commands) EXPECT_NE(c.command.kind, HostCommandKind::Leave);
  m.report(report("a", iota(0, 4)), t0 + 500ms);
  m.holds(idb, iota(0, 4), 2);
  m.report(report("b", iota(0, 4), 2, 4), t0 + 600ms);
  a = m.tick(t0 + 700ms);
  ASSERT_EQ(a.commands.size(), 1u);
  EXPECT_EQ(a.commands[0].host, ida);
  EXPECT_EQ(a.commands[0].command.kind, HostCommandKind::Leave);
  EXPECT_EQ(in_table(m.table(), "a"), nullptr);
  EXPECT_THROW(m.drain("nobody", t0, nullptr), std::invalid_argument);
}

TEST(Membership, AStoppingHostLeavesOnceTheTableSayingSoHadTimeToSpread) {
  Membership m(4, options(), 1);
  const auto t0 = Clock::now();
  m.report(report("a", iota(0, 4)), t0);
  Actions a = m.leaving("a", t0);
  EXPECT_TRUE(a.publish);
  EXPECT_TRUE(m.tick(t0 + 100ms).commands.empty()) << "within leave_grace";
  m.report(report("a", iota(0, 4)), t0 + 150ms);
  a = m.tick(t0 + 250ms);
  ASSERT_EQ(a.commands.size(), 1u) << "its experts go with it: it is stopping anyway";
  EXPECT_EQ(a.commands[0].command.kind, HostCommandKind::Leave);
}

TEST(RouterProtocol, MessagesRoundTripAndBadOnesAreRefusedByField) {
  HostReport r = report("a", {1, 2, 3}, 7, 16, "eu");
  r.expert_rows = {{1, 10}, {3, 4}};
  const HostReport back = host_report_from_json(to_json(r), 16);
  EXPECT_EQ(back.name, "a");
  EXPECT_EQ(back.zone, "eu");
  EXPECT_EQ(back.experts, r.experts);
  EXPECT_EQ(back.generation, 7u);
  EXPECT_EQ(back.expert_rows, r.expert_rows);
  nlohmann::json j = to_json(r);
  j["experts"] = {1, 99};
  EXPECT_THROW(host_report_from_json(j, 16), std::invalid_argument);
  EXPECT_THROW(host_report_from_json(nlohmann::json::array(), 16), std::invalid_argument);

  PlacementTable t;
  t.version = 42;
  t.hosts.push_back({"a", "tcp://a", "eu", HostState::Draining, {0, 5}, 1.5, true});
  const PlacementTable tb = placement_table_from_json(to_json(t));
  EXPECT_EQ(tb.version, 42u);
  ASSERT_EQ(tb.hosts.size(), 1u);
  EXPECT_EQ(tb.hosts[0].state, HostState::Draining);
  EXPECT_TRUE(tb.hosts[0].suspect);
  EXPECT_EQ(tb.hosts[0].experts, (std::vector<int32_t>{0, 5}));

  const Suspicion s = suspicion_from_json(to_json(Suspicion{"a", SuspicionReason::Deadline, "slow"}));
  EXPECT_EQ(s.reason, SuspicionReason::Deadline);
  EXPECT_THROW(suspicion_from_json({{"host", "a"}, {"reason", "gossip"}}), std::invalid_argument);
  EXPECT_EQ(router_command_from_json(to_json(RouterCommand{RouterCommandKind::Drain, "x"})).host, "x");
  EXPECT_THROW(router_command_from_json({{"cmd", "explode"}}), std::invalid_argument);
  EXPECT_THROW(router_command_from_json({{"cmd", "drain"}}), std::invalid_argument) << "drain names a host";
  EXPECT_EQ(host_command_from_json(to_json(HostCommand{HostCommandKind::Unload, {3}})).experts, std::vector<int32_t>{3});
}
