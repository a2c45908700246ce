#include "kernels/cpu/linear_t.h"

#include <vector>

#include "kernels/cpu/ops.h"

namespace moemesh::cpu {

void weight_row_f32(const LinearWeight& w, int64_t o, float* out) {
  const int64_t n = w.in();
  const size_t base = static_cast<size_t>(o * n);
  switch (w.w.dtype) {
    case DType::F32: {
      const float* p = static_cast<const float*>(w.w.data) + base;
      for (int64_t i = 0; i < n; ++i) out[i] = p[i];
      break;
    }
    case DType::BF16: {
      const uint16_t* p = static_cast<const uint16_t*>(w.w.data) + base;
      for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_f32(p[i]);
      break;
    }
    default:
      for (int64_t i = 0; i < n; ++i) out[i] = load_as_f32(w.w.dtype, w.w.data, base + i);
  }
  if (w.scale_inv) {
    const float* s = w.scale_inv + (o / LinearWeight::kBlock) * w.scale_cols;
    for (int64_t i = 0; i < n; ++i) out[i] *= s[i / LinearWeight::kBlock];
  }
}

void linear_t(const float* x, int64_t m, int64_t ldx, const LinearWeight& w, int64_t row_begin,
              int64_t row_end, float* y, int64_t ldy) {
  const int64_t n = w.in();
  for (int64_t r = 0; r < m; ++r)
    for (int64_t i = 0; i < n; ++i) y[r * ldy + i] = 0.0f;
  std::vector<float> row(n);
  for (int64_t o = row_begin; o < row_end; ++o) {
    weight_row_f32(w, o, row.data());
    for (int64_t r = 0; r < m; ++r) axpy(x[r * ldx + (o - row_begin)], row.data(), y + r * ldy, n);
  }
}

}  // namespace moemesh::cpu
