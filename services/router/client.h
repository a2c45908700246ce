// Clients of the router: operators' control commands, waiting for the expert
// tier to come up, and the dispatchers' side of the control plane.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "services/router/api.h"

namespace moemesh {

// Sends a command and returns the router's answer; throws MeshError (actors/control_call.h).
// Stats: every host with state, zone, experts, load and rows served; uncovered
// experts overall and per zone; the table version; membership changes, moves,
// suspicions by reason, subscribed dispatchers, bad frames.
nlohmann::json router_command(zmq::context_t& ctx, const std::string& router, const RouterCommand& c,
                              std::chrono::milliseconds timeout = std::chrono::milliseconds(10000));
inline nlohmann::json router_stats(zmq::context_t& ctx, const std::string& router) {
  return router_command(ctx, router, RouterCommand{RouterCommandKind::Stats, ""});
}

// Polls the router until every expert has a ready host; throws after `timeout`.
void wait_for_experts(zmq::context_t& ctx, const std::string& router, std::chrono::milliseconds timeout);

// A dispatcher's subscription to the placement table. Owned by one thread (it
// holds a ZeroMQ socket). It says Subscribe again whenever its connection to
// the router comes back (a restarted router learns its dispatchers) and every
// few seconds (which the router takes as a keep-alive).
class TableSubscription {
 public:
  TableSubscription(zmq::context_t& ctx, const std::string& router, DispatcherHello hello);
  ~TableSubscription();

  // Poll these for input (the subscription socket and its connection monitor).
  std::vector<zmq::socket_t*> sockets();
  // Handles what arrived, without waiting; returns the newest table received
  // whose version is above `since`.
  std::optional<PlacementTable> poll(uint64_t since);
  // Waits up to `timeout` for a table above `since`.
  std::optional<PlacementTable> wait(uint64_t since, std::chrono::milliseconds timeout);
  void suspect(const Suspicion& s);
  // Asks for the current table now (after a host refused work as not held).
  void refresh();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace moemesh
