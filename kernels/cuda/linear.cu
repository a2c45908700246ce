// Linear layers: cuBLAS for unscaled bf16/f32 weights, an own tiled kernel for
// fp8-e4m3 with 128×128 block scales (and f16), converting weight tiles into
// shared memory so the weights are read once in their stored width.
#include <cublas_v2.h>

#include <string>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/weight_decode.cuh"

namespace moemesh::cuda {
namespace {

#define MOEMESH_CUBLAS_CHECK(call)                                                                     \
  do {                                                                                                 \
    const cublasStatus_t st_ = (call);                                                                 \
    if (st_ != CUBLAS_STATUS_SUCCESS)                                                                  \
      ::moemesh::cuda::detail::fail(#call, cublasGetStatusString(st_), __FILE__, __LINE__);            \
  } while (0)

// One handle per thread, never destroyed: destroying it at exit can run after
// the driver has shut down. Its workspace is ours, so nothing is allocated
// while a CUDA graph captures (32 MiB, the size suggested for Hopper).
cublasHandle_t cublas() {
  thread_local cublasHandle_t h = [] {
    cublasHandle_t x;
    MOEMESH_CUBLAS_CHECK(cublasCreate(&x));
    constexpr size_t kWorkspace = size_t{32} << 20;
    void* ws = nullptr;
    MOEMESH_CUDA_CHECK(cudaMalloc(&ws, kWorkspace));
    MOEMESH_CUBLAS_CHECK(cublasSetWorkspace(x, ws, kWorkspace));
    return x;
  }();
  return h;
}

// Tile sizes of the tiled kernel: 32 rows × 32 outputs, 32-wide k steps, so a
// k step never crosses a 128-wide scale block.
constexpr int kTile = 32;
constexpr int kRowsPerThread = 4;  // 32×8 threads, each 4 rows of one output

__global__ void linear_tiled_kernel(const float* x, int64_t m, int64_t ldx, DeviceWeight w, float* y, int64_t ldy) {
  __shared__ float xs[kTile][kTile + 1];
  __shared__ float ws[kTile][kTile + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * kTile, m0 = static_cast<int64_t>(blockIdx.y) * kTile;
  const int64_t K = w.in, N = w.out;
  float acc[kRowsPerThread] = {};
  for (int64_t k0 = 0; k0 < K; k0 += kTile) {
    for (int r = ty; r < kTile; r += blockDim.y) {
      const int64_t row = m0 + r, o = n0 + r, k = k0 + tx;
      xs[r][tx] = row < m && k < K ? x[row * ldx + k] : 0.0f;
      ws[r][tx] = o < N && k < K ? detail::weight_at(w, o, k) : 0.0f;
    }
    __syncthreads();
    for (int kk = 0; kk < kTile; ++kk) {
      const float b = ws[tx][kk];
      for (int i = 0; i < kRowsPerThread; ++i) acc[i] += xs[ty + i * 8][kk] * b;
    }
    __syncthreads();
  }
  const int64_t o = n0 + tx;
  for (int i = 0; i < kRowsPerThread; ++i) {
    const int64_t row = m0 + ty + i * 8;
    if (row < m && o < N) y[row * ldy + o] = acc[i];
  }
}

__global__ void to_bf16_kernel(const float* x, int64_t m, int64_t ldx, int64_t K, uint16_t* out) {
  const int64_t n = m * K;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[i] = detail::f32_to_bf16(x[(i / K) * ldx + i % K]);
}

bool use_cublas(const DeviceWeight& w) {
  return !w.scale_inv && (w.dtype == DType::BF16 || w.dtype == DType::F32);
}

void check_weight(const DeviceWeight& w) {
  if (w.dtype != DType::F32 && w.dtype != DType::BF16 && w.dtype != DType::F16 && w.dtype != DType::F8_E4M3)
    throw Error("cuda::linear: unsupported weight dtype " + std::string(dtype_name(w.dtype)));
}

// y = x·Wᵀ row-major is yᵀ = W·xᵀ column-major: W is a K×N column-major matrix, transposed.
void cublas_linear(const float* x, int64_t m, int64_t ldx, const DeviceWeight& w, float* y, int64_t ldy,
                   Stream s) {
  cublasHandle_t h = cublas();
  MOEMESH_CUBLAS_CHECK(cublasSetStream(h, detail::stream(s)));
  const float one = 1.0f, zero = 0.0f;
  const int N = static_cast<int>(w.out), K = static_cast<int>(w.in), M = static_cast<int>(m);
  if (w.dtype == DType::F32) {
    MOEMESH_CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &one, static_cast<const float*>(w.data), K,
                                     x, static_cast<int>(ldx), &zero, y, static_cast<int>(ldy)));
    return;
  }
  thread_local DeviceBuffer xb;  // bf16 activations, reused
  xb.reserve(static_cast<size_t>(m * K) * 2);
  const unsigned blocks = detail::blocks_for(m * K, 256) < 65535u ? detail::blocks_for(m * K, 256) : 65535u;
  to_bf16_kernel<<<blocks, 256, 0, detail::stream(s)>>>(x, m, ldx, K, xb.as<uint16_t>());
  MOEMESH_CUDA_LAUNCHED();
  MOEMESH_CUBLAS_CHECK(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &one, w.data, CUDA_R_16BF, K, xb.data(),
                                    CUDA_R_16BF, K, &zero, y, CUDA_R_32F, static_cast<int>(ldy), CUBLAS_COMPUTE_32F,
                                    CUBLAS_GEMM_DEFAULT));
}

}  // namespace

DeviceLinear::DeviceLinear(const LinearWeight& w) {
  data_ = DeviceBuffer(w.w.nbytes());
  data_.upload(w.w.data, w.w.nbytes());
  view_ = {w.w.dtype, w.out(), w.in(), data_.data(), nullptr, 0};
  if (w.scale_inv) {
    const int64_t rows = (w.out() + LinearWeight::kBlock - 1) / LinearWeight::kBlock;
    scales_ = DeviceBuffer(static_cast<size_t>(rows * w.scale_cols) * 4);
    scales_.upload(w.scale_inv, scales_.bytes());
    view_.scale_inv = scales_.as<float>();
    view_.scale_cols = w.scale_cols;
  }
  check_weight(view_);
}

void linear_tiled(const float* x, int64_t m, int64_t ldx, const DeviceWeight& w, float* y, int64_t ldy, Stream s) {
  check_weight(w);
  if (m <= 0 || w.out <= 0) return;
  const dim3 grid(detail::blocks_for(w.out, kTile), detail::blocks_for(m, kTile));
  linear_tiled_kernel<<<grid, dim3(kTile, kTile / kRowsPerThread), 0, detail::stream(s)>>>(x, m, ldx, w, y, ldy);
  MOEMESH_CUDA_LAUNCHED();
}

void linear(const float* x, int64_t m, int64_t ldx, const DeviceWeight& w, float* y, int64_t ldy, Stream s) {
  check_weight(w);
  if (m <= 0 || w.out <= 0) return;
  if (use_cublas(w)) cublas_linear(x, m, ldx, w, y, ldy, s);
  else linear_tiled(x, m, ldx, w, y, ldy, s);
}

void grouped_linear(const float* x, int64_t ldx, const std::vector<GemmGroup>& groups, float* y, int64_t ldy,
                    Stream s) {
  // One GEMM per group: each expert's weights are read once for all its rows.
  for (const GemmGroup& g : groups)
    if (g.rows > 0) linear(x + g.row_begin * ldx, g.rows, ldx, *g.w, y + g.row_begin * ldy, ldy, s);
}

}  // namespace moemesh::cuda
