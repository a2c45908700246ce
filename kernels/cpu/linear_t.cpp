#include "kernels/cpu/linear_t.h"

#include <vector>

#include "kernels/cpu/linear_kernels.h"
#include "kernels/cpu/ops.h"

namespace moemesh::cpu {

void weight_row_f32(const LinearWeight& w, int64_t o, float* out) {
  if (detail::cpu_has_avx512()) detail::convert_rows_avx512(w, o, o + 1, out);
  else detail::convert_rows_generic(w, o, o + 1, out);
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
