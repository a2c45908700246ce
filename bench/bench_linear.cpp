// linear() at the shapes decode and prefill run: weight bytes/s (decode is bound
// by them) and FLOP/s (prefill), at 1 and 2 threads, plus the machine's read
// bandwidth (bench/read_bandwidth.h) to compare against.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/read_bandwidth.h"
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

// Several copies of the weight, used in turn, so each iteration reads it from
// memory rather than from the last-level cache (32 MiB here).
void BM_Linear(benchmark::State& st) {
  const bool fp8 = st.range(0);
  const int64_t out = st.range(1), in = st.range(2), m = st.range(3);
  const int threads = static_cast<int>(st.range(4));
  cpu::set_num_threads(threads);
  const int64_t bytes = out * in * (fp8 ? 1 : 2);
  const int copies = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(8, (int64_t{96} << 20) / bytes)));
  std::vector<Weight> ws;
  for (int i = 0; i < copies; ++i) ws.emplace_back(fp8, out, in);
  std::vector<float> x(m * in, 0.01f), y(m * out);
  int64_t i = 0;
  for (auto _ : st) {
    cpu::linear(x.data(), m, ws[i++ % copies].lw, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  st.SetBytesProcessed(st.iterations() * bytes);
  st.counters["FLOP/s"] = benchmark::Counter(2.0 * m * out * in * st.iterations(), benchmark::Counter::kIsRate);
  st.SetLabel(std::string(fp8 ? "fp8" : "bf16") + " " + cpu::kernel_description());
}

void shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"fp8", "out", "in", "m", "threads"});
  // The real-vocabulary LM head at hidden 512, DeepSeek-V3's expert and q_b shapes.
  const std::vector<std::pair<int64_t, int64_t>> mats{{129280, 512}, {2048, 7168}, {7168, 2048}, {24576, 1536}};
  for (int threads : {1, 2})
    for (int fp8 : {0, 1})
      for (auto [o, i] : mats)
        for (int64_t m : {1, 4, 32, 128}) b->Args({fp8, o, i, m, threads});
}
BENCHMARK(BM_Linear)->Apply(shapes)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_ReadBandwidth(benchmark::State& st) {
  const int threads = static_cast<int>(st.range(0));
  for (auto _ : st) st.counters["GB/s"] = cpu::measure_read_bandwidth(threads, 1) / 1e9;
}
BENCHMARK(BM_ReadBandwidth)->Arg(1)->Arg(2)->Iterations(3)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
