// Draft tokens for speculative decoding. The scheduler asks a Drafter for k
// tokens after feeding it the main model's hidden states it has not seen; the
// drafter is the MTP module in this process (LocalDrafter) or the mtp-draft
// role (RemoteDrafter). Rolling back is implicit: each call names the MTP cache
// length to continue from, and everything past it is dropped first.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "kernels/cpu/sampling.h"
#include "model/engine.h"

namespace moemesh {

struct Draft {
  std::vector<int32_t> tokens;    // k drafted tokens
  std::vector<float> logits;      // [k, vocab]: the MTP logits each was drawn from (sampling only)
  std::vector<float> fed_logits;  // [rows, vocab] of the fed rows, when asked for
};

struct DraftCall {
  SeqId seq = 0;
  int64_t base = 0;               // MTP cache length to continue from
  std::vector<int32_t> tokens;    // token i+1 for each fed row
  const float* hidden = nullptr;  // [tokens.size(), hidden]: the main model's hidden state at i
  int k = 0;                      // tokens to draft (0: only feed)
  cpu::SamplingParams sampling;   // greedy: argmax drafts
  bool want_fed_logits = false;
};

class Drafter {
 public:
  virtual ~Drafter() = default;
  // Drafts for several sequences at once: one MTP forward per draft position,
  // batched over the calls (a call with k = 0 only feeds). Answers in call order.
  // Throws on failure; the caller then goes on without speculation.
  virtual std::vector<Draft> draft(const std::vector<DraftCall>& calls) = 0;
  Draft draft(const DraftCall& call) { return std::move(draft(std::vector<DraftCall>{call}).front()); }
  virtual void release(SeqId seq) = 0;
};

// The drafting loop over any MTP runner: feed every call's rows in one step,
// then chain each module output hidden state, one batched step per further
// draft position. Shared by LocalDrafter and the mtp-draft role.
class MtpDraftLoop {
 public:
  // step(rows, logits) appends rows to their sequences' MTP caches (see mtp_cache_step).
  using StepFn = std::function<std::vector<float>(const std::vector<MtpRows>&, std::vector<float>&)>;
  using TruncateFn = std::function<void(SeqId, int64_t)>;
  MtpDraftLoop(int64_t vocab, int64_t hidden, StepFn step, TruncateFn truncate);
  std::vector<Draft> draft(const std::vector<DraftCall>& calls);
  void release(SeqId seq) { samplers_.erase(seq); }

 private:
  int64_t vocab_, hidden_;
  StepFn step_;
  TruncateFn truncate_;
  std::map<SeqId, std::unique_ptr<cpu::Sampler>> samplers_;  // per sequence, for drawing drafts
};

class LocalDrafter : public Drafter {
 public:
  explicit LocalDrafter(Engine& engine);
  using Drafter::draft;
  std::vector<Draft> draft(const std::vector<DraftCall>& calls) override { return loop_.draft(calls); }
  void release(SeqId seq) override {
    loop_.release(seq);
    engine_.mtp_truncate(seq, 0);
  }

 private:
  Engine& engine_;
  MtpDraftLoop loop_;
};

}  // namespace moemesh
