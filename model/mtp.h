// The Multi-Token-Prediction module (model.layers.<num_hidden_layers>): from the
// main model's hidden state at position i and token i+1 it predicts token i+2.
// Fed its own output hidden state it drafts further tokens (chained, k > 1).
#pragma once

#include <memory>
#include <optional>

#include "model/decoder_layer.h"
#include "model/draft_vocab.h"
#include "model/transformer.h"

namespace moemesh {

class MtpModule {
 public:
  // `main` supplies the embedding and head when the MTP layer has no copies of its own.
  MtpModule(const ModelConfig& cfg, const Checkpoint& ckpt, const Transformer* main);
  // Without the main model (the mtp-draft role): embedding and head from the checkpoint.
  MtpModule(const ModelConfig& cfg, const Checkpoint& ckpt);

  int64_t layer() const { return cfg_.mtp_layer(); }
  int64_t hidden() const { return cfg_.hidden_size; }
  bool is_moe() const { return block_.is_moe(); }

  // next_tokens: [T] (token i+1 for row i); prev_hidden: [T, hidden] (the main
  // model's final-normed hidden state at i, or this module's previous output).
  // Writes this module's output hidden states [T, hidden] (before shared_head.norm)
  // into h. `cache` has one layer: the MTP block's own latent cache.
  void forward(const int32_t* next_tokens, const float* prev_hidden, const std::vector<SeqChunk>& chunks,
               LatentKvCache& cache, const ForwardContext& ctx, MoeExecutor* moe, float* h) const;
  // The head's logits [rows, vocab] of the rows of `hidden`. With `draft` and a
  // draft vocabulary, only its tokens are computed and every other logit is -inf.
  void logits(const float* hidden, const std::vector<int64_t>& rows, float* out, const ForwardContext& ctx,
              bool draft = false) const;
  // Tokens the draft head computes (the whole vocabulary without a draft vocabulary).
  int64_t draft_vocab_size() const { return draft_ids_.empty() ? cfg_.vocab_size : static_cast<int64_t>(draft_ids_.size()); }
  const std::string& draft_vocab_source() const { return draft_source_; }

 private:
  const ModelConfig& cfg_;
  void load_rest(const Checkpoint& ckpt);
  std::optional<TokenEmbedding> own_embed_;
  const TokenEmbedding* embed_;
  std::vector<float> enorm_, hnorm_, head_norm_;
  LinearWeight eh_proj_;
  LinearWeight head_;
  DecoderLayer block_;
  // The draft vocabulary's rows of head_, gathered (bf16 when head_ is block-scaled fp8).
  void gather_draft_head(const DraftVocab& v);
  std::vector<int32_t> draft_ids_;
  std::vector<uint8_t> draft_head_data_;
  LinearWeight draft_head_;
  std::string draft_source_;
};

}  // namespace moemesh
