// Continuous batching over one Engine: requests join and leave a running batch
// between steps; prompts are prefilled in chunks within a per-step token budget
// next to the running decodes; each request has its own limits, stop ids and
// seeded sampler. KV-cache admission: a request enters the batch only once the
// cache can hold its prompt and all its new tokens, so a running request never
// runs out of cache; one that could never fit is refused at submission.
// With the engine's prefix cache, a request starts on the cached pages of its
// prompt's longest known prefix, and its own full pages join the cache as it
// goes and when it ends.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/grammar/token_mask.h"
#include "kernels/cpu/sampling.h"
#include "model/draft_policy.h"
#include "model/drafter.h"
#include "model/engine.h"
#include "model/speculation_stats.h"

namespace moemesh {

struct GenerationRequest {
  uint64_t id = 0;
  std::vector<int32_t> prompt;
  int64_t max_new_tokens = 16;
  std::vector<int32_t> stop_ids;  // generation ends after emitting one of these
  cpu::SamplingParams sampling;
  // Log-probabilities of every generated token and of this many alternatives
  // (0..kMaxTopLogprobs); -1: none.
  int top_logprobs = -1;
  // Stop ids cannot end it before this many new tokens: they are out of reach until then.
  int64_t min_tokens = 0;
  // Logit bias and penalties, applied before sampling at every position
  // (speculative drafts are verified against the same adjusted logits).
  cpu::LogitAdjustments adjust;
  // Structured output: the grammar the text must follow (its text travels on
  // the wire), and its token masks as the attention role resolved it. Every
  // sampled token keeps the text a prefix of a sentence; stop ids are allowed
  // only where it is a whole one, and a sentence that cannot go on ends it.
  std::string grammar;
  std::shared_ptr<grammar::TokenMasks> constraint;
  // A generation resumed on this replica after another one failed: the prompt's
  // last `resumed` tokens are its own earlier output. They count as generated
  // for the penalties and the grammar has read them; the caller has already
  // taken them off max_new_tokens and min_tokens.
  int64_t resumed = 0;
};
constexpr size_t kMaxLogitBias = 1024;
constexpr int kMaxTopLogprobs = 20;

enum class FinishReason { None, Stop, Length, Cancelled, Error };
const char* finish_reason_name(FinishReason r);

struct TokenEvent {
  uint64_t id = 0;
  int32_t token = -1;
  FinishReason finish = FinishReason::None;  // set on the request's last event
  std::string error;                         // why, with FinishReason::Error
  bool unavailable = false;                  // the error was the experts being unreachable (worth retrying later)
  int64_t cached_tokens = 0;                 // on the last event: prompt tokens served from the prefix cache
  std::optional<cpu::TokenLogprobs> logprobs;  // with the token, when the request asked for them
};

struct SchedulerOptions {
  int64_t step_tokens = 256;  // prefill + decode tokens per engine step
  int64_t max_running = 64;   // requests in the batch
  int64_t max_waiting = 1024; // queued requests beyond which submissions are refused
  // Speculation only while at most this many requests decode.
  int64_t max_speculative_batch = 1024;
  // Draft lengths chosen per request from measured acceptance and measured tokens per second
  // (DraftPolicy), up to the drafter's k; false: always k.
  bool adaptive_speculation = true;
};

// Why a request was refused: bad in itself, beyond a limit, or no room now.
enum class Refusal { Invalid, TooLarge, Overloaded };
class RequestRefused : public std::runtime_error {
 public:
  explicit RequestRefused(const std::string& what, Refusal kind = Refusal::Invalid) : std::runtime_error(what), kind_(kind) {}
  Refusal kind() const { return kind_; }

 private:
  Refusal kind_;
};

class Scheduler {
 public:
  Scheduler(Engine& engine, SchedulerOptions opts = {});

