// Sampling on the device: argmax per row, and the temperature / top-k / top-p
// distribution of cpu::sampling_distribution (a stable descending sort keeps
// equal logits in index order, as the CPU's comparator does).
#include <cub/device/device_radix_sort.cuh>
#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_backend.h"

namespace moemesh::cuda {
namespace {

constexpr int kThreads = 1024;

// Larger value wins; on equal values the lower index; index -1 is "none yet".
__device__ __forceinline__ void better(float& v, int32_t& i, float v2, int32_t i2) {
  if (i2 < 0) return;
  if (i < 0 || v2 > v || (v2 == v && i2 < i)) {
    v = v2;
    i = i2;
  }
}

__global__ void argmax_kernel(const float* logits, int64_t n, int32_t* out) {
  const float* row = logits + blockIdx.x * n;
  float v = -INFINITY;
  int32_t idx = -1;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) better(v, idx, row[i], static_cast<int32_t>(i));
  for (int o = 16; o > 0; o >>= 1) {
    const float v2 = __shfl_xor_sync(0xffffffffu, v, o);
    const int32_t i2 = __shfl_xor_sync(0xffffffffu, idx, o);
    better(v, idx, v2, i2);
  }
  __shared__ float wv[32];
  __shared__ int32_t wi[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) {
    wv[warp] = v;
    wi[warp] = idx;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < static_cast<int>(blockDim.x >> 5); ++w) better(v, idx, wv[w], wi[w]);
    out[blockIdx.x] = idx < 0 ? 0 : idx;
  }
}

__global__ void iota_kernel(int32_t* v, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    v[i] = static_cast<int32_t>(i);
}

__global__ void zero_kernel(float* v, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    v[i] = 0.0f;
}

// One block over the sorted logits: exponentials of the kept prefix (in double,
// as the CPU), the top-p cut, then the normalised probabilities scattered back.
__global__ void distribution_kernel(const float* sorted, const int32_t* order, int64_t keep, float inv_t,
                                    float top_p, double* e, float* probs) {
  using Reduce = cub::BlockReduce<double, kThreads>;
  using Scan = cub::BlockScan<double, kThreads>;
  __shared__ typename Reduce::TempStorage reduce_tmp;
  __shared__ typename Scan::TempStorage scan_tmp;
  __shared__ double total;
  __shared__ int64_t cut;
  const float mx = sorted[0] * inv_t;
  double part = 0.0;
  for (int64_t i = threadIdx.x; i < keep; i += blockDim.x) {
    e[i] = exp(static_cast<double>(sorted[i] * inv_t - mx));
    part += e[i];
  }
  double sum = Reduce(reduce_tmp).Sum(part);
  if (threadIdx.x == 0) {
    total = sum;
    cut = keep;
  }
  __syncthreads();
  sum = total;
  if (top_p < 1.0f) {
    // Smallest prefix whose mass reaches top_p, scanned a block-width chunk at a time.
    double carry = 0.0;
    for (int64_t base = 0; base < keep; base += blockDim.x) {
      const int64_t i = base + threadIdx.x;
      const double q = i < keep ? e[i] / sum : 0.0;
      double acc, chunk;
      Scan(scan_tmp).InclusiveSum(q, acc, chunk);
      acc += carry;
      // The first position reaching top_p cuts (the smallest claim wins).
      if (i < keep && acc >= top_p)
        atomicMin(reinterpret_cast<unsigned long long*>(&cut), static_cast<unsigned long long>(i + 1));
      carry += chunk;
      __syncthreads();
    }
    part = 0.0;
    for (int64_t i = threadIdx.x; i < cut; i += blockDim.x) part += e[i];
    __syncthreads();
    sum = Reduce(reduce_tmp).Sum(part);
    if (threadIdx.x == 0) total = sum;
    __syncthreads();
    sum = total;
  }
  for (int64_t i = threadIdx.x; i < cut; i += blockDim.x) probs[order[i]] = static_cast<float>(e[i] / sum);
}

}  // namespace

void argmax(const float* logits, int64_t rows, int64_t n, int32_t* out, Stream s) {
  if (rows <= 0) return;
  argmax_kernel<<<static_cast<unsigned>(rows), kThreads, 0, detail::stream(s)>>>(logits, n, out);
  MOEMESH_CUDA_LAUNCHED();
}

void sampling_distribution(const float* logits, int64_t n, float temperature, int64_t top_k, float top_p,
                           float* probs, Stream s) {
  if (n <= 0) return;
  cudaStream_t st = detail::stream(s);
  const unsigned blocks = detail::blocks_for(n, 256) < 4096u ? detail::blocks_for(n, 256) : 4096u;
  zero_kernel<<<blocks, 256, 0, st>>>(probs, n);
  MOEMESH_CUDA_LAUNCHED();
  if (temperature <= 0.0f) {  // greedy: all mass on the argmax
    DeviceBuffer idx(4);
    argmax(logits, 1, n, idx.as<int32_t>(), s);
    int32_t i = 0;
    MOEMESH_CUDA_CHECK(cudaMemcpyAsync(&i, idx.data(), 4, cudaMemcpyDeviceToHost, st));
    MOEMESH_CUDA_CHECK(cudaStreamSynchronize(st));
    const float one = 1.0f;
    MOEMESH_CUDA_CHECK(cudaMemcpyAsync(probs + i, &one, 4, cudaMemcpyHostToDevice, st));
    MOEMESH_CUDA_CHECK(cudaStreamSynchronize(st));
    return;
  }
  const int items = static_cast<int>(n);
  DeviceBuffer ids(n * 4), sorted(n * 4), order(n * 4), e(n * 8);
  iota_kernel<<<blocks, 256, 0, st>>>(ids.as<int32_t>(), n);
  MOEMESH_CUDA_LAUNCHED();
  size_t tmp_bytes = 0;
  MOEMESH_CUDA_CHECK(cub::DeviceRadixSort::SortPairsDescending(nullptr, tmp_bytes, logits, sorted.as<float>(),
                                                               ids.as<int32_t>(), order.as<int32_t>(), items, 0,
                                                               32, st));
  DeviceBuffer tmp(tmp_bytes);
  MOEMESH_CUDA_CHECK(cub::DeviceRadixSort::SortPairsDescending(tmp.data(), tmp_bytes, logits, sorted.as<float>(),
                                                               ids.as<int32_t>(), order.as<int32_t>(), items, 0,
                                                               32, st));
  const int64_t keep = top_k > 0 && top_k < n ? top_k : n;
  distribution_kernel<<<1, kThreads, 0, st>>>(sorted.as<float>(), order.as<int32_t>(), keep, 1.0f / temperature,
                                              top_p, e.as<double>(), probs);
  MOEMESH_CUDA_LAUNCHED();
  MOEMESH_CUDA_CHECK(cudaStreamSynchronize(st));  // the workspaces are freed on return
}

}  // namespace moemesh::cuda
