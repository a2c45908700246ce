// Prefill-sized products (many activation rows): weights are converted once per
// call into panels of NR = 2L output rows laid out [k][NR], and a register tile
// of MR activation rows × NR outputs broadcasts one activation per FMA pair
// (the layout of BLIS-style kernels). Two panel kinds:
//   f32 panels (exact): real weight values, FMA in f32;
//   bf16 pair panels (fast, bf16 dot products): weights as bf16 pairs with the
//   activations rounded to bf16; fp8 block scales are applied per output row to
//   each 128-column block's sums, since fp8 values are bf16 values but their
//   products with the scales are not.
// Written over the vector primitives V; instantiated per instruction set.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "kernels/cpu/kernel_scratch.h"
#include "kernels/cpu/linear_direct.h"
#include "kernels/cpu/simd/avx2.h"

namespace moemesh::cpu::detail {

// 8 consecutive weights from p (row-major storage of type T) as f32; fp8 values
// come out unscaled (value × 2⁻⁸ · 256: shifted into an f16, an e4m3 value reads
// as value × 2⁻⁸, subnormals too).
template <DType T>
inline __m256 natural8(const uint8_t* p) {
  if constexpr (T == DType::BF16) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  } else if constexpr (T == DType::F16) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  } else if constexpr (T == DType::F8_E4M3) {
    const __m128i b = _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
    const __m128i mag = _mm_slli_epi16(_mm_and_si128(b, _mm_set1_epi16(0x7f)), 7);
    const __m128i sign = _mm_slli_epi16(_mm_and_si128(b, _mm_set1_epi16(0x80)), 8);
    return _mm256_mul_ps(_mm256_cvtph_ps(_mm_or_si128(mag, sign)), _mm256_set1_ps(256.0f));
  } else {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(p));
  }
}

__attribute__((always_inline)) inline void transpose8(__m256 r[8]) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xee);
  const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xee);
  const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xee);
  const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xee);
  r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
  r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
  r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
  r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
  r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

// panel[kk * NR + j] = W[o + j, k0 + kk] for j < rows, kk < kc; zero for j ≥ rows.
// With `scaled` false, fp8 values are left unscaled. Eight rows by eight columns
// at a time: converted, transposed in registers, stored as eight panel rows.
template <int NR, DType T>
void pack_f32_t(const LinearWeight& w, int64_t o, int rows, int64_t k0, int64_t kc, bool scaled, float* panel) {
  constexpr int64_t es = static_cast<int64_t>(dtype_size(T));
  const int64_t K = w.in();
  const uint8_t* base = static_cast<const uint8_t*>(w.w.data);
  const bool apply_scale = scaled && w.scale_inv;
  constexpr bool pairs = T == DType::BF16 || T == DType::F8_E4M3;
  // bf16 and fp8 rows convert 16 columns at a time into their even and odd halves
  // (simd/avx2.h), transposed into the even and odd panel rows.
  const int64_t step = pairs ? 16 : 8;
  const int64_t kv = kc / step * step;
  const __m256 fp8_gain = _mm256_set1_ps(1329227995784915872903807060280344576.0f);  // 2^120
  int j = 0;
  for (; j + 8 <= rows; j += 8) {
    const uint8_t* r0 = base + ((o + j) * K + k0) * es;
    alignas(32) float rs[8];
    bool fold = false;  // fp8: 2^120 folded into the scales when that cannot overflow
    for (int64_t kk = 0; kk < kv; kk += step) {
      if (apply_scale && (kk == 0 || ((k0 + kk) % LinearWeight::kBlock) == 0)) {
        float top = 0.0f;
        for (int q = 0; q < 8; ++q) {  // one scale per row for these columns (16 divides 128)
          rs[q] = w.scale_inv[((o + j + q) / LinearWeight::kBlock) * w.scale_cols + (k0 + kk) / LinearWeight::kBlock];
          top = std::max(top, std::fabs(rs[q]));
        }
        fold = T == DType::F8_E4M3 && top < 128.0f;
        if (fold)
          for (int q = 0; q < 8; ++q) rs[q] *= 1329227995784915872903807060280344576.0f;
      }
      if (((kk * es) & 63) == 0)  // the next panel's rows, as in pack_pairs_t
#pragma GCC unroll 8
        for (int q = 0; q < 8; ++q) _mm_prefetch(reinterpret_cast<const char*>(r0 + ((q + NR) * K + kk) * es), _MM_HINT_T0);
      __m256 r[2][8];
#pragma GCC unroll 8
      for (int q = 0; q < 8; ++q) {
        const uint8_t* p = r0 + (q * K + kk) * es;
        if constexpr (T == DType::BF16) simd::Avx2::bf16_pairs(p, r[0][q], r[1][q]);
        else if constexpr (T == DType::F8_E4M3) simd::Avx2::fp8_pairs(p, r[0][q], r[1][q]);
        else r[0][q] = natural8<T>(p);
      }
      for (int h = 0; h < (pairs ? 2 : 1); ++h) {
        transpose8(r[h]);
        if (T == DType::F8_E4M3 && !fold)
#pragma GCC unroll 8
          for (int q = 0; q < 8; ++q) r[h][q] = _mm256_mul_ps(r[h][q], fp8_gain);
        if (apply_scale) {
          const __m256 sv = _mm256_load_ps(rs);
#pragma GCC unroll 8
          for (int q = 0; q < 8; ++q) r[h][q] = _mm256_mul_ps(r[h][q], sv);
        }
        // Pairs: vector q holds column 2q + h; otherwise column q.
#pragma GCC unroll 8
        for (int q = 0; q < 8; ++q) _mm256_storeu_ps(panel + (kk + (pairs ? 2 * q + h : q)) * NR + j, r[h][q]);
      }
    }
  }
  auto value = [&](int64_t row, int64_t col) {
    return apply_scale || !w.scale_inv ? w.at(row, col) : load_as_f32(w.w.dtype, w.w.data, row * K + col);
  };
  for (int jj = j; jj < rows; ++jj)
    for (int64_t kk = 0; kk < kv; ++kk) panel[kk * NR + jj] = value(o + jj, k0 + kk);
  for (int jj = 0; jj < rows; ++jj)
    for (int64_t kk = kv; kk < kc; ++kk) panel[kk * NR + jj] = value(o + jj, k0 + kk);
  for (int64_t kk = 0; kk < kc; ++kk)
    for (int jj = rows; jj < NR; ++jj) panel[kk * NR + jj] = 0.0f;
}

