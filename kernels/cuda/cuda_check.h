// Error checking for CUDA runtime and cuBLAS calls (CUDA sources only).
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "kernels/cuda/device.h"

namespace moemesh::cuda::detail {

[[noreturn]] inline void fail(const char* call, const char* what, const char* file, int line) {
  throw Error(std::string(call) + " failed: " + what + " (" + file + ":" + std::to_string(line) + ")");
}

inline cudaStream_t stream(Stream s) { return static_cast<cudaStream_t>(s); }

// Blocks of `threads` covering n items.
inline unsigned blocks_for(int64_t n, int threads) { return static_cast<unsigned>((n + threads - 1) / threads); }

}  // namespace moemesh::cuda::detail

#define MOEMESH_CUDA_CHECK(call)                                                              \
  do {                                                                                        \
    const cudaError_t err_ = (call);                                                          \
    if (err_ != cudaSuccess)                                                                  \
      ::moemesh::cuda::detail::fail(#call, cudaGetErrorString(err_), __FILE__, __LINE__);     \
  } while (0)

// After a kernel launch: reports bad launch configurations at once.
#define MOEMESH_CUDA_LAUNCHED() MOEMESH_CUDA_CHECK(cudaGetLastError())
