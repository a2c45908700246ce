// The bandwidth probe's AVX-512 read loop (compiled for AVX-512).
#include <immintrin.h>

#include "kernels/cpu/read_bandwidth.h"

namespace moemesh::cpu::detail {

float stream_sum_avx512(const void* p, size_t bytes) {
  const float* f = static_cast<const float*>(p);
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i < bytes / 4; i += 64) {
    a0 = _mm512_add_ps(a0, _mm512_load_ps(f + i));
    a1 = _mm512_add_ps(a1, _mm512_load_ps(f + i + 16));
    a2 = _mm512_add_ps(a2, _mm512_load_ps(f + i + 32));
    a3 = _mm512_add_ps(a3, _mm512_load_ps(f + i + 48));
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

}  // namespace moemesh::cpu::detail
