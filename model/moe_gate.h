// The gate of one MoE layer (the router's part): logits, scores, top-k experts and
// their weights for each token.
#pragma once

#include <vector>

#include "core/model_config.h"
#include "core/safetensors.h"
#include "kernels/cpu/topk_gate.h"

namespace moemesh {

struct Routing {
  int64_t tokens = 0;
  int64_t top_k = 0;
  std::vector<int32_t> experts;  // [tokens, top_k]
  std::vector<float> weights;    // [tokens, top_k], scaling applied
};

class MoeGate {
 public:
  MoeGate(const ModelConfig& cfg, const Checkpoint& ckpt, int64_t layer);
  Routing route(const float* x, int64_t tokens) const;
  // The same into `r`, reusing its memory (and `logits` as scratch).
  void route(const float* x, int64_t tokens, Routing& r, std::vector<float>& logits) const;
  const cpu::GateParams& params() const { return params_; }

 private:
  cpu::GateParams params_;
  LinearWeight weight_;
  std::vector<float> bias_;  // e_score_correction_bias, empty when absent
};

}  // namespace moemesh
