// The mtp-draft role: the MTP layer with its own latent cache. Given the main
// model's hidden states and the tokens after them, it drafts k tokens; each
// request names the cache length to continue from, which rolls back whatever
// the attention role rejected. Its MoE layer's experts are reached through the router.
#pragma once

#include <chrono>
#include <string>

#include <caf/all.hpp>
#include <zmq.hpp>

#include "kernels/cpu/precision.h"
#include "model/drafter.h"
#include "model/kv_cache.h"
#include "services/router/remote_moe.h"

namespace moemesh {

struct MtpDraftOptions {
  std::string model;
  std::string bind = "tcp://127.0.0.1:0";
  std::string router;  // needed when the MTP layer is a MoE layer
  int64_t kv_tokens = 65536;
  KvCacheDtype kv_dtype = KvCacheDtype::BF16;
  cpu::Precision compute = cpu::Precision::Fast;
  WireActivations activations = WireActivations::BF16;  // to the router
  std::chrono::milliseconds router_timeout{10000};
  std::string metrics;  // Prometheus endpoint (port 0: any); empty: none
};

class MtpDraftService {
 public:
  MtpDraftService(MtpDraftOptions opts, zmq::context_t& ctx);
  ~MtpDraftService();
  std::string start();
  // Graceful stop: answers the drafts asked for, refuses new ones; waits up to
  // `deadline`, true when all were answered.
  bool drain(std::chrono::milliseconds deadline);
  void stop();
  const std::string& metrics_url() const { return metrics_url_; }

 private:
  std::string metrics_url_;
  MtpDraftOptions opts_;
  zmq::context_t& ctx_;
  caf::actor actor_;
};

// The attention side's client of the mtp-draft role.
class RemoteDrafter : public Drafter {
 public:
  RemoteDrafter(zmq::context_t& ctx, const std::string& endpoint, int64_t vocab, int64_t hidden,
                std::chrono::milliseconds timeout = std::chrono::milliseconds(5000));
  ~RemoteDrafter() override;
  Draft draft(const DraftCall& call) override;
  void release(SeqId seq) override;

 private:
  Draft draft_once(const DraftCall& call);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace moemesh
