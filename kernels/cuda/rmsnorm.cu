// RMSNorm: one block per row, the sum of squares reduced in the block.
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/block_reduce.cuh"

namespace moemesh::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void rmsnorm_kernel(const float* x, int64_t n, int64_t ldx, const float* w, float eps, float* y,
                               int64_t ldy) {
  const float* xr = x + blockIdx.x * ldx;
  float* yr = y + blockIdx.x * ldy;
  float ss = 0.0f;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) ss += xr[i] * xr[i];
  ss = detail::block_sum(ss);
  const float inv = 1.0f / sqrtf(ss / static_cast<float>(n) + eps);
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) yr[i] = xr[i] * inv * w[i];
}

}  // namespace

void rmsnorm(const float* x, int64_t rows, int64_t n, int64_t ldx, const float* w, float eps, float* y,
             int64_t ldy, Stream s) {
  if (rows <= 0) return;
  rmsnorm_kernel<<<static_cast<unsigned>(rows), kThreads, 0, detail::stream(s)>>>(x, n, ldx, w, eps, y, ldy);
  MOEMESH_CUDA_LAUNCHED();
}

}  // namespace moemesh::cuda
