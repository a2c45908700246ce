// MoE routing from gate logits: scoring, group-limited top-k, weight normalisation.
#pragma once

#include <cstdint>

#include "core/model_config.h"

namespace moemesh::cpu {

struct GateParams {
  int64_t n_experts = 0;
  int64_t top_k = 0;
  int64_t n_group = 1;
  int64_t topk_group = 1;
  TopkMethod method = TopkMethod::NoauxTc;
  ScoringFunc scoring = ScoringFunc::Sigmoid;
  bool normalize = true;
  float scale = 1.0f;       // routed_scaling_factor
  bool scale_always = true; // DeepSeek-V2 scales only when not normalising

  static GateParams from_config(const ModelConfig& c);
};

// logits: [tokens, n_experts]; bias: [n_experts] or null (used to choose only).
// indices/weights: [tokens, top_k]. Ties go to the lower expert index.
void route_tokens(const float* logits, int64_t tokens, const float* bias, const GateParams& p,
                  int32_t* indices, float* weights);

}  // namespace moemesh::cpu
