// The attention side of the model: embedding, every decoder layer (MLA, dense
// FFNs, shared experts), final norm and LM head. Routed experts are reached
// through a MoeExecutor, so this class is what the attention service holds.
#pragma once

#include <memory>
#include <vector>

#include "model/decoder_layer.h"

namespace moemesh {

// Embedding rows and LM head over a [vocab, hidden] table.
class TokenEmbedding {
 public:
  TokenEmbedding(const Checkpoint& ckpt, const std::string& name, int64_t vocab, int64_t hidden);
  // Throws std::out_of_range naming the id when a token is outside the vocabulary.
  void lookup(const int32_t* tokens, int64_t n, float* out) const;

 private:
  TensorView table_;
  int64_t vocab_, hidden_;
};

void check_token_ids(const int32_t* tokens, int64_t n, int64_t vocab);

class Transformer {
 public:
  Transformer(const ModelConfig& cfg, const Checkpoint& ckpt);

  const ModelConfig& config() const { return cfg_; }
  int64_t layers() const { return static_cast<int64_t>(layers_.size()); }
  // Routed-expert layers among the main layers.
  std::vector<int64_t> moe_layers() const;

  // tokens: [T] in chunk order; writes the final-normed hidden states [T, hidden]
  // into h. Cache space for the chunks must be reserved; lengths are advanced by the caller.
  void forward(const int32_t* tokens, const std::vector<SeqChunk>& chunks, LatentKvCache& cache,
               const ForwardContext& ctx, MoeExecutor* moe, float* h) const;
  // logits[r] = lm_head · normed[rows[r]].
  void logits(const float* normed, const std::vector<int64_t>& rows, float* out, const ForwardContext& ctx) const;
  const TokenEmbedding& embedding() const { return embed_; }
  const LinearWeight& head() const { return head_; }

 private:
  const ModelConfig& cfg_;
  TokenEmbedding embed_;
  std::vector<std::unique_ptr<DecoderLayer>> layers_;
  std::vector<float> norm_;
  LinearWeight head_;
};

// Gathers rows of a [*, width] matrix and runs the head on them (split across the
// pool by vocabulary rows).
void head_rows(const LinearWeight& head, const float* x, int64_t width, const std::vector<int64_t>& rows,
               float* out, const ForwardContext& ctx);

}  // namespace moemesh
