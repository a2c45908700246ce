// Building blocks of linear(): weight rows converted to f32 panels, and the
// register-tiled product of an activation block with a panel. Each has a
// portable version and an AVX-512 one (linear_avx512.cpp).
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace moemesh::cpu::detail {

// out[(o - o0) * K + k] = real value of W[o, k] for o in [o0, o1).
void convert_rows_generic(const LinearWeight& w, int64_t o0, int64_t o1, float* out);
void convert_rows_avx512(const LinearWeight& w, int64_t o0, int64_t o1, float* out);

// y[i * ldy + j] = Σ_k x[i * ldx + k] · panel[j * K + k], i < m, j < n.
void panel_product_generic(const float* x, int64_t m, int64_t ldx, const float* panel, int64_t n, int64_t K,
                           float* y, int64_t ldy);
void panel_product_avx512(const float* x, int64_t m, int64_t ldx, const float* panel, int64_t n, int64_t K,
                          float* y, int64_t ldy);

// Decode-sized products (m <= 4): weights converted in registers and used at once,
// each weight byte read exactly once. y[i, o - o0] for o in [o0, o1).
void direct_product_avx512(const float* x, int64_t m, int64_t ldx, const LinearWeight& w, int64_t o0, int64_t o1,
                           float* y, int64_t ldy);
constexpr int64_t kDirectMaxRows = 4;

bool cpu_has_avx512();

}  // namespace moemesh::cpu::detail
