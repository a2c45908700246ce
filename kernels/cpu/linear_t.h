// y = x · W[rows] (no transpose): y[m, cols] = Σ_o x[m, o - row_begin] · W[o, :cols],
// cols = w.in() when negative; columns of y past cols are left as they were.
// Used by absorbed MLA, which multiplies queries by kv_b's key rows from the left
// and attention weights by cached latent rows (without their rope columns).
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace moemesh::cpu {

void linear_t(const float* x, int64_t m, int64_t ldx, const LinearWeight& w, int64_t row_begin,
              int64_t row_end, float* y, int64_t ldy, int64_t cols = -1);

// Converts row o of W (its real values) into out[0..w.in()).
void weight_row_f32(const LinearWeight& w, int64_t o, float* out);

}  // namespace moemesh::cpu
