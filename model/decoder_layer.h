// One decoder block on the attention side: norm → MLA → residual, norm → FFN →
// residual, where the FFN is dense SwiGLU or shared experts plus routed experts
// obtained through a MoeExecutor.
#pragma once

#include <memory>
#include <optional>

#include "model/mla.h"
#include "model/mlp.h"
#include "model/moe_executor.h"

namespace moemesh {

class DecoderLayer {
 public:
  DecoderLayer(const ModelConfig& cfg, const Checkpoint& ckpt, int64_t layer);

  int64_t index() const { return layer_; }
  bool is_moe() const { return moe_; }

  // h: [T, hidden] residual stream, updated in place.
  void forward(float* h, const std::vector<SeqChunk>& chunks, LatentKvCache& cache, int64_t cache_layer,
               const ForwardContext& ctx, MoeExecutor* moe) const;

 private:
  const ModelConfig& cfg_;
  int64_t layer_;
  bool moe_;
  std::vector<float> input_norm_, post_norm_;
  MlaLayer attn_;
  std::optional<SwigluMlp> dense_;   // dense layers
  std::optional<SwigluMlp> shared_;  // MoE layers with shared experts
};

}  // namespace moemesh
