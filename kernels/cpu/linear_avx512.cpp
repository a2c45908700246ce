// AVX-512 variants of the linear() building blocks. Compiled with AVX-512 flags;
// only called after detail::cpu_has_avx512().
#include <immintrin.h>

#include <algorithm>
#include <stdexcept>

#include "kernels/cpu/linear_kernels.h"

namespace moemesh::cpu::detail {
namespace {

inline __mmask16 tail_mask(int64_t n) { return n >= 16 ? 0xffff : static_cast<__mmask16>((1u << n) - 1); }

// 16 fp8-e4m3 values → f32 via f16: shifting the e4m3 bits into an f16 gives the
// value × 2⁻⁸ (subnormals included), so the block scale absorbs the 2⁸.
inline __m512 fp8x16_to_f32_div256(__m128i b) {
  const __m256i w = _mm256_cvtepu8_epi16(b);
  const __m256i mag = _mm256_slli_epi16(_mm256_and_si256(w, _mm256_set1_epi16(0x7f)), 7);
  const __m256i sign = _mm256_slli_epi16(_mm256_and_si256(w, _mm256_set1_epi16(0x80)), 8);
  return _mm512_cvtph_ps(_mm256_or_si256(mag, sign));
}

}  // namespace

void convert_rows_avx512(const LinearWeight& w, int64_t o0, int64_t o1, float* out) {
  const int64_t K = w.in();
  for (int64_t o = o0; o < o1; ++o) {
    float* r = out + (o - o0) * K;
    const size_t base = static_cast<size_t>(o * K);
    switch (w.w.dtype) {
      case DType::F32: {
        const float* p = static_cast<const float*>(w.w.data) + base;
        for (int64_t k = 0; k < K; k += 16) {
          const __mmask16 m = tail_mask(K - k);
          _mm512_mask_storeu_ps(r + k, m, _mm512_maskz_loadu_ps(m, p + k));
        }
        break;
      }
      case DType::BF16: {
        const uint16_t* p = static_cast<const uint16_t*>(w.w.data) + base;
        for (int64_t k = 0; k < K; k += 16) {
          const __mmask16 m = tail_mask(K - k);
          const __m256i h = _mm256_maskz_loadu_epi16(m, p + k);
          const __m512i v = _mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16);
          _mm512_mask_storeu_ps(r + k, m, _mm512_castsi512_ps(v));
        }
        break;
      }
      case DType::F16: {
        const uint16_t* p = static_cast<const uint16_t*>(w.w.data) + base;
        for (int64_t k = 0; k < K; k += 16) {
          const __mmask16 m = tail_mask(K - k);
          _mm512_mask_storeu_ps(r + k, m, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p + k)));
        }
        break;
      }
      case DType::F8_E4M3: {
        const uint8_t* p = static_cast<const uint8_t*>(w.w.data) + base;
        const float* s = w.scale_inv + (o / LinearWeight::kBlock) * w.scale_cols;
        for (int64_t k = 0; k < K; k += 16) {
          const __mmask16 m = tail_mask(K - k);
          const __m512 v = fp8x16_to_f32_div256(_mm_maskz_loadu_epi8(m, p + k));
          // k..k+15 never straddles a 128 block: 16 divides 128.
          const __m512 sc = _mm512_set1_ps(s[k / LinearWeight::kBlock] * 256.0f);
          _mm512_mask_storeu_ps(r + k, m, _mm512_mul_ps(v, sc));
        }
        break;
      }
      default: throw std::invalid_argument("linear: unsupported weight dtype");
    }
    if (w.scale_inv && w.w.dtype != DType::F8_E4M3) {
      const float* s = w.scale_inv + (o / LinearWeight::kBlock) * w.scale_cols;
      for (int64_t k = 0; k < K; ++k) r[k] *= s[k / LinearWeight::kBlock];
    }
  }
}

