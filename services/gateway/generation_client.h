// The gateway's connection to the attention role: many generations multiplexed
// on one ZeroMQ connection, each streaming its token updates to a callback
// (called on the client's actor thread; callbacks hand work to their own
// executor and return). Thread-safe.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "services/attention/api.h"

namespace moemesh {

class GenerationClient {
 public:
  using OnUpdate = std::function<void(const TokensUpdate&)>;
  GenerationClient(zmq::context_t& ctx, const std::string& attention);
  ~GenerationClient();

  // Starts a generation; `on_update` gets every token update, the last with `finish`
  // (an error reply becomes finish "error"). Returns an id for cancel().
  uint64_t submit(const GenerationRequest& r, OnUpdate on_update);
  // Stops a generation and frees its cache; its callback gets finish "cancelled".
  void cancel(uint64_t id);
  // The attention role's stats (running, waiting, KV pages, drafts); null JSON
  // when it does not answer within a second. Called on the client's actor thread.
  void stats(std::function<void(const nlohmann::json&)> done);

 private:
  caf::actor actor_;
};

}  // namespace moemesh
