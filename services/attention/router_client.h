// The attention side's MoE executor in the mesh: each MoE layer's normed hidden
// states go to the router as a MoeRequest; begin() sends, end() waits for the
// MoeResponse, so the shared expert is computed while the experts work.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <zmq.hpp>

#include "actors/transport.h"
#include "model/moe_executor.h"
#include "services/router/remote_moe.h"

namespace moemesh {

class RouterClient : public MoeExecutor {
 public:
  RouterClient(zmq::context_t& ctx, const std::string& router, int64_t hidden, WireActivations wire,
               std::chrono::milliseconds timeout);

  void routed(int64_t layer, const float* x, int64_t tokens, float* out) override;
  void begin(int64_t layer, const float* x, int64_t tokens) override;
  // Throws MoeDispatchError when the router reports a failure or does not answer.
  void end(float* out) override;

  uint64_t bytes_sent() const { return channel_.bytes_sent(); }
  uint64_t bytes_received() const { return channel_.bytes_received(); }

 private:
  RequestChannel channel_;
  int64_t hidden_;
  WireActivations wire_;
  std::chrono::milliseconds timeout_;
  uint64_t request_ = 0;
  int64_t tokens_ = 0, layer_ = 0;
  bool sent_ = false;
};

}  // namespace moemesh