template <int NR>
void pack_f32(const LinearWeight& w, int64_t o, int rows, int64_t k0, int64_t kc, bool scaled, float* panel) {
  switch (w.w.dtype) {
    case DType::BF16: pack_f32_t<NR, DType::BF16>(w, o, rows, k0, kc, scaled, panel); break;
    case DType::F8_E4M3: pack_f32_t<NR, DType::F8_E4M3>(w, o, rows, k0, kc, scaled, panel); break;
    case DType::F16: pack_f32_t<NR, DType::F16>(w, o, rows, k0, kc, scaled, panel); break;
    default: pack_f32_t<NR, DType::F32>(w, o, rows, k0, kc, scaled, panel); break;
  }
}

// pairs[kp * NR + j] = (W[o+j, k0+2kp], W[o+j, k0+2kp+1]) as bf16, unscaled: bf16
// weights as they are; fp8 values exactly (every e4m3 value is a bf16 value), as
// their true values (`true_fp8`) or, cheaper, as value × 2⁻¹²⁰ (sign-extended,
// shifted and masked bytes: the caller scales the activations to match); zero
// past `rows` and past kc. Eight rows by 16 columns at a time: each row's 16
// values are 8 pairs, transposed as 32-bit units.
template <int NR, DType T>
void pack_pairs_t(const LinearWeight& w, int64_t o, int rows, int64_t k0, int64_t kc, bool true_fp8, uint32_t* pairs) {
  constexpr int64_t es = static_cast<int64_t>(dtype_size(T));
  const int64_t K = w.in(), kv = kc / 16 * 16, kp_n = (kc + 1) / 2;
  const uint8_t* base = static_cast<const uint8_t*>(w.w.data);
  int j = 0;
  for (; j + 8 <= rows; j += 8) {
    const uint8_t* r0 = base + ((o + j) * K + k0) * es;
    for (int64_t kk = 0; kk < kv; kk += 16) {
      // The next panel's rows, a panel ahead: eight short rows are eight streams
      // the hardware prefetcher finds too late, and these weights come from memory.
      if (((kk * es) & 63) == 0)
#pragma GCC unroll 8
        for (int q = 0; q < 8; ++q) _mm_prefetch(reinterpret_cast<const char*>(r0 + ((q + NR) * K + kk) * es), _MM_HINT_T0);
      __m256 r[8];
#pragma GCC unroll 8
      for (int q = 0; q < 8; ++q) {
        const uint8_t* p = r0 + (q * K + kk) * es;
        __m256i v;
        if constexpr (T == DType::BF16) {
          v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
        } else if (!true_fp8) {
          const __m256i sx = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
          v = _mm256_and_si256(_mm256_slli_epi16(sx, 4), _mm256_set1_epi16(static_cast<short>(0x87f0)));
        } else {
          // e4m3 → f32 × 2⁻¹²⁰ (simd/avx2.h), × 2¹²⁰ to the true value (exact, and
          // normal for every e4m3 value), whose top half is its bf16.
          __m256 even, odd;
          simd::Avx2::fp8_pairs(p, even, odd);
          const __m256 gain = _mm256_set1_ps(1329227995784915872903807060280344576.0f);  // 2^120
          const __m256i e = _mm256_castps_si256(_mm256_mul_ps(even, gain));
          const __m256i d = _mm256_castps_si256(_mm256_mul_ps(odd, gain));
          v = _mm256_or_si256(_mm256_srli_epi32(e, 16), _mm256_and_si256(d, _mm256_set1_epi32(static_cast<int>(0xffff0000u))));
        }
        r[q] = _mm256_castsi256_ps(v);
      }
      transpose8(r);
#pragma GCC unroll 8
      for (int q = 0; q < 8; ++q) _mm256_storeu_ps(reinterpret_cast<float*>(pairs + (kk / 2 + q) * NR + j), r[q]);
    }
  }
  auto bits = [&](int64_t row, int64_t col) -> uint32_t {
    if (col >= kc) return 0;
    const size_t at = static_cast<size_t>(row * K + k0 + col);
    if constexpr (T == DType::BF16) return static_cast<const uint16_t*>(w.w.data)[at];
    if (!true_fp8) {
      const uint16_t sx = static_cast<uint16_t>(static_cast<int16_t>(static_cast<int8_t>(base[at])));
      return static_cast<uint16_t>((sx << 4) & 0x87f0);
    }
    return f32_to_bf16(fp8e4m3_to_f32(base[at]));  // exact
  };
  auto tail = [&](int jj, int64_t kp) { pairs[kp * NR + jj] = bits(o + jj, 2 * kp) | bits(o + jj, 2 * kp + 1) << 16; };
  for (int jj = j; jj < rows; ++jj)
    for (int64_t kp = 0; kp < kv / 2; ++kp) tail(jj, kp);
  for (int jj = 0; jj < rows; ++jj)
    for (int64_t kp = kv / 2; kp < kp_n; ++kp) tail(jj, kp);
  for (int64_t kp = 0; kp < kp_n; ++kp)
    for (int jj = rows; jj < NR; ++jj) pairs[kp * NR + jj] = 0;
}

