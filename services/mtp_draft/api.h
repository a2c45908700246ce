// The mtp-draft role's public contract: its options and service, and the
// DraftRequest/DraftResponse messages the attention role exchanges with it
// (docs/WIRE.md). It holds the MTP layer with its own latent cache: given the
// main model's hidden states and the tokens after them, it drafts k tokens;
// each request names the cache length to continue from, which rolls back
// whatever the attention role rejected. Its MoE layer's experts are reached
// through its own ExpertDispatcher.
#pragma once

#include <chrono>
#include <string>

#include <caf/all.hpp>
#include <zmq.hpp>

#include "actors/wire_message.h"
#include "kernels/cpu/precision.h"
#include "model/drafter.h"
#include "model/kv_cache.h"
#include "services/expert_host/client.h"

namespace moemesh {

struct MtpDraftOptions {
  std::string model;
  std::string bind = "tcp://127.0.0.1:0";
  std::string router;  // needed when the MTP layer is a MoE layer
  int64_t kv_tokens = 65536;
  KvCacheDtype kv_dtype = KvCacheDtype::BF16;
  cpu::Precision compute = cpu::Precision::Fast;
  DispatcherOptions dispatch;  // to the expert hosts
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

// ---- DraftRequest: attention → mtp-draft ----
// One or more calls drafted together (one MTP forward per draft position for
// all of them). header: F32 [rows, hidden] (every call's rows, in call order),
// aux = the largest k (at most kMaxDrafts). Payload 0 the hidden states,
// payload 1 int32 tokens [rows], payload 2 JSON: one call as {seq, base,
// temperature, top_k, top_p, min_p, seed, fed_logits} (k = aux), or a batch as
// {"calls": [{rows, k, seq, base, ...}, ...]}.
// DraftResponse: payload 0 int32 drafts (each call's k, in order); payload 1 f32
// draft logits [k, vocab] of each sampling call; payload 2 f32 logits of the fed
// rows of each call that asked for them.
constexpr uint32_t kMaxDrafts = 16;
constexpr size_t kMaxDraftCalls = 1024;
wire::Message encode_draft_request(uint64_t request_id, const std::vector<DraftCall>& calls, int64_t hidden);
// The calls, their `hidden` pointing into `m`. Throws wire::WireError(BadFrame) naming the field.
std::vector<DraftCall> decode_draft_request(const wire::Message& m, int64_t hidden);
wire::Message encode_draft_response(uint64_t request_id, const std::vector<Draft>& drafts);
// Throws std::runtime_error when the response does not fit the calls.
std::vector<Draft> decode_draft_response(const wire::Message& m, const std::vector<DraftCall>& calls, int64_t vocab);

// ---- Control: {"cmd": "release", "seq": id} (no answer) ----
nlohmann::json release_command(SeqId seq);

}  // namespace moemesh
