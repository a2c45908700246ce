// Graceful stop inside one process: the drain state an actor keeps, and an
// expert host asked to drain or to leave (twice).
#include <gtest/gtest.h>

#include <future>

#include "actors/drain.h"
#include "actors/control_call.h"
#include "services/expert_host/api.h"
#include "services/router/api.h"
#include "tests/support/test_models.h"

using namespace moemesh;
using namespace moemesh::testing;

TEST(Drain, TheStateReportsOnceWhenIdleAndASecondRequestReleasesTheFirst) {
  DrainState s;
  EXPECT_FALSE(s.draining());
  s.settle(true);  // not draining: nothing to report
  auto first = std::make_shared<std::promise<void>>();
  auto f1 = first->get_future();
  s.start(first);
  EXPECT_TRUE(s.draining());
  s.settle(false);
  EXPECT_EQ(f1.wait_for(std::chrono::seconds(0)), std::future_status::timeout) << "work still running";
  auto second = std::make_shared<std::promise<void>>();
  auto f2 = second->get_future();
  s.start(second);
  EXPECT_EQ(f1.wait_for(std::chrono::seconds(0)), std::future_status::ready);
  s.settle(true);
  EXPECT_EQ(f2.wait_for(std::chrono::seconds(0)), std::future_status::ready);
  s.settle(true);  // reported once; a promise set twice would throw
  EXPECT_TRUE(s.draining());
}

TEST(Drain, AnActorThatIsGoneCountsAsDrained) { EXPECT_TRUE(drain_actor(caf::actor{}, std::chrono::milliseconds(10))); }

TEST(Drain, AnExpertHostAnswersARepeatedLeaveAndDrainsWhenIdle) {
  zmq::context_t ctx{1};
  ExpertHostOptions o;
  o.model = test_model("tiny", true).string();
  o.bind = "tcp://127.0.0.1:0";
  o.experts = {0, 1, 2};
  ExpertHostService s(o, ctx);
  const std::string ep = s.start();
  EXPECT_EQ(control_call(ctx, ep, to_json(HostCommand{HostCommandKind::Leave, {}}))["ok"], true);
  // A router may say it again (a retry, a second router): answered, no harm done.
  EXPECT_EQ(control_call(ctx, ep, to_json(HostCommand{HostCommandKind::Leave, {}}))["ok"], true);
  EXPECT_EQ(s.left().wait_for(std::chrono::seconds(0)), std::future_status::ready);
  // No router and nothing in flight: drained at once.
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(s.drain(std::chrono::seconds(10)));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
}