template <int NR>
void pack_pairs(const LinearWeight& w, int64_t o, int rows, int64_t k0, int64_t kc, bool true_fp8, uint32_t* pairs) {
  if (w.w.dtype == DType::BF16) pack_pairs_t<NR, DType::BF16>(w, o, rows, k0, kc, true_fp8, pairs);
  else pack_pairs_t<NR, DType::F8_E4M3>(w, o, rows, k0, kc, true_fp8, pairs);
}

// c[i, 0:ncols] (+)= scale ⊙ acc[i] (scale per output column, or none): vectors
// for a whole panel, element by element for a partial one.
template <class V, int MR>
inline void write_tile(const typename V::F (&acc)[MR][2], const float* scale, float* c, int64_t ldc, int ncols,
                       bool accumulate) {
  constexpr int L = V::kLanes, NR = 2 * L;
  if (ncols == NR) {
    const typename V::F s0 = scale ? V::load(scale) : V::set1(1.0f), s1 = scale ? V::load(scale + L) : V::set1(1.0f);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      float* ci = c + i * ldc;
      const typename V::F v0 = V::mul(acc[i][0], s0), v1 = V::mul(acc[i][1], s1);
      V::store(ci, accumulate ? V::add(V::load(ci), v0) : v0);
      V::store(ci + L, accumulate ? V::add(V::load(ci + L), v1) : v1);
    }
    return;
  }
  alignas(64) float tmp[MR][NR];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    V::store(tmp[i], acc[i][0]);
    V::store(tmp[i] + L, acc[i][1]);
  }
  for (int i = 0; i < MR; ++i) {
    float* ci = c + i * ldc;
    for (int j = 0; j < ncols; ++j) {
      const float v = scale ? tmp[i][j] * scale[j] : tmp[i][j];
      ci[j] = accumulate ? ci[j] + v : v;
    }
  }
}

