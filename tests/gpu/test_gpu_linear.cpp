// Linear layers, the grouped expert GEMM and the expert layer on the device
// against kernels/cpu: f32 and fp8 exact to f32 rounding, bf16 through cuBLAS
// within bf16 rounding of the activations.
#include "tests/gpu/gpu_test.h"

#include <map>

#include "kernels/cpu/linear.h"
#include "kernels/cpu/ops.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/expert_layer.h"

using namespace moemesh;
using moemesh::gpu_test::GpuTest;
using moemesh::gpu_test::OwnedWeight;
using moemesh::gpu_test::make_weight;
using moemesh::gpu_test::random_floats;

namespace {

// Σ_k |x·w| per output: the scale rounding errors are relative to.
std::vector<double> magnitudes(const std::vector<float>& x, int64_t m, int64_t ldx, const LinearWeight& w) {
  std::vector<double> mag(m * w.out());
  for (int64_t i = 0; i < m; ++i)
    for (int64_t o = 0; o < w.out(); ++o) {
      double s = 0;
      for (int64_t k = 0; k < w.in(); ++k) s += std::fabs(x[i * ldx + k] * w.at(o, k));
      mag[i * w.out() + o] = s;
    }
  return mag;
}

// rel: allowed error as a fraction of Σ|x·w| (f32 sums: ~1e-5; bf16 activations: ~1e-2).
void check_linear(DType t, int64_t m, int64_t out, int64_t in, bool tiled, double rel) {
  OwnedWeight w = make_weight(t, out, in, 100 + out);
  const int64_t ldx = in + 3;
  auto x = random_floats(m * ldx, 200 + m);
  std::vector<float> want(m * out);
  cpu::linear_reference(x.data(), m, ldx, w.lw, want.data(), out);
  const auto mag = magnitudes(x, m, ldx, w.lw);

  cuda::DeviceLinear dw(w.lw);
  auto dx = cuda::DeviceBuffer::from(x);
  cuda::DeviceBuffer dy(want.size() * 4);
  if (tiled) cuda::linear_tiled(dx.as<float>(), m, ldx, dw.view(), dy.as<float>(), out);
  else cuda::linear(dx.as<float>(), m, ldx, dw.view(), dy.as<float>(), out);
  const auto got = dy.to_vector<float>(want.size());
  for (size_t i = 0; i < want.size(); ++i)
    ASSERT_LE(std::fabs(got[i] - want[i]), rel * mag[i] + 1e-30)
        << dtype_name(t) << (tiled ? " tiled" : "") << " m=" << m << " i=" << i;
}

}  // namespace

class GpuLinear : public GpuTest {};

TEST_F(GpuLinear, Fp8BlockScaledTiledMatchesCpu) {
  for (int64_t m : {1, 5, 33, 130}) check_linear(DType::F8_E4M3, m, 300, 520, false, 2e-5);
}

TEST_F(GpuLinear, Bf16CublasWithinBf16Rounding) {
  for (int64_t m : {1, 8, 100}) check_linear(DType::BF16, m, 256, 384, false, 1e-2);
}

TEST_F(GpuLinear, F32CublasMatchesCpu) { check_linear(DType::F32, 17, 200, 300, false, 2e-5); }

TEST_F(GpuLinear, TiledKernelEveryDtype) {
  for (DType t : {DType::F32, DType::BF16, DType::F16, DType::F8_E4M3}) check_linear(t, 45, 129, 257, true, 2e-5);
}

TEST_F(GpuLinear, GroupedMatchesPerGroupCpu) {
  const int64_t in = 256, out = 384;
  std::vector<OwnedWeight> ws;
  for (int i = 0; i < 3; ++i) ws.push_back(make_weight(DType::F8_E4M3, out, in, 300 + i));
  const std::vector<int64_t> rows = {5, 0, 40};
  const int64_t R = 45;
  auto x = random_floats(R * in, 7);
  std::vector<float> want(R * out);
  std::vector<cuda::DeviceLinear> dws;
  for (auto& w : ws) dws.emplace_back(w.lw);
  std::vector<cuda::GemmGroup> groups;
  int64_t begin = 0;
  for (int i = 0; i < 3; ++i) {
    if (rows[i]) cpu::linear_reference(x.data() + begin * in, rows[i], in, ws[i].lw, want.data() + begin * out, out);
    groups.push_back({&dws[i].view(), begin, rows[i]});
    begin += rows[i];
  }
  auto dx = cuda::DeviceBuffer::from(x);
  cuda::DeviceBuffer dy(want.size() * 4);
  cuda::grouped_linear(dx.as<float>(), in, groups, dy.as<float>(), out);
  gpu_test::expect_close(dy.to_vector<float>(want.size()), want, 1e-3f, 1e-4f, "grouped");
}

TEST_F(GpuLinear, ExpertLayerMatchesCpuExperts) {
  const int64_t hidden = 256, inter = 128, tokens = 11, top_k = 4;
  std::vector<OwnedWeight> owned;
  std::vector<cuda::ExpertWeights> experts;
  for (int32_t e : {1, 3, 4, 6}) {
    owned.push_back(make_weight(DType::F8_E4M3, inter, hidden, 10 * e));
    owned.push_back(make_weight(DType::F8_E4M3, inter, hidden, 10 * e + 1));
    owned.push_back(make_weight(DType::F8_E4M3, hidden, inter, 10 * e + 2));
  }
  const std::vector<int32_t> held = {1, 3, 4, 6};
  for (size_t i = 0; i < held.size(); ++i)
    experts.push_back({held[i], owned[3 * i].lw, owned[3 * i + 1].lw, owned[3 * i + 2].lw});
  // Routes to experts 0..7 and -1: the ones not held are skipped.
  std::vector<int32_t> route(tokens * top_k);
  for (int64_t i = 0; i < tokens * top_k; ++i) route[i] = static_cast<int32_t>((i * 5 + i / top_k) % 9) - 1;
  auto weights = random_floats(tokens * top_k, 3, 0.5f);
  auto x = random_floats(tokens * hidden, 4);

  // The CPU reference: ExpertSet::forward's steps with the plain loops.
  std::map<int32_t, size_t> index;
  for (size_t i = 0; i < held.size(); ++i) index[held[i]] = i;
  std::vector<float> want(tokens * hidden, 0.0f);
  for (const auto& [e, i] : index)
    for (int64_t t = 0; t < tokens; ++t)
      for (int64_t k = 0; k < top_k; ++k) {
        if (route[t * top_k + k] != e) continue;
        std::vector<float> g(inter), u(inter), y(hidden);
        cpu::linear_reference(x.data() + t * hidden, 1, hidden, experts[i].gate, g.data(), inter);
        cpu::linear_reference(x.data() + t * hidden, 1, hidden, experts[i].up, u.data(), inter);
        cpu::silu_mul(g.data(), u.data(), inter, g.data());
        cpu::linear_reference(g.data(), 1, inter, experts[i].down, y.data(), hidden);
        cpu::axpy(weights[t * top_k + k], y.data(), want.data() + t * hidden, hidden);
      }

  cuda::ExpertLayer layer(hidden, inter, experts);
  EXPECT_TRUE(layer.has(3));
  EXPECT_FALSE(layer.has(2));
  std::vector<float> got(tokens * hidden, 0.0f);
  layer.forward(x.data(), tokens, route.data(), weights.data(), top_k, got.data());
  gpu_test::expect_close(got, want, 1e-4f, 1e-3f, "expert layer");
}
