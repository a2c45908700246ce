// SwiGLU feed-forward: down(silu(gate(x)) * up(x)). Dense layers, shared experts
// and each routed expert are all of this shape.
#pragma once

#include <string>

#include "core/safetensors.h"
#include "model/forward_context.h"

namespace moemesh {

class SwigluMlp {
 public:
  SwigluMlp() = default;
  // prefix: e.g. "model.layers.0.mlp" or "model.layers.3.mlp.experts.17"
  SwigluMlp(const Checkpoint& ckpt, const std::string& prefix, int64_t hidden, int64_t inter);
  // x: [m, hidden] with row stride ldx; out: [m, hidden] (overwritten).
  void forward(const float* x, int64_t m, int64_t ldx, float* out, const ForwardContext& ctx) const;
  int64_t hidden() const { return down_.out(); }
  int64_t inter() const { return gate_.out(); }
  size_t weight_bytes() const { return gate_.w.nbytes() + up_.w.nbytes() + down_.w.nbytes(); }
  const LinearWeight& gate() const { return gate_; }
  const LinearWeight& up() const { return up_; }
  const LinearWeight& down() const { return down_; }

 private:
  LinearWeight gate_, up_, down_;
};

}  // namespace moemesh
