// The whole model in one process: attention side, local experts, MTP module and
// their latent caches. Runs one forward over a batch of sequences of different
// lengths (prefill chunks and decode steps mixed).
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <vector>

#include "core/model_config.h"
#include "core/safetensors.h"
#include "kernels/cpu/precision.h"
#include "model/moe_executor.h"
#include "model/mtp.h"
#include "model/prefix_cache.h"
#include "model/step_profile.h"
#include "model/transformer.h"

namespace moemesh {

struct EngineOptions {
  int64_t page_tokens = 64;
  int64_t kv_tokens = 16384;  // capacity of the main cache, in tokens
  KvCacheDtype kv_dtype = KvCacheDtype::BF16;
  cpu::Precision compute = cpu::Precision::Fast;
  MlaMode mla_mode = MlaMode::Auto;
  bool load_mtp = true;  // when the checkpoint has an MTP layer
  // Where routed experts run; default: all of them in this process (LocalMoe).
  std::function<std::unique_ptr<MoeExecutor>(const ModelConfig&, const Checkpoint&, const std::vector<int64_t>& layers)>
      make_moe;
  // Executors made for step_overlapped (2: one micro-batch computes attention
  // while the other's experts run elsewhere). Only worth it when make_moe sends
  // the experts away.
  int moe_lanes = 1;
  // Reuse full pages of earlier requests' prompts and answers (model/prefix_cache.h).
  bool prefix_cache = true;
};

// New tokens of one sequence for a step.
struct StepInput {
  SeqId seq = 0;
  std::vector<int32_t> tokens;
  bool all_logits = false;  // logits of every new position, else only the last
};

// Rows appended to one sequence's MTP cache: row i uses (hidden[i], tokens[i]).
struct MtpRows {
  SeqId seq = 0;
  std::vector<int32_t> tokens;
  const float* hidden = nullptr;  // [tokens.size(), hidden]
  // Logits of every row over the whole vocabulary (scoring), else of the last
  // row only, over the draft vocabulary when the model has one (a draft).
  bool all_logits = false;
};

struct StepOutput {
  std::vector<SeqChunk> chunks;
  std::vector<float> hidden;        // [T, hidden], final-normed
  std::vector<int64_t> logit_rows;  // rows of `hidden` that have logits, in order
  std::vector<float> logits;        // [logit_rows.size(), vocab]
  // Logits of the last new token of input i.
  const float* last_logits(size_t i, int64_t vocab) const;
};

class KvCacheFull : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Engine {
 public:
  Engine(const std::filesystem::path& dir, const EngineOptions& opts = {});

  const ModelConfig& config() const { return cfg_; }
  const EngineOptions& options() const { return opts_; }
  bool has_mtp() const { return mtp_ != nullptr; }
  const LatentKvCache& cache() const { return cache_; }

  // Appends the inputs' tokens to their sequences. Throws KvCacheFull (nothing
  // changed) when the cache cannot hold them, std::out_of_range on bad token ids.
  StepOutput step(const std::vector<StepInput>& inputs);
  // The same into `out`, reusing its memory: after the largest step shape has run
  // once, a step allocates nothing.
  void step(const std::vector<StepInput>& inputs, StepOutput& out);
  // The same step as two micro-batches in flight at once, each with its own MoE
  // executor: while one waits for its routed experts, the other computes. The
  // output is in the order a then b, as step(a + b) would give it.
  StepOutput step_overlapped(const std::vector<StepInput>& a, const std::vector<StepInput>& b);
  int moe_lanes() const { return static_cast<int>(lanes_.size()); }

