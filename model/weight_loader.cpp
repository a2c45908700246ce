#include "model/weight_loader.h"

#include <cmath>

namespace moemesh {

std::string layer_prefix(int64_t layer) { return "model.layers." + std::to_string(layer) + "."; }

LinearWeight load_linear(const Checkpoint& ckpt, const std::string& prefix, int64_t out, int64_t in) {
  LinearWeight lw;
  lw.w = ckpt.get_float(prefix + ".weight", {out, in});
  if (lw.w.dtype == DType::F8_E4M3) {
    const int64_t rows = (out + LinearWeight::kBlock - 1) / LinearWeight::kBlock;
    const int64_t cols = (in + LinearWeight::kBlock - 1) / LinearWeight::kBlock;
    const std::string sname = prefix + ".weight_scale_inv";
    TensorView s = ckpt.get(sname, DType::F32, {rows, cols});
    const float* sp = static_cast<const float*>(s.data);
    for (int64_t i = 0; i < rows * cols; ++i) {
      if (!std::isfinite(sp[i]) || sp[i] <= 0.0f)
        throw CheckpointError("tensor '" + sname + "': scale " + std::to_string(i) +
                              " is not a positive finite number");
    }
    lw.scale_inv = sp;
    lw.scale_cols = cols;
  }
  return lw;
}

std::vector<float> load_vector(const Checkpoint& ckpt, const std::string& name, int64_t n) {
  TensorView t = ckpt.get_float(name, {n});
  std::vector<float> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = load_as_f32(t.dtype, t.data, static_cast<size_t>(i));
  return v;
}

}  // namespace moemesh
