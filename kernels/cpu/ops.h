// Small row-wise kernels: RMSNorm, SwiGLU, softmax, residual add.
#pragma once

#include <bit>
#include <cstdint>

namespace moemesh::cpu {

// e^x within 2 ulp of std::exp for results in the normal float range (Cephes'
// range reduction and polynomial), 0 below it (and for -inf), written without
// branches or library calls so that loops of it vectorise.
inline float exp_f32(float x) {
  const float lo = -87.3365447f, hi = 88.7228394f;  // ln of the smallest normal, ln FLT_MAX
  const bool under = x < lo;
  x = x < lo ? lo : x > hi ? hi : x;
  const float fx = __builtin_floorf(x * 1.44269504088896341f + 0.5f);
  const float r = (x - fx * 0.693359375f) - fx * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * (r * r) + r + 1.0f;
  // 2^fx, split in two factors: fx reaches 128 at the top of the range.
  const int32_t k = static_cast<int32_t>(fx);
  const float a = std::bit_cast<float>((k / 2 + 127) << 23), b = std::bit_cast<float>((k - k / 2 + 127) << 23);
  return under ? 0.0f : y * a * b;
}

// x[i] = e^(x[i] - shift).
void exp_inplace(float* x, int64_t n, float shift);

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
