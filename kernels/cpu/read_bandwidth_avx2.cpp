// The bandwidth probe's AVX2 read loop (compiled for AVX2).
#include <immintrin.h>

#include "kernels/cpu/read_bandwidth.h"

namespace moemesh::cpu::detail {

float stream_sum_avx2(const void* p, size_t bytes) {
  const float* f = static_cast<const float*>(p);
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i < bytes / 4; i += 64) {
    a0 = _mm256_add_ps(a0, _mm256_add_ps(_mm256_load_ps(f + i), _mm256_load_ps(f + i + 8)));
    a1 = _mm256_add_ps(a1, _mm256_add_ps(_mm256_load_ps(f + i + 16), _mm256_load_ps(f + i + 24)));
    a2 = _mm256_add_ps(a2, _mm256_add_ps(_mm256_load_ps(f + i + 32), _mm256_load_ps(f + i + 40)));
    a3 = _mm256_add_ps(a3, _mm256_add_ps(_mm256_load_ps(f + i + 48), _mm256_load_ps(f + i + 56)));
  }
  float t[8];
  _mm256_storeu_ps(t, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}

}  // namespace moemesh::cpu::detail
