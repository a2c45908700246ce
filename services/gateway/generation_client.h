// The gateway's connection to the attention tier: every replica it knows (the
// configured endpoints and those the router lists), each request sent to one
// by the routing policy (replica_choice.h), many generations multiplexed on
// each replica's ZeroMQ connection, each streaming its token updates to a
// callback (called on the client's actor thread; callbacks hand work to their
// own executor and return). A stream whose replica drops its connection, goes
// silent past its deadline or stops for a drain resumes on another replica
// from the tokens already sent: the callback sees a pause, not an error.
// Thread-safe.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "replica_choice.h"
#include "services/attention/api.h"
#include "services/gateway/api.h"

namespace moemesh {

struct ReplicaRouting {
  RoutingPolicy policy = RoutingPolicy::CacheAware;
  BalanceOptions balance;
  // A replica that says nothing this long (or four times its recent gaps
  // between messages, if longer) while asked is taken for hung.
  std::chrono::milliseconds stall_floor{1000};
  // How long a request waits for a usable replica before it fails.
  std::chrono::milliseconds wait_for_replica{30000};
};
ReplicaRouting replica_routing(const GatewayOptions& o);  // throws std::invalid_argument naming the field

class GenerationClient {
 public:
  using OnUpdate = std::function<void(const TokensUpdate&)>;
  GenerationClient(zmq::context_t& ctx, GatewayUpstream upstream, ReplicaRouting routing = {});
  ~GenerationClient();

  // Starts a generation; `on_update` gets every token update, the last with `finish`
  // (an error reply becomes finish "error"). Returns an id for cancel().
  uint64_t submit(const GenerationRequest& r, OnUpdate on_update);
  // Stops a generation and frees its cache; its callback gets finish "cancelled".
  void cancel(uint64_t id);
  // The attention tier's stats: the replicas' last answers summed (running,
  // waiting, KV pages, drafts), and "replicas" (each one's state, requests,
  // streams moved away), "resumed" by reason and "routing" choices. Null JSON
  // while no replica answers. Called on the client's actor thread.
  void stats(std::function<void(const nlohmann::json&)> done);

 private:
  caf::actor actor_;
};

}  // namespace moemesh
