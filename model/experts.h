// A set of routed experts of one MoE layer: all of them, or the subset an expert
// host serves. Only the listed experts' tensors are touched.
#pragma once

#include <vector>

#include "core/model_config.h"
#include "model/forward_context.h"
#include "model/mlp.h"
#include "model/moe_gate.h"

namespace moemesh {

class ExpertSet {
 public:
  ExpertSet(const ModelConfig& cfg, const Checkpoint& ckpt, int64_t layer, const std::vector<int32_t>& experts);
  // All routed experts of the layer.
  static std::vector<int32_t> all(const ModelConfig& cfg);

  bool has(int32_t e) const { return e >= 0 && e < static_cast<int32_t>(local_.size()) && local_[e] >= 0; }
  const std::vector<int32_t>& ids() const { return ids_; }
  size_t weight_bytes() const;

  // out[t] += Σ_k weight[t,k] · expert_{e[t,k]}(x[t]) over the experts held here,
  // added in ascending expert order; routes to experts not held are skipped.
  // x, out: [tokens, hidden]. All experts' products of a step run as one grouped
  // product (gate and up, then down), each a single pass over the thread pool.
  void forward(const float* x, const Routing& r, float* out, const ForwardContext& ctx) const;
  // The same with exact products and scratch of this thread's own.
  void forward(const float* x, const Routing& r, float* out) const;

 private:
  int64_t hidden_, inter_;
  std::vector<int32_t> local_;   // expert id → index into mlps_, -1 when not held
  std::vector<int32_t> ids_;     // held experts, ascending
  std::vector<SwigluMlp> mlps_;  // in ids_ order
};

}  // namespace moemesh
