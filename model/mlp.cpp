#include "model/mlp.h"

#include <vector>

#include "kernels/cpu/linear.h"
#include "kernels/cpu/ops.h"
#include "model/weight_loader.h"

namespace moemesh {

SwigluMlp::SwigluMlp(const Checkpoint& ckpt, const std::string& p, int64_t hidden, int64_t inter)
    : gate_(load_linear(ckpt, p + ".gate_proj", inter, hidden)),
      up_(load_linear(ckpt, p + ".up_proj", inter, hidden)),
      down_(load_linear(ckpt, p + ".down_proj", hidden, inter)) {}

void SwigluMlp::forward(const float* x, int64_t m, int64_t ldx, float* out) const {
  const int64_t inter = gate_.out();
  std::vector<float> g(m * inter), u(m * inter);
  cpu::linear(x, m, ldx, gate_, g.data(), inter);
  cpu::linear(x, m, ldx, up_, u.data(), inter);
  cpu::silu_mul(g.data(), u.data(), m * inter, g.data());
  cpu::linear(g.data(), m, inter, down_, out, down_.out());
}

}  // namespace moemesh