namespace {
// MR activation rows × NR panel rows, accumulated over K in registers.
template <int MR, int NR>
inline void micro(const float* x, int64_t ldx, const float* panel, int64_t K, float* y, int64_t ldy) {
  __m512 acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    __m512 wv[NR];
    for (int j = 0; j < NR; ++j) wv[j] = _mm512_loadu_ps(panel + j * K + k);
    for (int i = 0; i < MR; ++i) {
      const __m512 xv = _mm512_loadu_ps(x + i * ldx + k);
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_fmadd_ps(xv, wv[j], acc[i][j]);
    }
  }
  if (k < K) {
    const __mmask16 m = tail_mask(K - k);
    __m512 wv[NR];
    for (int j = 0; j < NR; ++j) wv[j] = _mm512_maskz_loadu_ps(m, panel + j * K + k);
    for (int i = 0; i < MR; ++i) {
      const __m512 xv = _mm512_maskz_loadu_ps(m, x + i * ldx + k);
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_fmadd_ps(xv, wv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) y[i * ldy + j] = _mm512_reduce_add_ps(acc[i][j]);
}

template <int MR>
inline void row_strip(const float* x, int64_t ldx, const float* panel, int64_t n, int64_t K, float* y, int64_t ldy) {
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) micro<MR, 4>(x, ldx, panel + j * K, K, y + j, ldy);
  for (; j < n; ++j) micro<MR, 1>(x, ldx, panel + j * K, K, y + j, ldy);
}
}  // namespace

void panel_product_avx512(const float* x, int64_t m, int64_t ldx, const float* panel, int64_t n, int64_t K,
                          float* y, int64_t ldy) {
  int64_t i = 0;
  for (; i + 4 <= m; i += 4) row_strip<4>(x + i * ldx, ldx, panel, n, K, y + i * ldy, ldy);
  for (; i < m; ++i) row_strip<1>(x + i * ldx, ldx, panel, n, K, y + i * ldy, ldy);
}

}  // namespace moemesh::cpu::detail

namespace moemesh::cpu::detail {
namespace {

// Loads 16 weights of row o at column k (masked), converted and scaled to f32.
template <DType T>
inline __m512 load_weights(const LinearWeight& w, int64_t o, int64_t k, __mmask16 m) {
  const size_t at = static_cast<size_t>(o * w.in() + k);
  if constexpr (T == DType::F32) {
    return _mm512_maskz_loadu_ps(m, static_cast<const float*>(w.w.data) + at);
  } else if constexpr (T == DType::BF16) {
    const __m256i h = _mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(w.w.data) + at);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  } else if constexpr (T == DType::F16) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(w.w.data) + at));
  } else {
    const __m512 v = fp8x16_to_f32_div256(_mm_maskz_loadu_epi8(m, static_cast<const uint8_t*>(w.w.data) + at));
    const float s = w.scale_inv[(o / LinearWeight::kBlock) * w.scale_cols + k / LinearWeight::kBlock];
    return _mm512_mul_ps(v, _mm512_set1_ps(s * 256.0f));
  }
}

