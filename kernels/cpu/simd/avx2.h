// 256-bit vector primitives the linear kernels are written in (AVX2 + FMA + F16C).
// Included only by translation units compiled for AVX2; simd/avx512.h has the
// same primitives on 512 bits, so every kernel template runs on either.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace moemesh::cpu::simd {

struct Avx2 {
  using F = __m256;
  static constexpr int kLanes = 8;
  static constexpr int kGemmRows = 6;  // rows of a packed-GEMM register tile (12 accumulators)
  // Rows of the pair-panel tile, which needs 7 more registers for the split pairs.
  static constexpr int kPairRows = 4;

  static F zero() { return _mm256_setzero_ps(); }
  static F load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, F v) { _mm256_storeu_ps(p, v); }
  static F set1(float v) { return _mm256_set1_ps(v); }
  static F broadcast(const float* p) { return _mm256_broadcast_ss(p); }
  static F add(F a, F b) { return _mm256_add_ps(a, b); }
  static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F fma(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }

  // 2L bf16 → the even-indexed and the odd-indexed weights as f32, exactly.
  static void bf16_pairs(const void* p, F& even, F& odd) {
    const __m256i d = _mm256_loadu_si256(static_cast<const __m256i*>(p));
    even = _mm256_castsi256_ps(_mm256_slli_epi32(d, 16));
    odd = _mm256_castsi256_ps(_mm256_and_si256(d, _mm256_set1_epi32(static_cast<int>(0xffff0000u))));
  }
  // 2L fp8-e4m3 bytes → the even- and odd-indexed weights as f32 holding value ×
  // 2⁻¹²⁰, exactly (subnormals included): sign-extended to 16 bits and shifted by 4,
  // a byte is its bf16 bits but for copies of the sign in the exponent's top bits,
  // which the mask clears.
  static void fp8_pairs(const void* p, F& even, F& odd) {
    const __m256i w = _mm256_cvtepi8_epi16(_mm_loadu_si128(static_cast<const __m128i*>(p)));
    const __m256i d = _mm256_and_si256(_mm256_slli_epi16(w, 4), _mm256_set1_epi16(static_cast<short>(0x87f0)));
    even = _mm256_castsi256_ps(_mm256_slli_epi32(d, 16));
    odd = _mm256_castsi256_ps(_mm256_and_si256(d, _mm256_set1_epi32(static_cast<int>(0xffff0000u))));
  }
  static F f16s(const void* p) { return _mm256_cvtph_ps(_mm_loadu_si128(static_cast<const __m128i*>(p))); }
  static F f32s(const void* p) { return _mm256_loadu_ps(static_cast<const float*>(p)); }

  // Emulated bf16 pair dot product (vdpbf16ps semantics: odd pair member first),
  // so the bf16-dot GEMM's packing and tiling run on AVX2 too.
  static F dot_bf16_pairs(F acc, F a, F b) {
    const __m256i ai = _mm256_castps_si256(a), bi = _mm256_castps_si256(b);
    const __m256i top = _mm256_set1_epi32(static_cast<int>(0xffff0000u));
    acc = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_and_si256(ai, top)),
                          _mm256_castsi256_ps(_mm256_and_si256(bi, top)), acc);
    return _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(ai, 16)),
                           _mm256_castsi256_ps(_mm256_slli_epi32(bi, 16)), acc);
  }
  static F broadcast_u32(const uint32_t* p) {
    return _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int>(*p)));
  }
  static F load_u32(const uint32_t* p) { return _mm256_loadu_ps(reinterpret_cast<const float*>(p)); }
  // The low and the high bf16 of each 32-bit pair as f32.
  static F top_mask() { return _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int>(0xffff0000u))); }
  static void split_pairs(F v, F top, F& lo, F& hi) {
    lo = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(v), 16));
    hi = _mm256_and_ps(v, top);
  }

  static float hsum(F v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  // out[j] = Σ lanes of a[j], j < 8.
  static void hsum8(const F* a, float* out) {
    const __m256 t0 = _mm256_hadd_ps(a[0], a[1]), t1 = _mm256_hadd_ps(a[2], a[3]);
    const __m256 t2 = _mm256_hadd_ps(a[4], a[5]), t3 = _mm256_hadd_ps(a[6], a[7]);
    const __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
    _mm256_storeu_ps(out, _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31)));
  }
  // out[j] = Σ lanes of a[j], j < 4.
  static void hsum4(const F* a, float* out) {
    const __m256 u = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
    _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(u), _mm256_extractf128_ps(u, 1)));
  }
};

}  // namespace moemesh::cpu::simd
