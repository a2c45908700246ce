// A set of routed experts of one MoE layer: all of them, or the subset an expert
// host serves. Only the listed experts' tensors are touched.
#pragma once

#include <map>
#include <vector>

#include "core/model_config.h"
#include "model/mlp.h"
#include "model/moe_gate.h"

namespace moemesh {

class ExpertSet {
 public:
  ExpertSet(const ModelConfig& cfg, const Checkpoint& ckpt, int64_t layer,
            const std::vector<int32_t>& experts);
  // All routed experts of the layer.
  static std::vector<int32_t> all(const ModelConfig& cfg);

  bool has(int32_t e) const { return experts_.count(e) != 0; }
  std::vector<int32_t> ids() const;
  size_t weight_bytes() const;

  // out[t] += Σ_k weight[t,k] · expert_{e[t,k]}(x[t]) over the experts held here;
  // routes to experts not held are skipped. x, out: [tokens, hidden].
  void forward(const float* x, const Routing& r, float* out) const;

 private:
  int64_t hidden_;
  std::map<int32_t, SwigluMlp> experts_;
};

}  // namespace moemesh
