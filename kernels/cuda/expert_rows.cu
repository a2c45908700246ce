// Moving token rows to and from the per-expert order of the grouped GEMM.
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_backend.h"

namespace moemesh::cuda {
namespace {

__global__ void gather_kernel(const float* x, int64_t cols, const int32_t* src, float* xg) {
  const float* from = x + static_cast<int64_t>(src[blockIdx.x]) * cols;
  float* to = xg + static_cast<int64_t>(blockIdx.x) * cols;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) to[c] = from[c];
}

// Each token's rows are summed in the order given (ascending expert, as the CPU does).
__global__ void combine_kernel(const float* y, int64_t cols, const int32_t* offsets, const int32_t* token_rows,
                               const float* row_weight, float* out) {
  const int64_t t = blockIdx.x;
  const int32_t r0 = offsets[t], r1 = offsets[t + 1];
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    float acc = 0.0f;
    for (int32_t i = r0; i < r1; ++i) {
      const int32_t r = token_rows[i];
      acc += row_weight[r] * y[static_cast<int64_t>(r) * cols + c];
    }
    out[t * cols + c] = acc;
  }
}

}  // namespace

void gather_rows(const float* x, int64_t cols, const int32_t* src, int64_t rows, float* xg, Stream s) {
  if (rows <= 0) return;
  gather_kernel<<<static_cast<unsigned>(rows), 256, 0, detail::stream(s)>>>(x, cols, src, xg);
  MOEMESH_CUDA_LAUNCHED();
}

void combine_rows(const float* y, int64_t cols, const int32_t* offsets, const int32_t* token_rows,
                  const float* row_weight, int64_t tokens, float* out, Stream s) {
  if (tokens <= 0) return;
  combine_kernel<<<static_cast<unsigned>(tokens), 256, 0, detail::stream(s)>>>(y, cols, offsets, token_rows,
                                                                              row_weight, out);
  MOEMESH_CUDA_LAUNCHED();
}

}  // namespace moemesh::cuda