// c[i, j] (+)= Σ_kk x[i, kk] · panel[kk, j] for i < MR, j < ncols.
template <class V, int MR>
inline void tile_f32(const float* x, int64_t ldx, const float* panel, int64_t kc, float* c, int64_t ldc, int ncols,
                     bool accumulate) {
  using F = typename V::F;
  constexpr int L = V::kLanes, NR = 2 * L;
  F acc[MR][2];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = V::zero();
  for (int64_t kk = 0; kk < kc; ++kk) {
    const F b0 = V::load(panel + kk * NR), b1 = V::load(panel + kk * NR + L);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const F a = V::broadcast(x + i * ldx + kk);
      acc[i][0] = V::fma(a, b0, acc[i][0]);
      acc[i][1] = V::fma(a, b1, acc[i][1]);
    }
  }
  // Written back with compile-time indices only, so the accumulators stay in
  // registers through the k loop.
  if (ncols == NR) {
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      float* ci = c + i * ldc;
      if (accumulate) {
        V::store(ci, V::add(V::load(ci), acc[i][0]));
        V::store(ci + L, V::add(V::load(ci + L), acc[i][1]));
      } else {
        V::store(ci, acc[i][0]);
        V::store(ci + L, acc[i][1]);
      }
    }
    return;
  }
  alignas(64) float tmp[MR][NR];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    V::store(tmp[i], acc[i][0]);
    V::store(tmp[i] + L, acc[i][1]);
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < ncols; ++j) c[i * ldc + j] = accumulate ? c[i * ldc + j] + tmp[i][j] : tmp[i][j];
}

// c[i, j] (+)= scale[j] · Σ_k x[i, k] · pair panel value (k, j), for f32
// activations (exact): each panel vector of 8 pairs gives the even-k and the odd-k
// weights of its 8 outputs (a shift and a mask), each multiplied by its own
// broadcast activation. kc may be odd (the last pair's second half is zero).
template <class V, int MR>
inline void tile_pairs_f32(const float* x, int64_t ldx, const uint32_t* panel, int64_t kc, const float* scale,
                           float* c, int64_t ldc, int ncols, bool accumulate) {
  using F = typename V::F;
  constexpr int L = V::kLanes, NR = 2 * L;
  F acc[MR][2];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = V::zero();
  const F top = V::top_mask();
  const int64_t full = kc / 2;
  for (int64_t kp = 0; kp < full; ++kp) {
    F e0, o0, e1, o1;
    V::split_pairs(V::load_u32(panel + kp * NR), top, e0, o0);
    V::split_pairs(V::load_u32(panel + kp * NR + L), top, e1, o1);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const F ae = V::broadcast(x + i * ldx + 2 * kp), ao = V::broadcast(x + i * ldx + 2 * kp + 1);
      acc[i][0] = V::fma(ao, o0, V::fma(ae, e0, acc[i][0]));
      acc[i][1] = V::fma(ao, o1, V::fma(ae, e1, acc[i][1]));
    }
  }
  if (kc % 2) {
    F e0, o0, e1, o1;
    V::split_pairs(V::load_u32(panel + full * NR), top, e0, o0);
    V::split_pairs(V::load_u32(panel + full * NR + L), top, e1, o1);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const F ae = V::broadcast(x + i * ldx + 2 * full);
      acc[i][0] = V::fma(ae, e0, acc[i][0]);
      acc[i][1] = V::fma(ae, e1, acc[i][1]);
    }
  }
  write_tile<V, MR>(acc, scale, c, ldc, ncols, accumulate);
}

template <class V, int MR>
void tile_rows_pairs_f32(const float* x, int64_t m, int64_t ldx, const uint32_t* panel, int64_t kc,
                         const float* scale, float* c, int64_t ldc, int ncols, bool accumulate) {
  int64_t i = 0;
  for (; i + MR <= m; i += MR)
    tile_pairs_f32<V, MR>(x + i * ldx, ldx, panel, kc, scale, c + i * ldc, ldc, ncols, accumulate);
  if (i == m) return;
  if constexpr (MR > 1)
    tile_rows_pairs_f32<V, MR - 1>(x + i * ldx, m - i, ldx, panel, kc, scale, c + i * ldc, ldc, ncols, accumulate);
}

