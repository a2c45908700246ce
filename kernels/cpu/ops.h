// Small row-wise kernels: RMSNorm, SwiGLU, softmax, residual add.
#pragma once

#include <cstdint>

namespace moemesh::cpu {

// y[r] = x[r] / rms(x[r]) * w, rows of length n (x and y may alias).
void rmsnorm(const float* x, int64_t rows, int64_t n, int64_t ldx, const float* w, float eps,
             float* y, int64_t ldy);
inline void rmsnorm(const float* x, int64_t rows, int64_t n, const float* w, float eps, float* y) {
  rmsnorm(x, rows, n, n, w, eps, y, n);
}

// out[i] = silu(gate[i]) * up[i].
void silu_mul(const float* gate, const float* up, int64_t n, float* out);

// In-place softmax over n values; returns nothing, handles -inf entries.
void softmax_inplace(float* x, int64_t n);

// y[i] += x[i].
void add_inplace(float* y, const float* x, int64_t n);
// y[i] += a * x[i].
void axpy(float a, const float* x, float* y, int64_t n);
float dot(const float* a, const float* b, int64_t n);

}  // namespace moemesh::cpu
