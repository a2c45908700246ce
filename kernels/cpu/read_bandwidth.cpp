#include "kernels/cpu/read_bandwidth.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

#include "kernels/cpu/cpu_features.h"

namespace moemesh::cpu {
namespace {

float stream_sum_words(const void* p, size_t bytes) {
  const uint64_t* w = static_cast<const uint64_t*>(p);
  uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  for (size_t i = 0; i + 4 <= bytes / 8; i += 4) {
    s0 += w[i];
    s1 += w[i + 1];
    s2 += w[i + 2];
    s3 += w[i + 3];
  }
  return static_cast<float>(s0 + s1 + s2 + s3);
}

}  // namespace

double measure_read_bandwidth(int threads, int repeats, size_t bytes) {
  threads = std::max(1, threads);
  const size_t part = bytes / threads / 256 * 256;
  std::unique_ptr<void, decltype(&std::free)> buf(std::aligned_alloc(64, part * threads), &std::free);
  if (!buf) throw std::runtime_error("read bandwidth probe: cannot allocate the buffer");
  std::memset(buf.get(), 1, part * threads);  // touched, so the probe measures reads, not page faults
  auto sum = kernel_isa() == KernelIsa::Avx512 ? detail::stream_sum_avx512
             : kernel_isa() == KernelIsa::Avx2 ? detail::stream_sum_avx2
                                               : stream_sum_words;
  double best = 0;
  std::vector<float> sink(threads);
  for (int r = 0; r < std::max(1, repeats); ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t)
      ts.emplace_back([&, t] { sink[t] = sum(static_cast<const char*>(buf.get()) + part * t, part); });
    for (auto& t : ts) t.join();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, static_cast<double>(part * threads) / s);
  }
  volatile float keep = sink[0];
  (void)keep;
  return best;
}

}  // namespace moemesh::cpu