  // MTP over one sequence: rows i use (prev_hidden[i], next_tokens[i]) at
  // positions start.. of the sequence's MTP cache. Returns its output hidden.
  std::vector<float> mtp_step(SeqId seq, const std::vector<int32_t>& next_tokens,
                              const float* prev_hidden, std::vector<float>* logits_out);
  // Batched over sequences (see mtp_cache_step).
  std::vector<float> mtp_step(const std::vector<MtpRows>& inputs, std::vector<float>& logits);
  int64_t mtp_length(SeqId seq) const { return mtp_cache_ ? mtp_cache_->length(seq) : 0; }
  void mtp_truncate(SeqId seq, int64_t len) { if (mtp_cache_) mtp_cache_->truncate(seq, len); }

  // Reserves cache pages for `tokens` positions of `seq` ahead of time, so later
  // steps within that length cannot run out; false (nothing changed) if they do not fit.
  bool reserve(SeqId seq, int64_t tokens) { return cache_.reserve(seq, tokens); }
  int64_t length(SeqId seq) const { return cache_.length(seq); }
  void truncate(SeqId seq, int64_t len) { cache_.truncate(seq, len); }
  void release(SeqId seq);

  // Starts `seq` on `prompt`: adopts the longest cached prefix in whole pages
  // (leaving at least the prompt's last token to compute, for its logits) and
  // reserves pages for `total` positions, evicting cached pages as needed.
  // Returns how many prompt tokens are already in the cache, or -1 (nothing
  // changed) when `total` does not fit even then.
  int64_t start(SeqId seq, const std::vector<int32_t>& prompt, int64_t total);
  // Enters `seq`'s committed full pages into the prefix cache; `tokens` are the
  // sequence's tokens (prompt, then generated), at least length(seq) of them.
  void cache_prefix(SeqId seq, const std::vector<int32_t>& tokens);
  // Null with the prefix cache off.
  const PrefixCache* prefix_cache() const { return prefix_.get(); }

  // Steps add their time per operation class to `p` while set (null: off).
  void set_profile(StepProfile* p) { profile_ = p; }

 private:
  // Commits the step's cache lengths and computes the logits the inputs ask for.
  void finish_step(const std::vector<StepInput>& inputs, StepOutput& out);
  ForwardContext context(int lane);

  ModelConfig cfg_;
  EngineOptions opts_;
  Checkpoint ckpt_;
  Transformer main_;
  std::unique_ptr<MtpModule> mtp_;
  std::unique_ptr<MoeExecutor> moe_;
  std::vector<MoeExecutor*> lanes_;  // moe_ first
  std::vector<std::unique_ptr<MoeExecutor>> extra_lanes_;
  LatentKvCache cache_;
  std::unique_ptr<PrefixCache> prefix_;  // declared after cache_: gives its pages back first
  std::unique_ptr<LatentKvCache> mtp_cache_;
  Workspace ws_[2];              // one per micro-batch lane
  std::vector<int32_t> tokens_;  // the step's tokens in chunk order
  StepProfile* profile_ = nullptr;
};

// Sizes every compute thread's kernel scratch for this model's products, so the
// first decode step already allocates nothing.
void reserve_kernel_scratch_for(const ModelConfig& cfg);

// The geometry of a cache of `tokens` positions over `layers` layers of cfg.
KvCacheGeometry kv_geometry(const ModelConfig& cfg, int64_t layers, int64_t page_tokens, int64_t tokens,
                            KvCacheDtype dtype);

// One MTP forward over several sequences' MTP caches at once (a batched draft
// step). Returns the module's output hidden states [rows, hidden] in input
// order; `logits` gets each input's logit rows (all or last), in order.
std::vector<float> mtp_cache_step(const MtpModule& mtp, LatentKvCache& cache, const ForwardContext& ctx,
                                  MoeExecutor* moe, int64_t vocab, const std::vector<MtpRows>& inputs,
                                  std::vector<float>& logits);

// Plans chunks for inputs into `chunks`, reserving cache pages; throws KvCacheFull
// and rolls back reservations made so far when a sequence does not fit.
void plan_chunks(const std::vector<StepInput>& inputs, LatentKvCache& cache, std::vector<SeqChunk>& chunks);

}  // namespace moemesh
