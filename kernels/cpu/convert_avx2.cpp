// AVX2 conversions (compiled for AVX2 + F16C).
#include <immintrin.h>

#include "core/dtype.h"
#include "kernels/cpu/convert.h"

namespace moemesh::cpu::detail {

void dequantize_fp8_avx2(const uint8_t* src, int64_t n, float scale, float* dst) {
  // Shifted into an f16, an e4m3 value reads as value × 2⁻⁸ (subnormals too).
  const __m256 s = _mm256_set1_ps(scale * 256.0f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i b = _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(src + i)));
    const __m128i mag = _mm_slli_epi16(_mm_and_si128(b, _mm_set1_epi16(0x7f)), 7);
    const __m128i sign = _mm_slli_epi16(_mm_and_si128(b, _mm_set1_epi16(0x80)), 8);
    _mm256_storeu_ps(dst + i, _mm256_mul_ps(_mm256_cvtph_ps(_mm_or_si128(mag, sign)), s));
  }
  for (; i < n; ++i) dst[i] = fp8e4m3_to_f32(src[i]) * scale;
}

}  // namespace moemesh::cpu::detail
