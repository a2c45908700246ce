// 512-bit versions of simd/avx2.h's primitives (AVX-512 F/BW/VL/DQ, and BF16 for
// the real vdpbf16ps). Included only by translation units compiled for AVX-512.
#pragma once

#include <immintrin.h>

#include "kernels/cpu/simd/avx2.h"

namespace moemesh::cpu::simd {

struct Avx512 {
  using F = __m512;
  static constexpr int kLanes = 16;
  static constexpr int kGemmRows = 12;  // 24 accumulators of 32
  // Rows of the pair-panel tile, which needs 7 more registers for the split pairs.
  static constexpr int kPairRows = 10;

  static F zero() { return _mm512_setzero_ps(); }
  static F load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, F v) { _mm512_storeu_ps(p, v); }
  static F set1(float v) { return _mm512_set1_ps(v); }
  static F broadcast(const float* p) { return _mm512_set1_ps(*p); }
  static F add(F a, F b) { return _mm512_add_ps(a, b); }
  static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F fma(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }

  static void bf16_pairs(const void* p, F& even, F& odd) {
    const __m512i d = _mm512_loadu_si512(p);
    even = _mm512_castsi512_ps(_mm512_slli_epi32(d, 16));
    odd = _mm512_castsi512_ps(_mm512_and_si512(d, _mm512_set1_epi32(static_cast<int>(0xffff0000u))));
  }
  static void fp8_pairs(const void* p, F& even, F& odd) {
    const __m512i w = _mm512_cvtepi8_epi16(_mm256_loadu_si256(static_cast<const __m256i*>(p)));
    const __m512i d = _mm512_and_si512(_mm512_slli_epi16(w, 4), _mm512_set1_epi16(static_cast<short>(0x87f0)));
    even = _mm512_castsi512_ps(_mm512_slli_epi32(d, 16));
    odd = _mm512_castsi512_ps(_mm512_and_si512(d, _mm512_set1_epi32(static_cast<int>(0xffff0000u))));
  }
  static F f16s(const void* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(static_cast<const __m256i*>(p))); }
  static F f32s(const void* p) { return _mm512_loadu_ps(p); }

#if defined(__AVX512BF16__)
  static F dot_bf16_pairs(F acc, F a, F b) {
    return _mm512_dpbf16_ps(acc, (__m512bh)_mm512_castps_si512(a), (__m512bh)_mm512_castps_si512(b));
  }
#endif
  static F broadcast_u32(const uint32_t* p) { return _mm512_castsi512_ps(_mm512_set1_epi32(static_cast<int>(*p))); }
  static F load_u32(const uint32_t* p) { return _mm512_loadu_ps(p); }
  static F top_mask() { return _mm512_castsi512_ps(_mm512_set1_epi32(static_cast<int>(0xffff0000u))); }
  static void split_pairs(F v, F top, F& lo, F& hi) {
    lo = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_castps_si512(v), 16));
    hi = _mm512_and_ps(v, top);
  }

  static __m256 fold(F v) {
    return _mm256_add_ps(_mm512_castps512_ps256(v),
                         _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
  }
  static float hsum(F v) { return Avx2::hsum(fold(v)); }
  static void hsum8(const F* a, float* out) {
    const __m256 f[8] = {fold(a[0]), fold(a[1]), fold(a[2]), fold(a[3]),
                         fold(a[4]), fold(a[5]), fold(a[6]), fold(a[7])};
    Avx2::hsum8(f, out);
  }
  static void hsum4(const F* a, float* out) {
    const __m256 f[4] = {fold(a[0]), fold(a[1]), fold(a[2]), fold(a[3])};
    Avx2::hsum4(f, out);
  }
};

}  // namespace moemesh::cpu::simd
