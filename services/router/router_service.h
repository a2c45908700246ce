// The router role: every MoE layer's gate and the placement table. For each
// MoeRequest it routes the tokens, sends each expert host the rows for the
// experts it picked on it (least-loaded replica), gathers the partial sums and
// returns their total. Hosts register and heartbeat; one that misses its
// deadline or its heartbeats is taken out and its work retried on a replica.
#pragma once

#include <chrono>
#include <future>
#include <memory>
#include <string>

#include <caf/all.hpp>
#include <zmq.hpp>

#include "services/router/remote_moe.h"

namespace moemesh {

struct RouterOptions {
  std::string model;
  std::string bind = "tcp://127.0.0.1:0";
  WireActivations dispatch = WireActivations::BF16;  // activations sent to expert hosts
  std::chrono::milliseconds deadline{2000};           // per dispatch
  std::chrono::milliseconds heartbeat_timeout{3000};
  std::chrono::milliseconds rebalance_interval{0};    // 0: only on command
  int rebalance_moves = 8;
  std::string metrics;  // Prometheus endpoint, e.g. 127.0.0.1:9101 (port 0: any); empty: none
  bool metrics_per_layer = false;  // also tokens routed per (layer, expert): layers × experts series
};

WireActivations parse_wire_activations(const std::string& s);  // f32, bf16, fp8
const char* wire_activations_name(WireActivations w);

// MoE layers of a checkpoint whose gates are present (the MTP layer's included).
std::vector<int64_t> gated_moe_layers(const ModelConfig& cfg, const Checkpoint& ckpt);

class RouterService {
 public:
  RouterService(RouterOptions opts, zmq::context_t& ctx);
  ~RouterService();
  // Loads the gates, binds, starts serving; returns the bound endpoint.
  std::string start();
  // Graceful stop: refuses new MoE requests and waits up to `deadline` for the
  // open ones to be answered; true when they all were.
  bool drain(std::chrono::milliseconds deadline);
  void stop();
  const std::string& endpoint() const { return endpoint_; }
  const std::string& metrics_url() const { return metrics_url_; }

 private:
  RouterOptions opts_;
  zmq::context_t& ctx_;
  caf::actor actor_;
  std::string endpoint_, metrics_url_;
};

}  // namespace moemesh
