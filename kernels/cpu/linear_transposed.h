// y = x · W[o0:o1] without transposing W (absorbed MLA multiplies queries by
// kv_b's key rows from the left): rows of W are streamed once, converted in
// registers in the chunk order of linear_direct.h, and accumulated into a
// permuted copy of y that is put back into natural order at the end.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/cpu/linear_direct.h"

namespace moemesh::cpu::detail {

template <class V, DType T>
void transposed_rows_t(const float* x, int64_t m, int64_t ldx, const LinearWeight& w, int64_t o0, int64_t o1,
                       float* y, int64_t ldy, int64_t cols) {
  using C = Chunk<V, T>;
  using F = typename V::F;
  constexpr int L = V::kLanes;
  const int64_t K = w.in(), chunks = cols / C::CW, kv = chunks * C::CW;
  const int64_t row_bytes = K * static_cast<int64_t>(dtype_size(T));
  const bool fp8 = T == DType::F8_E4M3;
  const float gain = fp8 ? kFp8ActivationGain : 1.0f, back = fp8 ? kFp8SumGain : 1.0f;
  float* yp = kernel_scratch(ScratchSlot::Output, m * kv);
  std::fill(yp, yp + m * kv, 0.0f);
  const uint8_t* base = static_cast<const uint8_t*>(w.w.data);
  auto coef = [&](int64_t i, int64_t o, int64_t c) {
    const float s = w.scale_inv ? w.scale_inv[(o / LinearWeight::kBlock) * w.scale_cols + c * C::CW / LinearWeight::kBlock]
                                : 1.0f;
    return V::set1(x[i * ldx + (o - o0)] * s * gain);
  };
  int64_t o = o0;
  for (; o + 2 <= o1; o += 2) {  // two rows per pass halve the traffic to yp
    const uint8_t* r0 = base + o * row_bytes;
    for (int64_t c = 0; c < chunks; ++c) {
      F w0[C::NV], w1[C::NV];
      C::load(r0 + c * C::CW * dtype_size(T), w0);
      C::load(r0 + row_bytes + c * C::CW * dtype_size(T), w1);
      for (int64_t i = 0; i < m; ++i) {
        const F a0 = coef(i, o, c), a1 = coef(i, o + 1, c);
        float* yc = yp + i * kv + c * C::CW;
        for (int v = 0; v < C::NV; ++v) V::store(yc + v * L, V::fma(a1, w1[v], V::fma(a0, w0[v], V::load(yc + v * L))));
      }
    }
  }
  for (; o < o1; ++o) {
    const uint8_t* r0 = base + o * row_bytes;
    for (int64_t c = 0; c < chunks; ++c) {
      F w0[C::NV];
      C::load(r0 + c * C::CW * dtype_size(T), w0);
      for (int64_t i = 0; i < m; ++i) {
        const F a0 = coef(i, o, c);
        float* yc = yp + i * kv + c * C::CW;
        for (int v = 0; v < C::NV; ++v) V::store(yc + v * L, V::fma(a0, w0[v], V::load(yc + v * L)));
      }
    }
  }
  for (int64_t i = 0; i < m; ++i) {
    float* yi = y + i * ldy;
    for (int64_t c = 0; c < chunks; ++c)
      for (int v = 0; v < C::NV; ++v)
        for (int l = 0; l < L; ++l) yi[c * C::CW + C::order(v, l)] = yp[i * kv + c * C::CW + v * L + l] * back;
    std::fill(yi + kv, yi + cols, 0.0f);
  }
  // The columns past the last whole chunk, a row at a time (a page of latent
  // rows has its rope columns there when the rank is not a multiple of a chunk).
  if (kv == cols) return;
  for (int64_t r = o0; r < o1; ++r)
    for (int64_t k = kv; k < cols; ++k) {
      const float v = element_real<T>(w, r, k, K);
      for (int64_t i = 0; i < m; ++i) y[i * ldy + k] += x[i * ldx + (r - o0)] * v;
    }
}

template <class V>
void transposed_rows(const float* x, int64_t m, int64_t ldx, const LinearWeight& w, int64_t o0, int64_t o1, float* y,
                     int64_t ldy, int64_t cols) {
  switch (w.w.dtype) {
    case DType::BF16: transposed_rows_t<V, DType::BF16>(x, m, ldx, w, o0, o1, y, ldy, cols); break;
    case DType::F8_E4M3: transposed_rows_t<V, DType::F8_E4M3>(x, m, ldx, w, o0, o1, y, ldy, cols); break;
    case DType::F16: transposed_rows_t<V, DType::F16>(x, m, ldx, w, o0, o1, y, ldy, cols); break;
    default: transposed_rows_t<V, DType::F32>(x, m, ldx, w, o0, o1, y, ldy, cols); break;
  }
}

}  // namespace moemesh::cpu::detail
