// Fused SwiGLU activation: silu(gate) · up in one pass over memory.
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_backend.h"

namespace moemesh::cuda {
namespace {

__global__ void silu_mul_kernel(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float g = gate[i];
    out[i] = g / (1.0f + expf(-g)) * up[i];
  }
}

}  // namespace

void silu_mul(const float* gate, const float* up, int64_t n, float* out, Stream s) {
  if (n <= 0) return;
  const unsigned blocks = detail::blocks_for(n, 256) < 65535u ? detail::blocks_for(n, 256) : 65535u;
  silu_mul_kernel<<<blocks, 256, 0, detail::stream(s)>>>(gate, up, n, out);
  MOEMESH_CUDA_LAUNCHED();
}

}  // namespace moemesh::cuda