// The same over bf16 pairs: xb [MR][kc/2] pairs, panel [kc/2][NR] pairs; sums are
// multiplied by scale[j] (per output row) when `scale` is given.
template <class V, int MR>
inline void tile_bf16(const uint32_t* xb, int64_t ldxb, const uint32_t* panel, int64_t kp_n, const float* scale,
                      float* c, int64_t ldc, int ncols, bool accumulate) {
  using F = typename V::F;
  constexpr int L = V::kLanes, NR = 2 * L;
  F acc[MR][2];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = V::zero();
  for (int64_t kp = 0; kp < kp_n; ++kp) {
    const F b0 = V::load_u32(panel + kp * NR), b1 = V::load_u32(panel + kp * NR + L);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const F a = V::broadcast_u32(xb + i * ldxb + kp);
      acc[i][0] = V::dot_bf16_pairs(acc[i][0], a, b0);
      acc[i][1] = V::dot_bf16_pairs(acc[i][1], a, b1);
    }
  }
  write_tile<V, MR>(acc, scale, c, ldc, ncols, accumulate);
}

template <class V, int MR>
void tile_rows_f32(const float* x, int64_t m, int64_t ldx, const float* panel, int64_t kc, float* c, int64_t ldc,
                   int ncols, bool accumulate) {
  int64_t i = 0;
  for (; i + MR <= m; i += MR) tile_f32<V, MR>(x + i * ldx, ldx, panel, kc, c + i * ldc, ldc, ncols, accumulate);
  if (i == m) return;
  if constexpr (MR > 1) tile_rows_f32<V, MR - 1>(x + i * ldx, m - i, ldx, panel, kc, c + i * ldc, ldc, ncols, accumulate);
}

template <class V, int MR>
void tile_rows_bf16(const uint32_t* xb, int64_t m, int64_t ldxb, const uint32_t* panel, int64_t kp_n,
                    const float* scale, float* c, int64_t ldc, int ncols, bool accumulate) {
  int64_t i = 0;
  for (; i + MR <= m; i += MR)
    tile_bf16<V, MR>(xb + i * ldxb, ldxb, panel, kp_n, scale, c + i * ldc, ldc, ncols, accumulate);
  if (i == m) return;
  if constexpr (MR > 1)
    tile_rows_bf16<V, MR - 1>(xb + i * ldxb, m - i, ldxb, panel, kp_n, scale, c + i * ldc, ldc, ncols, accumulate);
}

// Columns per block: a panel of kKc × NR f32 stays in L1, the activations' block in L2.
constexpr int64_t kKc = 256;

// y[i, o - o0] for o in [o0, o1) (o0 a multiple of NR from the range start), all m rows, f32 panels.
template <class V>
void packed_rows_f32(const float* x, int64_t m, int64_t ldx, const LinearWeight& w, int64_t o0, int64_t o1, float* y,
                     int64_t ldy) {
  constexpr int NR = 2 * V::kLanes;
  float* panel = kernel_scratch(ScratchSlot::Panel, kKc * NR);
  const int64_t K = w.in();
  for (int64_t o = o0; o < o1; o += NR) {
    const int rows = static_cast<int>(std::min<int64_t>(NR, o1 - o));
    for (int64_t k0 = 0; k0 < K; k0 += kKc) {
      const int64_t kc = std::min(kKc, K - k0);
      pack_f32<NR>(w, o, rows, k0, kc, /*scaled=*/true, panel);
      tile_rows_f32<V, V::kGemmRows>(x + k0, m, ldx, panel, kc, y + (o - o0), ldy, rows, k0 > 0);
    }
  }
}

// Per output row of a panel, the scale of the 128-column block at k0, times `gain`.
template <int NR>
inline void pair_scales(const LinearWeight& w, int64_t o, int rows, int64_t k0, float gain, float* scale) {
  for (int j = 0; j < NR; ++j)
    scale[j] =
        j < rows ? gain * w.scale_inv[((o + j) / LinearWeight::kBlock) * w.scale_cols + k0 / LinearWeight::kBlock] : 0.0f;
}

