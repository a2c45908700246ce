// linear() at DeepSeek-V3 shapes: weight bytes/s (decode is bound by them) and
// FLOP/s (prefill), plus the machine's read bandwidth to compare against.
#include <benchmark/benchmark.h>

#include <atomic>
#include <random>
#include <vector>

#include "kernels/cpu/linear.h"
#include "kernels/cpu/thread_pool.h"

using namespace moemesh;

namespace {

struct Weight {
  std::vector<uint8_t> data;
  std::vector<float> scales;
  LinearWeight lw;
  Weight(bool fp8, int64_t out, int64_t in) {
    std::mt19937 rng(1);
    data.resize(out * in * (fp8 ? 1 : 2));
    for (auto& b : data) b = static_cast<uint8_t>(rng() & 0x77);  // finite values for either type
    lw.w = {fp8 ? DType::F8_E4M3 : DType::BF16, {out, in}, data.data()};
    if (fp8) {
      scales.assign(((out + 127) / 128) * ((in + 127) / 128), 1e-3f);
      lw.scale_inv = scales.data();
      lw.scale_cols = (in + 127) / 128;
    }
  }
};

void BM_Linear(benchmark::State& st) {
  const bool fp8 = st.range(0);
  const int64_t out = st.range(1), in = st.range(2), m = st.range(3);
  Weight w(fp8, out, in);
  std::vector<float> x(m * in, 0.01f), y(m * out);
  for (auto _ : st) {
    cpu::linear(x.data(), m, w.lw, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  st.SetBytesProcessed(st.iterations() * static_cast<int64_t>(w.data.size()));
  st.counters["FLOP/s"] = benchmark::Counter(2.0 * m * out * in * st.iterations(), benchmark::Counter::kIsRate);
  st.SetLabel(std::string(fp8 ? "fp8" : "bf16") + " threads=" + std::to_string(cpu::num_threads()));
}

void shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"fp8", "out", "in", "m"});
  for (int fp8 : {0, 1})
    for (auto [o, i] : std::vector<std::pair<int64_t, int64_t>>{{2048, 7168}, {7168, 2048}, {24576, 1536}})
      for (int64_t m : {1, 8, 32, 256}) b->Args({fp8, o, i, m});
}
BENCHMARK(BM_Linear)->Apply(shapes)->UseRealTime()->Unit(benchmark::kMillisecond);

// Read bandwidth of the compute threads over a 1 GiB buffer.
void BM_ReadBandwidth(benchmark::State& st) {
  const int64_t n = (int64_t{1} << 30) / 8;
  std::vector<uint64_t> buf(n, 1);
  for (auto _ : st) {
    std::atomic<uint64_t> total{0};
    cpu::parallel_for(n, 1 << 16, [&](int64_t b, int64_t e) {
      uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      int64_t i = b;
      for (; i + 4 <= e; i += 4) { s0 += buf[i]; s1 += buf[i + 1]; s2 += buf[i + 2]; s3 += buf[i + 3]; }
      for (; i < e; ++i) s0 += buf[i];
      total += s0 + s1 + s2 + s3;
    });
    benchmark::DoNotOptimize(total.load());
  }
  st.SetBytesProcessed(st.iterations() * n * 8);
}
BENCHMARK(BM_ReadBandwidth)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
