#include "model/mlp.h"

#include "kernels/cpu/linear.h"
#include "kernels/cpu/ops.h"
#include "model/weight_loader.h"

namespace moemesh {

SwigluMlp::SwigluMlp(const Checkpoint& ckpt, const std::string& p, int64_t hidden, int64_t inter)
    : gate_(load_linear(ckpt, p + ".gate_proj", inter, hidden)),
      up_(load_linear(ckpt, p + ".up_proj", inter, hidden)),
      down_(load_linear(ckpt, p + ".down_proj", hidden, inter)) {}

void SwigluMlp::forward(const float* x, int64_t m, int64_t ldx, float* out, const ForwardContext& ctx) const {
  Workspace::Frame frame(*ctx.ws);
  const int64_t inter = gate_.out();
  float* g = ctx.ws->floats(m * inter);
  float* u = ctx.ws->floats(m * inter);
  cpu::linear(x, m, ldx, gate_, g, inter, ctx.precision);
  cpu::linear(x, m, ldx, up_, u, inter, ctx.precision);
  cpu::silu_mul(g, u, m * inter, g);
  cpu::linear(g, m, inter, down_, out, down_.out(), ctx.precision);
}

}  // namespace moemesh