  // Queues a request. Throws RequestRefused with the reason (empty prompt, bad
  // ids, limits, never fits in the cache, queue full, duplicate id).
  // With the prefix cache on, a request whose prompt shares full pages with one
  // still being prefilled waits for those pages rather than computing them again
  // (n choices of one prompt prefill it once).
  void submit(GenerationRequest req);
  // Stops a request wherever it is and frees its cache; emits a Cancelled event
  // at the next step. Unknown ids are ignored.
  void cancel(uint64_t id);

  // Speculative decoding for every request from now on: up to `k` drafts per
  // decode step from `drafter` (not owned), drafted for every decoding request
  // in one batched call and verified in the same engine step.
  void set_drafter(Drafter* drafter, int k);
  const SpeculationStats& speculation() const { return spec_stats_; }

  // One engine step; returns the tokens it produced and the requests it finished.
  // When the step itself fails (e.g. the experts cannot be reached), the
  // requests in it finish with FinishReason::Error and the rest go on.
  std::vector<TokenEvent> step();
  bool idle() const { return waiting_.empty() && running_.empty() && cancelled_.empty(); }

  size_t waiting() const { return waiting_.size(); }
  size_t running() const { return running_.size(); }

 private:
  struct Active {
    GenerationRequest req;
    int64_t prefilled = 0;  // prompt tokens in the cache
    int64_t cached = 0;     // of them, taken from the prefix cache
    int64_t cached_pages = 0;  // full pages entered into the prefix cache so far
    std::vector<int32_t> generated;
    cpu::TokenHistory history;  // what the penalties look at (kept only when there are some)
    std::optional<grammar::Matcher> matcher;  // with a grammar: where the text stands in it
    std::unique_ptr<cpu::Sampler> sampler;
    // Speculation: main-model hidden states the drafter has not seen, the token
    // after each, and the drafter's cache length.
    bool speculate = false;
    std::vector<float> pend_h;
    std::vector<int32_t> pend_t;
    int64_t mtp_len = 0;
    int undrafted_steps = 0;  // decode steps since its last drafts
    DraftPolicy::RequestState drafts;  // what its drafts have measured
  };
  // Drafts for this step's decoding requests, in one call to the drafter.
  std::map<uint64_t, Draft> make_drafts(int64_t budget);
  // Emits `tok` for `it` (chosen from `logits`, the model's row for it); finishes
  // it (and returns true) on a stop id or the length limit.
  bool emit(std::map<uint64_t, Active>::iterator it, int32_t tok, const float* logits, std::vector<TokenEvent>& events);
  void admit();
  // sampling_logits found no token the grammar allows: fails the request (true).
  bool dead_end(std::map<uint64_t, Active>::iterator it, std::vector<TokenEvent>& events);
  // `r` shares full prompt pages with a running request that has yet to compute them.
  bool waits_for_prefill(const GenerationRequest& r) const;
  // The logits `a` samples from with `ahead` (drafts being verified) past what it
  // has emitted: its stop ids masked while it is short of min_tokens, its logit
  // bias and penalties applied (`logits` itself when there is nothing to do).
  // With a grammar, `matcher` (when given) stands for the text with `ahead` taken.
  const float* sampling_logits(const Active& a, const float* logits, std::span<const int32_t> ahead = {},
                               const grammar::Matcher* matcher = nullptr);
  void finish(std::map<uint64_t, Active>::iterator it, FinishReason why, std::vector<TokenEvent>& events);
  // Enters a request's full pages completed since the last call into the prefix cache.
  void cache_pages(Active& a);

  Engine& engine_;
  SchedulerOptions opts_;
  std::deque<GenerationRequest> waiting_;
  std::map<uint64_t, Active> running_;  // ordered: deterministic batch order
  std::vector<uint64_t> cancelled_;
  Drafter* drafter_ = nullptr;
  int spec_k_ = 0;
  std::optional<DraftPolicy> policy_;
  SpeculationStats spec_stats_;
  std::vector<float> masked_;  // sampling_logits' copy
  grammar::TokenSet allowed_;  // sampling_logits' grammar mask
  std::vector<float> stop_logits_;  // sampling_logits' stop ids, adjusted
  bool dead_end_ = false;      // set by sampling_logits, taken by dead_end()
};

}  // namespace moemesh