// bf16 or fp8 weights with f32 activations (exact): pair panels, half the bytes
// of f32 panels and no conversion to f32 while packing.
template <class V>
void packed_rows_pairs_f32(const float* x, int64_t m, int64_t ldx, const LinearWeight& w, int64_t o0, int64_t o1,
                           float* y, int64_t ldy) {
  constexpr int NR = 2 * V::kLanes;
  uint32_t* pairs = reinterpret_cast<uint32_t*>(kernel_scratch(ScratchSlot::Panel, kKc / 2 * NR));
  const int64_t K = w.in();
  // fp8 packs cheaply as value × 2⁻¹²⁰; the activations carry 2⁶⁴ (a copy) and
  // the scales the remaining 2⁵⁶ (linear_direct.h), so no product underflows.
  const bool fp8 = w.w.dtype == DType::F8_E4M3;
  if (fp8) {
    float* xs = kernel_scratch(ScratchSlot::Activations, m * K);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t k = 0; k < K; ++k) xs[i * K + k] = x[i * ldx + k] * kFp8ActivationGain;
    x = xs;
    ldx = K;
  }
  // fp8 blocks 128 columns at a time, so one scale per output row applies.
  const int64_t kb = w.scale_inv ? LinearWeight::kBlock : kKc;
  alignas(64) float scale[NR];
  for (int64_t o = o0; o < o1; o += NR) {
    const int rows = static_cast<int>(std::min<int64_t>(NR, o1 - o));
    for (int64_t k0 = 0; k0 < K; k0 += kb) {
      const int64_t kc = std::min(kb, K - k0);
      pack_pairs<NR>(w, o, rows, k0, kc, /*true_fp8=*/false, pairs);
      const bool scaled = w.scale_inv != nullptr;
      if (scaled) pair_scales<NR>(w, o, rows, k0, fp8 ? kFp8SumGain : 1.0f, scale);
      tile_rows_pairs_f32<V, V::kPairRows>(x + k0, m, ldx, pairs, kc, scaled ? scale : nullptr,
                                           y + (o - o0), ldy, rows, k0 > 0);
    }
  }
}

// The same with bf16 pairs; xb holds the activations as bf16 pairs, ldxb pairs per row.
// fp8 blocks are taken 128 columns at a time so one scale per output row applies.
template <class V>
void packed_rows_bf16(const uint32_t* xb, int64_t m, int64_t ldxb, const LinearWeight& w, int64_t o0, int64_t o1,
                      float* y, int64_t ldy) {
  constexpr int NR = 2 * V::kLanes;
  uint32_t* pairs = reinterpret_cast<uint32_t*>(kernel_scratch(ScratchSlot::Panel, kKc / 2 * NR));
  const int64_t K = w.in();
  const bool scaled = w.scale_inv != nullptr;
  const int64_t kb = w.scale_inv ? LinearWeight::kBlock : kKc;
  alignas(64) float scale[NR];
  for (int64_t o = o0; o < o1; o += NR) {
    const int rows = static_cast<int>(std::min<int64_t>(NR, o1 - o));
    for (int64_t k0 = 0; k0 < K; k0 += kb) {
      const int64_t kc = std::min(kb, K - k0);
      pack_pairs<NR>(w, o, rows, k0, kc, /*true_fp8=*/true, pairs);
      if (scaled) pair_scales<NR>(w, o, rows, k0, 1.0f, scale);
      tile_rows_bf16<V, V::kGemmRows>(xb + k0 / 2, m, ldxb, pairs, (kc + 1) / 2, scaled ? scale : nullptr,
                                      y + (o - o0), ldy, rows, k0 > 0);
    }
  }
}

// The exact packed product. Pair panels pack at half the cost but their tile
// holds fewer rows, so they win where packing weighs most: few activation rows
// (the routed experts' share of a prefill). Measured on AVX2: pairs 1.09-1.12×
// f32 panels at 12 rows, 0.91-0.95× at 128.
constexpr int64_t kPairPanelMaxRows = 32;

template <class V>
void packed_rows(const float* x, int64_t m, int64_t ldx, const LinearWeight& w, int64_t o0, int64_t o1, float* y,
                 int64_t ldy) {
  if (m <= kPairPanelMaxRows && (w.w.dtype == DType::BF16 || w.w.dtype == DType::F8_E4M3))
    packed_rows_pairs_f32<V>(x, m, ldx, w, o0, o1, y, ldy);
  else packed_rows_f32<V>(x, m, ldx, w, o0, o1, y, ldy);
}

}  // namespace moemesh::cpu::detail
