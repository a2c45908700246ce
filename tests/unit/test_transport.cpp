// The transport bridge's loop never blocks on a peer that takes nothing: what
// would block is dropped, and counted where an operator sees it (the role's
// moemesh_transport_dropped_sends_total).
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

#include "actors/role_metrics.h"
#include "actors/transport.h"

using namespace moemesh;

namespace {
// A loopback endpoint nothing listens on: a port bound, read back and let go.
std::string dead_endpoint(zmq::context_t& ctx) {
  zmq::socket_t s(ctx, zmq::socket_type::router);
  s.bind("tcp://127.0.0.1:0");
  const std::string ep = s.get(zmq::sockopt::last_endpoint);
  s.unbind(ep);
  return ep;
}
}  // namespace

TEST(Transport, SendsToAPeerThatTakesNothingAreDroppedAndCounted) {
  zmq::context_t ctx;
  Transport t(ctx);
  t.start("", caf::actor{});  // no ROUTER: nothing arrives for an owner
  RoleMetrics metrics("test", "transport", "");
  t.count_drops_in(metrics);
  const int peer = t.connect(dead_endpoint(ctx));
  // The peer's queue holds its high-water mark (1000) while it is not there; the rest is dropped.
  constexpr int kSent = 1500;
  for (int i = 0; i < kSent; ++i) {
    wire::Message m;
    m.header.type = wire::MsgType::Heartbeat;
    m.header.request_id = static_cast<uint64_t>(i);
    t.send(peer, std::move(m));
  }
  // Until the loop has handled them all: the count stays put.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  uint64_t dropped = 0;
  for (int still = 0; still < 5 && std::chrono::steady_clock::now() < until;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    const uint64_t now = t.dropped_sends();
    still = now == dropped && now > 0 ? still + 1 : 0;
    dropped = now;
  }
  EXPECT_GE(dropped, 400u) << "the queue should be full after about 1000 messages";
  EXPECT_LT(dropped, static_cast<uint64_t>(kSent)) << "some messages must have been queued";
  const std::string text = metrics.text();
  EXPECT_NE(text.find("moemesh_transport_dropped_sends_total"), std::string::npos) << text;
  EXPECT_NE(text.find("} " + std::to_string(dropped)), std::string::npos) << "the metric counts every drop:\n" << text;
  t.stop();
}