template <DType T, int MR, int NR>
inline void direct_tile(const float* x, int64_t ldx, const LinearWeight& w, int64_t o, float* y, int64_t ldy) {
  const int64_t K = w.in();
  __m512 acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_ps();
  const char* bytes = static_cast<const char*>(w.w.data);
  constexpr int64_t esize = static_cast<int64_t>(dtype_size(T));
  for (int64_t k = 0; k < K; k += 16) {
    const __mmask16 m = tail_mask(K - k);
    if (((k * esize) & 63) == 0)
      for (int j = 0; j < NR; ++j) _mm_prefetch(bytes + ((o + NR + j) * K + k) * esize, _MM_HINT_T0);
    __m512 wv[NR];
    for (int j = 0; j < NR; ++j) wv[j] = load_weights<T>(w, o + j, k, m);
    for (int i = 0; i < MR; ++i) {
      const __m512 xv = _mm512_maskz_loadu_ps(m, x + i * ldx + k);
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_fmadd_ps(xv, wv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) y[i * ldy + j] = _mm512_reduce_add_ps(acc[i][j]);
}

// fp8 with few activation rows: the block scale multiplies each 128-column partial
// sum instead of every weight, which keeps decode bound by memory, not conversion.
template <int MR, int NR>
inline void direct_tile_fp8(const float* x, int64_t ldx, const LinearWeight& w, int64_t o, float* y, int64_t ldy) {
  const int64_t K = w.in();
  const uint8_t* base = static_cast<const uint8_t*>(w.w.data);
  __m512 acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_ps();
  for (int64_t kb = 0; kb < K; kb += LinearWeight::kBlock) {
    const int64_t ke = std::min(K, kb + LinearWeight::kBlock);
    __m512 part[MR][NR];
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) part[i][j] = _mm512_setzero_ps();
    for (int64_t k = kb; k < ke; k += 16) {
      const __mmask16 m = tail_mask(ke - k);
      // The next rows' bytes, one tile ahead: short rows defeat the hardware prefetcher.
      if ((k & 63) == 0)
        for (int j = 0; j < NR; ++j) _mm_prefetch(reinterpret_cast<const char*>(base + (o + NR + j) * K + k), _MM_HINT_T0);
      __m512 wv[NR];
      for (int j = 0; j < NR; ++j) wv[j] = fp8x16_to_f32_div256(_mm_maskz_loadu_epi8(m, base + (o + j) * K + k));
      for (int i = 0; i < MR; ++i) {
        const __m512 xv = _mm512_maskz_loadu_ps(m, x + i * ldx + k);
        for (int j = 0; j < NR; ++j) part[i][j] = _mm512_fmadd_ps(xv, wv[j], part[i][j]);
      }
    }
    for (int j = 0; j < NR; ++j) {
      const float sc = w.scale_inv[((o + j) / LinearWeight::kBlock) * w.scale_cols + kb / LinearWeight::kBlock];
      const __m512 sv = _mm512_set1_ps(sc * 256.0f);
      for (int i = 0; i < MR; ++i) acc[i][j] = _mm512_fmadd_ps(part[i][j], sv, acc[i][j]);
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) y[i * ldy + j] = _mm512_reduce_add_ps(acc[i][j]);
}

template <DType T, int MR>
void direct_rows(const float* x, int64_t ldx, const LinearWeight& w, int64_t o0, int64_t o1, float* y, int64_t ldy) {
  int64_t o = o0;
  if constexpr (T == DType::F8_E4M3 && MR <= 2) {
    for (; o + 4 <= o1; o += 4) direct_tile_fp8<MR, 4>(x, ldx, w, o, y + (o - o0), ldy);
    for (; o < o1; ++o) direct_tile_fp8<MR, 1>(x, ldx, w, o, y + (o - o0), ldy);
    return;
  }
  for (; o + 4 <= o1; o += 4) direct_tile<T, MR, 4>(x, ldx, w, o, y + (o - o0), ldy);
  for (; o < o1; ++o) direct_tile<T, MR, 1>(x, ldx, w, o, y + (o - o0), ldy);
}

template <DType T>
void direct_dispatch_m(const float* x, int64_t m, int64_t ldx, const LinearWeight& w, int64_t o0, int64_t o1, float* y,
                       int64_t ldy) {
  switch (m) {
    case 1: direct_rows<T, 1>(x, ldx, w, o0, o1, y, ldy); break;
    case 2: direct_rows<T, 2>(x, ldx, w, o0, o1, y, ldy); break;
    case 3: direct_rows<T, 3>(x, ldx, w, o0, o1, y, ldy); break;
    case 4: direct_rows<T, 4>(x, ldx, w, o0, o1, y, ldy); break;
    default: throw std::invalid_argument("direct_product_avx512: at most 4 rows");
  }
}

}  // namespace

void direct_product_avx512(const float* x, int64_t m, int64_t ldx, const LinearWeight& w, int64_t o0, int64_t o1,
                           float* y, int64_t ldy) {
  switch (w.w.dtype) {
    case DType::F32: direct_dispatch_m<DType::F32>(x, m, ldx, w, o0, o1, y, ldy); break;
    case DType::BF16: direct_dispatch_m<DType::BF16>(x, m, ldx, w, o0, o1, y, ldy); break;
    case DType::F16: direct_dispatch_m<DType::F16>(x, m, ldx, w, o0, o1, y, ldy); break;
    case DType::F8_E4M3:
      if (!w.scale_inv) throw std::invalid_argument("linear: fp8 weight without block scales");
      direct_dispatch_m<DType::F8_E4M3>(x, m, ldx, w, o0, o1, y, ldy);
      break;
    default: throw std::invalid_argument("linear: unsupported weight dtype");
  }
}

}  // namespace moemesh::cpu::detail
