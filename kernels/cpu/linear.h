// y = x · Wᵀ for activations in f32 and weights as stored in the checkpoint
// (f32, bf16, f16, or fp8-e4m3 with 128×128 block scales), without copying or
// converting the weights ahead of time.
#pragma once

#include <cstdint>

#include "core/tensor.h"
#include "kernels/cpu/precision.h"

namespace moemesh::cpu {

// x: [m, w.in()] row stride ldx; y: [m, w.out()] row stride ldy (overwritten).
// Parallel over the thread pool (by output rows: the LM head splits by vocabulary
// rows). Accumulation is in f32; Precision::Fast may round x to bf16 for products
// with many rows on CPUs with bf16 dot products.
void linear(const float* x, int64_t m, int64_t ldx, const LinearWeight& w, float* y, int64_t ldy,
            Precision p = Precision::Exact);
inline void linear(const float* x, int64_t m, const LinearWeight& w, float* y, Precision p = Precision::Exact) {
  linear(x, m, w.in(), w, y, w.out(), p);
}

// Rows [row_begin, row_end) of W only: y[:, 0:row_end-row_begin].
void linear_rows(const float* x, int64_t m, int64_t ldx, const LinearWeight& w, int64_t row_begin,
                 int64_t row_end, float* y, int64_t ldy, Precision p = Precision::Exact);

// The same on the calling thread only (for callers already inside a parallel loop).
void linear_rows_serial(const float* x, int64_t m, int64_t ldx, const LinearWeight& w, int64_t row_begin,
                        int64_t row_end, float* y, int64_t ldy, Precision p = Precision::Exact);

// The plain loop, used as the reference in tests.
void linear_reference(const float* x, int64_t m, int64_t ldx, const LinearWeight& w, float* y,
                      int64_t ldy);

namespace detail {
struct LinearKernels;
// linear_rows with a chosen kernel table (tests run every table the CPU has).
void linear_rows_with(const LinearKernels& k, const float* x, int64_t m, int64_t ldx, const LinearWeight& w,
                      int64_t row_begin, int64_t row_end, float* y, int64_t ldy, Precision p, bool parallel = true);
}  // namespace detail

}  // namespace moemesh::cpu
