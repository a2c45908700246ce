#include "kernels/cpu/linear_t.h"

#include "kernels/cpu/linear_kernels.h"

namespace moemesh::cpu {

void weight_row_f32(const LinearWeight& w, int64_t o, float* out) { detail::convert_rows_generic(w, o, o + 1, out); }

void linear_t(const float* x, int64_t m, int64_t ldx, const LinearWeight& w, int64_t row_begin, int64_t row_end,
              float* y, int64_t ldy) {
  detail::active_kernels().transposed(x, m, ldx, w, row_begin, row_end, y, ldy);
}

}  // namespace moemesh::cpu
