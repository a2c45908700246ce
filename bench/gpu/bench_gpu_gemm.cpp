// Grouped expert GEMM (one GEMM per expert, DeepSeek-V3 gate/up shape) in bf16
// through cuBLAS and in fp8 with 128×128 block scales through the tiled
// kernel, against one dense cuBLAS bf16 GEMM of the same total size, measured
// in the same run. Usage: bench_gpu_gemm [experts=16] [hidden=7168] [inter=2048]
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "bench/gpu/bench_timer.h"
#include "core/dtype.h"
#include "kernels/cuda/cuda_backend.h"

using namespace moemesh;

namespace {

// One expert's weight in `t`, uploaded `copies` times (distinct memory, same values).
std::vector<cuda::DeviceLinear> expert_weights(DType t, int64_t out, int64_t in, int copies) {
  std::mt19937_64 rng(1);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<uint8_t> data(static_cast<size_t>(out * in) * dtype_size(t));
  std::vector<float> scales;
  for (int64_t i = 0; i < out * in; ++i) {
    if (t == DType::F8_E4M3) {
      data[i] = f32_to_fp8e4m3(nd(rng) * 100.0f);
    } else {
      const uint16_t b = f32_to_bf16(nd(rng) * 0.02f);
      data[2 * i] = static_cast<uint8_t>(b);
      data[2 * i + 1] = static_cast<uint8_t>(b >> 8);
    }
  }
  LinearWeight w;
  w.w = {t, {out, in}, data.data()};
  if (t == DType::F8_E4M3) {
    scales.assign(static_cast<size_t>(((out + 127) / 128) * ((in + 127) / 128)), 1.0f / 4096);
    w.scale_inv = scales.data();
    w.scale_cols = (in + 127) / 128;
  }
  std::vector<cuda::DeviceLinear> v;
  for (int i = 0; i < copies; ++i) v.emplace_back(w);
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  if (cuda::device_count() == 0) {
    std::fprintf(stderr, "bench_gpu_gemm: no CUDA device visible\n");
    return 1;
  }
  const int experts = argc > 1 ? std::atoi(argv[1]) : 16;
  const int64_t hidden = argc > 2 ? std::atoll(argv[2]) : 7168, inter = argc > 3 ? std::atoll(argv[3]) : 2048;
  const auto bf16 = expert_weights(DType::BF16, inter, hidden, experts);
  const auto fp8 = expert_weights(DType::F8_E4M3, inter, hidden, experts);
  std::printf("grouped GEMM: %d experts, each [m, %lld] x [%lld, %lld]^T\n", experts, static_cast<long long>(hidden),
              static_cast<long long>(inter), static_cast<long long>(hidden));
  std::printf("%8s %14s %14s %14s %14s\n", "m/expert", "bf16 cuBLAS", "fp8 tiled", "bf16 tiled", "dense cuBLAS");
  for (int64_t m : {1, 8, 32, 128, 512}) {
    const int64_t rows = m * experts;
    cuda::DeviceBuffer x(static_cast<size_t>(rows * hidden) * 4), y(static_cast<size_t>(rows * inter) * 4);
    x.zero();
    auto groups = [&](const std::vector<cuda::DeviceLinear>& ws) {
      std::vector<cuda::GemmGroup> g;
      for (int e = 0; e < experts; ++e) g.push_back({&ws[e].view(), e * m, m});
      return g;
    };
    const auto gb = groups(bf16), gf = groups(fp8);
    const double flops = 2.0 * static_cast<double>(rows) * static_cast<double>(inter) * static_cast<double>(hidden);
    const double t_bf16 = bench::seconds_per_run([&] { cuda::grouped_linear(x.as<float>(), hidden, gb, y.as<float>(), inter); });
    const double t_fp8 = bench::seconds_per_run([&] { cuda::grouped_linear(x.as<float>(), hidden, gf, y.as<float>(), inter); });
    const double t_tiled = bench::seconds_per_run([&] {
      for (const auto& g : gb) cuda::linear_tiled(x.as<float>() + g.row_begin * hidden, g.rows, hidden, *g.w,
                                                  y.as<float>() + g.row_begin * inter, inter);
    });
    const double t_dense = bench::seconds_per_run(
        [&] { cuda::linear(x.as<float>(), rows, hidden, bf16[0].view(), y.as<float>(), inter); });
    auto tf = [&](double t) { return flops / t / 1e12; };
    std::printf("%8lld %9.2f TF/s %9.2f TF/s %9.2f TF/s %9.2f TF/s\n", static_cast<long long>(m), tf(t_bf16),
                tf(t_fp8), tf(t_tiled), tf(t_dense));
  }
  std::printf("(TF/s = 2·rows·out·in / time; the dense GEMM reads one weight, the grouped ones %d)\n", experts);
  return 0;
}
