// Absorbed MLA decode attention over the paged latent cache (DeepSeek-V3
// shapes): GB/s of latent cache read per decode step.
// Usage: bench_gpu_mla [batch=32] [heads=128] [page_tokens=64]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <random>
#include <vector>

#include "bench/gpu/bench_timer.h"
#include "kernels/cuda/cuda_backend.h"

using namespace moemesh;

int main(int argc, char** argv) {
  if (cuda::device_count() == 0) {
    std::fprintf(stderr, "bench_gpu_mla: no CUDA device visible\n");
    return 1;
  }
  const int64_t B = argc > 1 ? std::atoll(argv[1]) : 32, H = argc > 2 ? std::atoll(argv[2]) : 128;
  const int64_t page_tokens = argc > 3 ? std::atoll(argv[3]) : 64;
  const cuda::MlaShape m{.heads = H, .nope = 128, .rope = 64, .v = 128, .lora = 512};
  const int64_t dim = m.lora + m.rope;
  std::printf("MLA absorbed decode: batch %lld, %lld heads, latent %lld + rope %lld, pages of %lld tokens\n",
              static_cast<long long>(B), static_cast<long long>(H), static_cast<long long>(m.lora),
              static_cast<long long>(m.rope), static_cast<long long>(page_tokens));
  std::printf("%8s %12s %12s\n", "context", "us/step", "cache GB/s");
  for (int64_t L : {1024, 4096, 16384}) {
    const int64_t pages_per_seq = (L + page_tokens - 1) / page_tokens, pages = B * pages_per_seq;
    cuda::DeviceBuffer cache(static_cast<size_t>(pages * page_tokens * dim) * 2);
    cache.zero();
    std::vector<int32_t> table(pages);
    std::iota(table.begin(), table.end(), 0);
    std::shuffle(table.begin(), table.end(), std::mt19937(1));  // scattered pages, as in serving
    std::vector<int32_t> lengths(B, static_cast<int32_t>(L));
    auto dtable = cuda::DeviceBuffer::from(table), dlen = cuda::DeviceBuffer::from(lengths);
    cuda::DeviceBuffer q(static_cast<size_t>(B * H * m.qk()) * 4), q_lat(static_cast<size_t>(B * H * m.lora) * 4),
        o_lat(q_lat.bytes());
    q.zero();
    q_lat.zero();
    const cuda::LatentCacheView view{cache.as<uint16_t>(), 1, page_tokens, dim};
    const double t = bench::seconds_per_run([&] {
      cuda::mla_attend_latent(q_lat.as<float>(), q.as<float>(), B, m, view, 0, dtable.as<int32_t>(), pages_per_seq,
                              dlen.as<int32_t>(), 0.1f, o_lat.as<float>());
    });
    const double bytes = static_cast<double>(B * L * dim * 2);
    std::printf("%8lld %12.1f %12.1f\n", static_cast<long long>(L), t * 1e6, bytes / t / 1e9);
  }
  std::printf("(bytes = batch·context·(lora+rope)·2, each sequence's cache read once per step; every head\n"
              " block reads it again, so this is the rate the heads share through L2)\n");
  return 0;
}
