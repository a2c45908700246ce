// Multi-head latent attention of one layer over the paged latent KV cache.
#pragma once

#include <string>
#include <vector>

#include "core/model_config.h"
#include "core/safetensors.h"
#include "kernels/cpu/rope.h"
#include "model/batch.h"
#include "model/forward_context.h"
#include "model/kv_cache.h"

namespace moemesh {

class MlaLayer {
 public:
  // prefix: "model.layers.<i>.self_attn"
  MlaLayer(const ModelConfig& cfg, const Checkpoint& ckpt, const std::string& prefix);

  // x: [T, hidden] (already normed); out: [T, hidden]. Writes the chunks' latents
  // into `cache` at layer `cache_layer`; the cache must hold room for them.
  void forward(const float* x, const std::vector<SeqChunk>& chunks, LatentKvCache& cache, int64_t cache_layer,
               const ForwardContext& ctx, float* out) const;

 private:
  void attend_absorbed(const SeqChunk& c, const float* q, const LatentKvCache& cache, int64_t layer,
                       const ForwardContext& ctx, float* attn) const;
  void attend_naive(const SeqChunk& c, const float* q, const LatentKvCache& cache, int64_t layer,
                    const ForwardContext& ctx, float* attn) const;

  const ModelConfig& cfg_;
  int64_t H_, nope_, rope_, v_, lora_, qk_;
  float scale_;
  cpu::Rope rope_table_;
  LinearWeight q_a_, q_b_, q_, kv_a_, kv_b_, o_;
  std::vector<float> q_a_norm_, kv_a_norm_;
};

}  // namespace moemesh
