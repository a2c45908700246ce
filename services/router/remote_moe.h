// The router's data path as a MoeExecutor: gates run here; each token's chosen
// experts are dispatched to the expert hosts that hold them over ZeroMQ, and the
// hosts' weighted partial sums are gathered and summed.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "core/dtype.h"
#include "model/moe_executor.h"

namespace moemesh {

struct ExpertHostSpec {
  std::string endpoint;          // tcp://127.0.0.1:5555, ipc://..., inproc://...
  std::vector<int32_t> experts;  // held by that host, every MoE layer
};

enum class WireActivations { F32, BF16, FP8 };

class MoeDispatchError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class RemoteMoe : public MoeExecutor {
 public:
  RemoteMoe(const ModelConfig& cfg, const Checkpoint& ckpt, const std::vector<int64_t>& layers,
            std::vector<ExpertHostSpec> hosts, WireActivations wire = WireActivations::F32,
            std::chrono::milliseconds deadline = std::chrono::milliseconds(30000));
  ~RemoteMoe() override;

  // Throws MoeDispatchError when an expert has no host, a host misses the
  // deadline or answers with an error.
  void routed(int64_t layer, const float* x, int64_t tokens, float* out) override;

  uint64_t bytes_sent() const { return bytes_sent_; }

 private:
  const ModelConfig& cfg_;
  std::map<int64_t, std::unique_ptr<MoeGate>> gates_;
  std::vector<ExpertHostSpec> hosts_;
  std::vector<int> owner_;  // expert -> host index
  WireActivations wire_;
  std::chrono::milliseconds deadline_;
  zmq::context_t ctx_;
  std::vector<zmq::socket_t> socks_;
  uint64_t next_request_ = 1;
  uint64_t bytes_sent_ = 0;
};

}  // namespace moemesh
