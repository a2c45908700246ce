// The expert-host role's public contract: its options and service, and the
// Dispatch/Combine messages dispatchers (the attention and mtp-draft roles)
// exchange with it directly (docs/WIRE.md). A host holds some routed experts
// (the same ids on every MoE layer), registers with the router, reports its
// load in heartbeats, and answers each Dispatch with the weighted sum of its
// experts' outputs for the rows it was sent.
#pragma once

#include <chrono>
#include <cstdint>
#include <future>
#include <string>
#include <vector>

#include <caf/all.hpp>
#include <zmq.hpp>

#include "actors/wire_message.h"
#include "kernels/cpu/precision.h"

namespace moemesh {

struct ExpertHostOptions {
  std::string model;
  std::string name;                    // unique in the mesh (default: the bound endpoint)
  std::string bind = "tcp://127.0.0.1:0";
  std::string router;                  // router endpoint to register with; empty: none
  std::string advertise;               // endpoint dispatchers and the router dial (default: the one bound)
  std::string zone;                    // datacenter or availability zone (Helm: the node's topology zone)
  std::vector<int32_t> experts;        // held from the start; empty: the router assigns (join)
  int64_t capacity = -1;               // experts it may hold (-1: all)
  std::chrono::milliseconds heartbeat{250};
  std::string metrics;                 // Prometheus endpoint (port 0: any); empty: none
  std::string device = "cpu";          // "cuda": experts on the GPU (a build with CUDA and a device)
  cpu::Precision compute = cpu::Precision::Fast;
};

class ExpertHostService {
 public:
  ExpertHostService(ExpertHostOptions opts, zmq::context_t& ctx);
  ~ExpertHostService();
  // Loads its experts, binds, registers; returns the bound endpoint.
  std::string start();
  // Graceful stop: tells the router, finishes the dispatches it was sent and
  // waits up to `deadline` for the router's leave; true when all was done.
  bool drain(std::chrono::milliseconds deadline);
  void stop();
  // Becomes ready when the router told this host to leave (after a drain).
  std::shared_future<void> left() const { return left_; }
  const std::string& metrics_url() const { return metrics_url_; }

 private:
  ExpertHostOptions opts_;
  zmq::context_t& ctx_;
  caf::actor actor_;
  std::promise<void> leave_;
  std::shared_future<void> left_;
  std::string metrics_url_;
};

// "0-7,12,20-23" → ids; throws std::invalid_argument naming the bad part.
std::vector<int32_t> parse_id_ranges(const std::string& spec, int32_t limit);

// ---- Dispatch: dispatcher → expert host ----
// header: layer; aux = top_k; sequence = the placement-table version the
// dispatcher chose this host by. Payloads: the activations [rows, hidden]
// (core/activations.h), then int32 experts [rows, top_k] and f32 weights
// [rows, top_k]; a slot this host should not compute has expert -1.
struct DispatchView {
  int32_t layer = 0;
  int64_t rows = 0, top_k = 0;
  uint64_t table_version = 0;
  std::vector<float> x;            // [rows, hidden], decoded
  const int32_t* experts = nullptr;  // [rows, top_k], into the message
  const float* weights = nullptr;
};
wire::Message encode_dispatch(uint64_t request_id, int32_t layer, uint64_t table_version, const float* x, int64_t rows,
                              int64_t hidden, const std::vector<int32_t>& experts, const std::vector<float>& weights,
                              int64_t top_k, WireActivations encoding);
// Throws wire::WireError(BadFrame) naming what is wrong (expert ids outside
// 0..n_experts-1 other than -1, weights not finite, sizes).
DispatchView decode_dispatch(const wire::Message& m, int64_t hidden, int64_t n_experts);

// ---- Combine: expert host → dispatcher ----
// header: request_id and layer of the Dispatch; the weighted partial sums
// [rows, hidden] in f32 when the dispatch came in f32, else bf16; aux = the
// microseconds the host computed it (so a dispatcher can tell compute from
// transport and queueing; 0 from a host that does not say).
// A host that does not hold an expert it was sent answers Error NotHeld (the
// dispatcher sends that work elsewhere and asks the router for the table); one
// that is stopping answers ShuttingDown.
wire::Message encode_combine(uint64_t request_id, int32_t layer, const float* y, int64_t rows, int64_t hidden,
                             WireActivations dispatched_as);
WireActivations combine_encoding(WireActivations dispatched_as);

}  // namespace moemesh
