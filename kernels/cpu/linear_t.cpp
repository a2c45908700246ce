#include "kernels/cpu/linear_t.h"

#include <stdexcept>
#include <string>

#include "kernels/cpu/linear_kernels.h"

namespace moemesh::cpu {

void weight_row_f32(const LinearWeight& w, int64_t o, float* out) { detail::convert_rows_generic(w, o, o + 1, out); }

void linear_t(const float* x, int64_t m, int64_t ldx, const LinearWeight& w, int64_t row_begin, int64_t row_end,
              float* y, int64_t ldy, int64_t cols) {
  if (cols < 0) cols = w.in();
  if (cols > w.in()) throw std::invalid_argument("linear_t: " + std::to_string(cols) + " columns of a weight with " + std::to_string(w.in()));
  detail::active_kernels().transposed(x, m, ldx, w, row_begin, row_end, y, ldy, cols);
}

}  // namespace moemesh::cpu
