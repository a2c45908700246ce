// The linear() kernels of each instruction set, as a table the dispatcher (and
// the tests, which run every table this CPU supports) pick from.
#pragma once

#include <cstdint>

#include "core/tensor.h"
#include "kernels/cpu/cpu_features.h"

namespace moemesh::cpu::detail {

// y[i, o - o0] for o in [o0, o1), i < m.
using RowsFn = void (*)(const float* x, int64_t m, int64_t ldx, const LinearWeight& w, int64_t o0, int64_t o1,
                        float* y, int64_t ldy);
// The same from activations as bf16 pairs (xb: [m][ldxb] pairs, zero-padded to even K).
using PairRowsFn = void (*)(const uint32_t* xb, int64_t m, int64_t ldxb, const LinearWeight& w, int64_t o0,
                            int64_t o1, float* y, int64_t ldy);
// y[i, :cols] = Σ_{o in [o0, o1)} x[i, o - o0] · W[o, :cols] (no transpose), i < m, cols ≤ w.in().
using TransposedFn = void (*)(const float* x, int64_t m, int64_t ldx, const LinearWeight& w, int64_t o0,
                              int64_t o1, float* y, int64_t ldy, int64_t cols);

struct LinearKernels {
  const char* name;
  RowsFn direct;            // m ≤ kDirectMaxRows: weights streamed once, converted in registers
  RowsFn blocked;           // m ≤ kBlockedMaxRows: the same per group of 8 rows over L1-sized blocks
  RowsFn packed;            // larger m: f32 panels, register-tiled (exact)
  PairRowsFn packed_bf16;   // larger m with bf16 dot products (fast); null where none
  TransposedFn transposed;  // linear_t
  int64_t panel_rows;       // NR of the packed kernels: row ranges split at multiples of it
};

constexpr int64_t kDirectMaxRows = 4;
constexpr int64_t kBlockedMaxRows = 8;  // measured: packing pays off from about here

const LinearKernels& generic_kernels();
const LinearKernels& avx2_kernels();
// AVX2 with the bf16 dot product emulated by FMAs: runs the bf16-pair path (its
// packing, tiling and rounding) on CPUs without vdpbf16ps, for the tests.
const LinearKernels& avx2_bf16_emulated_kernels();
const LinearKernels& avx512_kernels();       // packed_bf16 set only where the CPU has AVX512_BF16
// The table linear() uses on this CPU (kernel_isa()).
const LinearKernels& active_kernels();

// Portable building blocks, also the reference pieces of the generic table.
void convert_rows_generic(const LinearWeight& w, int64_t o0, int64_t o1, float* out);

}  // namespace moemesh::cpu::detail
