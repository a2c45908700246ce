// y = x · Wᵀ for activations in f32 and weights as stored in the checkpoint
// (f32, bf16, f16, or fp8-e4m3 with 128×128 block scales), without copying or
// converting the weights ahead of time.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace moemesh::cpu {

// x: [m, w.in()] row stride ldx; y: [m, w.out()] row stride ldy (overwritten).
// Parallel over the thread pool. Accumulation is in f32.
void linear(const float* x, int64_t m, int64_t ldx, const LinearWeight& w, float* y, int64_t ldy);
inline void linear(const float* x, int64_t m, const LinearWeight& w, float* y) {
  linear(x, m, w.in(), w, y, w.out());
}

// Rows [row_begin, row_end) of W only: y[:, 0:row_end-row_begin].
void linear_rows(const float* x, int64_t m, int64_t ldx, const LinearWeight& w, int64_t row_begin,
                 int64_t row_end, float* y, int64_t ldy);

// The plain loop, used as the reference in tests and as the fallback.
void linear_reference(const float* x, int64_t m, int64_t ldx, const LinearWeight& w, float* y,
                      int64_t ldy);

}  // namespace moemesh::cpu
