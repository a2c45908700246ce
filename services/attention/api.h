// The attention role's public contract: its options and service, and the
// messages clients (the gateway, the CLI, tests) exchange with it: Generate,
// streamed Tokens back, Score with Logits back, and control commands
// (docs/WIRE.md). It runs embeddings, every MLA layer with the latent KV cache,
// the dense layers, final norm, LM head and sampler under the continuous-batching
// scheduler; its MoE layers go to the expert hosts through an ExpertDispatcher,
// and drafts come from the mtp-draft role when one is configured.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "actors/wire_message.h"
#include "model/scheduler.h"
#include "services/expert_host/client.h"

namespace moemesh {

struct AttentionOptions {
  std::string model;
  std::string bind = "tcp://127.0.0.1:0";
  // Among several replicas: its name, and where gateways reach it (empty: where
  // it bound). With a router it reports both, with its load, every 250 ms.
  std::string name = "attention";
  std::string advertise;
  std::string router;            // required when the model has MoE layers
  std::string mtp;               // mtp-draft endpoint; empty: no speculation
  int speculative = 3;           // the most drafts per decode step (with mtp); scheduler.adaptive_speculation picks fewer where they do not pay
  int64_t kv_tokens = 16384;
  KvCacheDtype kv_dtype = KvCacheDtype::BF16;
  bool prefix_cache = true;      // reuse cached pages of earlier requests' prefixes
  cpu::Precision compute = cpu::Precision::Fast;
  int micro_batches = 2;         // in flight per step: attention computes one while experts run the other
  SchedulerOptions scheduler;
  DispatcherOptions dispatch;    // to the expert hosts (zone, wire encoding, deadlines)
  bool metrics_per_layer = false;  // also count rows per expert of every MoE layer
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

// ---- Generate: client → attention, payload 0 JSON ----
// {"prompt": [ids], "max_tokens": n, "stop": [ids], "temperature": t, "top_k": k, "top_p": p, "seed": s,
//  "top_logprobs": k (0..20; absent: no log-probabilities), "min_tokens": n, "min_p": p,
//  "presence_penalty": x, "frequency_penalty": x, "repetition_penalty": x, "logit_bias": [[id, bias], ...],
//  "grammar": text (structured output: core/grammar/grammar.h)}
// (the ranges are checked by the scheduler: Scheduler::submit)
nlohmann::json to_json(const GenerationRequest& r);
// Throws std::invalid_argument naming the field.
GenerationRequest generation_request_from_json(const nlohmann::json& j);

// ---- Tokens: attention → client, payload 0 JSON, one per step per request ----
// {"tokens": [ids], "finish": "stop|length|cancelled|error", "error": text, "code": error code name,
//  "cached_tokens": n (with finish, when the prefix cache served n prompt tokens),
//  "logprobs": [[logprob, [[id, logprob], ...]], ...] (one per token, when asked for)}
struct TokensUpdate {
  std::vector<int32_t> tokens;
  FinishReason finish = FinishReason::None;  // None while running
  int64_t cached_tokens = 0;                  // with finish: prompt tokens served from the prefix cache
  // With a request's top_logprobs: one entry per token, in order.
  std::vector<cpu::TokenLogprobs> logprobs;
  std::string error;                          // with Error
  wire::ErrorCode code = wire::ErrorCode::None;  // with Error: why, as a code (TooLarge, Overloaded, NoReplica ...)
  bool finished() const { return finish != FinishReason::None; }
};
nlohmann::json to_json(const TokensUpdate& u);
TokensUpdate tokens_update_from_json(const nlohmann::json& j);  // throws std::invalid_argument
// An Error reply to a Generate as the update that ends it.
TokensUpdate tokens_update_from_error(const wire::Message& m);
// stop, length, cancelled, error (and "" for None); nullopt for anything else.
std::optional<FinishReason> finish_reason_from_name(const std::string& s);

// ---- Score: client → attention ----
// payload 0 int32 token ids of every sequence, payload 1 int32 their lengths;
// aux 1: the MTP module's logits too. Logits back: payload 0 f32 [T, vocab],
// payload 1 f32 MTP logits [T - sequences, vocab].
struct ScoreRequest {
  std::vector<std::vector<int32_t>> sequences;
  bool mtp = false;
};
constexpr size_t kMaxScoreSequences = 4096;
wire::Message encode_score(uint64_t request_id, const ScoreRequest& r);
ScoreRequest decode_score(const wire::Message& m);  // throws wire::WireError(BadFrame)

// ---- Control commands ----
enum class AttentionCommandKind { Cancel, Stats };
struct AttentionCommand {
  AttentionCommandKind kind = AttentionCommandKind::Stats;
  uint64_t request = 0;  // Cancel: the caller's Generate request id
};
nlohmann::json to_json(const AttentionCommand& c);
AttentionCommand attention_command_from_json(const nlohmann::json& j);  // throws std::invalid_argument
// Stats answers: running, waiting, kv_pages_used (held by requests),
// kv_pages_cached (held only by the prefix cache), kv_pages_free, kv_pages_total,
// prefix_cache (pages, hit_tokens, prompt_tokens, requests, inserted_pages,
// evicted_pages; absent when it is off), drafted,
// accepted, verify_steps (per draft position), steps, clients, and "dispatch":
// the dispatchers' counters (calls, failed, retries by reason, hedges,
// cross_zone, per host).

}  // namespace moemesh
