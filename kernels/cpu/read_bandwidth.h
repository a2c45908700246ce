// The read-bandwidth probe decode speed is compared against: `threads` threads
// stream disjoint parts of a 1 GiB buffer with the widest vector loads the CPU
// has (AVX-512, else AVX2, else 64-bit words), summing what they read; best of
// `repeats`. Bytes per second.
#pragma once

#include <cstddef>

namespace moemesh::cpu {

double measure_read_bandwidth(int threads, int repeats = 3, size_t bytes = size_t{1} << 30);

namespace detail {
// Σ of the floats in [p, p + bytes), bytes a multiple of 256, p 64-byte aligned.
float stream_sum_avx2(const void* p, size_t bytes);
float stream_sum_avx512(const void* p, size_t bytes);
}  // namespace detail

}  // namespace moemesh::cpu
