// RoPE over interleaved pairs, one thread per (token, head, pair), angles in
// f32 with full-precision sinf/cosf like cpu::Rope::apply.
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_backend.h"

namespace moemesh::cuda {
namespace {

__global__ void rope_kernel(float* x, int64_t tokens, int64_t token_stride, int64_t heads, int64_t head_stride,
                            int64_t half, const int32_t* pos, const float* inv_freq) {
  const int64_t n = tokens * heads * half;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < n;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = idx % half, h = (idx / half) % heads, t = idx / (half * heads);
    const float angle = static_cast<float>(pos[t]) * inv_freq[i];
    const float c = cosf(angle), s = sinf(angle);
    float* v = x + t * token_stride + h * head_stride + 2 * i;
    const float a = v[0], b = v[1];
    v[0] = a * c - b * s;
    v[1] = a * s + b * c;
  }
}

}  // namespace

void rope(float* x, int64_t tokens, int64_t token_stride, int64_t heads, int64_t head_stride, int64_t dim,
          const int32_t* pos, const float* inv_freq, Stream s) {
  const int64_t n = tokens * heads * (dim / 2);
  if (n <= 0) return;
  const unsigned blocks = detail::blocks_for(n, 256) < 65535u ? detail::blocks_for(n, 256) : 65535u;
  rope_kernel<<<blocks, 256, 0, detail::stream(s)>>>(x, tokens, token_stride, heads, head_stride, dim / 2, pos,
                                                     inv_freq);
  MOEMESH_CUDA_LAUNCHED();
}

}  // namespace moemesh::cuda
