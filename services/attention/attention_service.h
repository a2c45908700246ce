// The attention role: embeddings, every MLA layer with the latent KV cache,
// dense layers, final norm, LM head and sampler, under the continuous-batching
// scheduler. Each MoE layer's hidden states go to the router; drafts come from
// the mtp-draft role when one is configured. Clients send Generate (streamed
// Tokens back), Score (every position's logits) and Control (cancel, stats).
#pragma once

#include <chrono>
#include <string>

#include <caf/all.hpp>
#include <zmq.hpp>

#include "model/scheduler.h"
#include "services/router/remote_moe.h"

namespace moemesh {

struct AttentionOptions {
  std::string model;
  std::string bind = "tcp://127.0.0.1:0";
  std::string router;            // required when the model has MoE layers
  std::string mtp;               // mtp-draft endpoint; empty: no speculation
  int speculative = 0;           // drafts per decode step (with mtp)
  WireActivations activations = WireActivations::BF16;  // hidden states to the router
  int64_t kv_tokens = 16384;
  KvCacheDtype kv_dtype = KvCacheDtype::BF16;
  cpu::Precision compute = cpu::Precision::Fast;
  int micro_batches = 2;         // in flight per step: attention computes one while experts run the other
  SchedulerOptions scheduler;
  std::chrono::milliseconds router_timeout{10000};
  std::string metrics;           // Prometheus endpoint (port 0: any); empty: none
};

class AttentionService {
 public:
  AttentionService(AttentionOptions opts, zmq::context_t& ctx);
  ~AttentionService();
  std::string start();
  // Graceful stop: refuses new requests and waits up to `deadline` for the
  // running ones (cut off with an error just before it); true when all finished.
  bool drain(std::chrono::milliseconds deadline);
  void stop();
  const std::string& metrics_url() const { return metrics_url_; }

 private:
  std::string metrics_url_;
  AttentionOptions opts_;
  zmq::context_t& ctx_;
  caf::actor actor_;
};

}  // namespace moemesh
