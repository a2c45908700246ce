// Group-limited top-k routing on the device against cpu::route_tokens.
#include "tests/gpu/gpu_test.h"

#include "kernels/cpu/topk_gate.h"
#include "kernels/cuda/cuda_backend.h"

using namespace moemesh;
using moemesh::gpu_test::GpuTest;
using moemesh::gpu_test::random_floats;

namespace {

void expect_same_routing(const cpu::GateParams& p, bool with_bias, int64_t tokens, uint64_t seed) {
  auto logits = random_floats(tokens * p.n_experts, seed, 2.0f);
  // A few exact ties so the lower-index rule is exercised.
  for (int64_t t = 0; t < tokens; t += 3) logits[t * p.n_experts + 5] = logits[t * p.n_experts + 4];
  auto bias = random_floats(p.n_experts, seed + 1, 0.1f);
  const float* b = with_bias ? bias.data() : nullptr;
  std::vector<int32_t> want_i(tokens * p.top_k);
  std::vector<float> want_w(tokens * p.top_k);
  cpu::route_tokens(logits.data(), tokens, b, p, want_i.data(), want_w.data());

  auto dl = cuda::DeviceBuffer::from(logits), db = cuda::DeviceBuffer::from(bias);
  cuda::DeviceBuffer di(want_i.size() * 4), dw(want_w.size() * 4);
  cuda::route_tokens(dl.as<float>(), tokens, with_bias ? db.as<float>() : nullptr, cuda::gate_args(p),
                     di.as<int32_t>(), dw.as<float>());
  const auto got_i = di.to_vector<int32_t>(want_i.size());
  const auto got_w = dw.to_vector<float>(want_w.size());
  for (size_t i = 0; i < want_i.size(); ++i) {
    ASSERT_EQ(got_i[i], want_i[i]) << "token " << i / p.top_k << " slot " << i % p.top_k;
    ASSERT_NEAR(got_w[i], want_w[i], 1e-6f * std::max(1.0f, std::fabs(want_w[i])));
  }
}

}  // namespace

class GpuGate : public GpuTest {};

TEST_F(GpuGate, DeepSeekV3NoauxTcSigmoidWithBias) {
  cpu::GateParams p;
  p.n_experts = 256;
  p.top_k = 8;
  p.n_group = 8;
  p.topk_group = 4;
  p.method = TopkMethod::NoauxTc;
  p.scoring = ScoringFunc::Sigmoid;
  p.normalize = true;
  p.scale = 2.5f;
  expect_same_routing(p, true, 300, 11);
}

TEST_F(GpuGate, GroupLimitedGreedySoftmax) {
  cpu::GateParams p;
  p.n_experts = 160;
  p.top_k = 6;
  p.n_group = 8;
  p.topk_group = 3;
  p.method = TopkMethod::GroupLimitedGreedy;
  p.scoring = ScoringFunc::Softmax;
  p.normalize = false;
  p.scale = 16.0f;
  p.scale_always = false;
  expect_same_routing(p, false, 77, 12);
}

TEST_F(GpuGate, GreedyNormalisedWithoutScaling) {
  cpu::GateParams p;
  p.n_experts = 64;
  p.top_k = 6;
  p.method = TopkMethod::Greedy;
  p.scoring = ScoringFunc::Softmax;
  p.normalize = true;
  p.scale = 3.0f;
  p.scale_always = false;
  expect_same_routing(p, true, 50, 13);  // the bias only counts for noaux_tc
}
