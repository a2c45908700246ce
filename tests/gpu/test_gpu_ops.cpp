// RMSNorm, fused SwiGLU and YaRN RoPE on the device against kernels/cpu.
#include "tests/gpu/gpu_test.h"

#include "core/model_config.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/rope.h"
#include "kernels/cuda/cuda_backend.h"

using namespace moemesh;
using moemesh::gpu_test::GpuTest;
using moemesh::gpu_test::expect_close;
using moemesh::gpu_test::random_floats;

class GpuOps : public GpuTest {};

TEST_F(GpuOps, RmsNormMatchesCpuWithStrides) {
  const int64_t rows = 37, n = 576, ld = 640;  // a kv_a row: the norm covers the first 512
  auto x = random_floats(rows * ld, 1, 3.0f);
  auto w = random_floats(n, 2);
  std::vector<float> want(rows * ld, 0.0f);
  cpu::rmsnorm(x.data(), rows, n, ld, w.data(), 1e-6f, want.data(), ld);
  auto dx = cuda::DeviceBuffer::from(x), dw = cuda::DeviceBuffer::from(w);
  cuda::DeviceBuffer dy(want.size() * 4);
  dy.zero();
  cuda::rmsnorm(dx.as<float>(), rows, n, ld, dw.as<float>(), 1e-6f, dy.as<float>(), ld);
  expect_close(dy.to_vector<float>(want.size()), want, 1e-5f, 1e-5f, "rmsnorm");
}

TEST_F(GpuOps, RmsNormInPlace) {
  auto x = random_floats(4 * 100, 3);
  auto w = random_floats(100, 4);
  std::vector<float> want = x;
  cpu::rmsnorm(want.data(), 4, 100, w.data(), 1e-6f, want.data());
  auto dx = cuda::DeviceBuffer::from(x), dw = cuda::DeviceBuffer::from(w);
  cuda::rmsnorm(dx.as<float>(), 4, 100, 100, dw.as<float>(), 1e-6f, dx.as<float>(), 100);
  expect_close(dx.to_vector<float>(want.size()), want, 1e-5f, 1e-5f, "rmsnorm in place");
}

TEST_F(GpuOps, SiluMulMatchesCpu) {
  const int64_t n = 100003;
  auto g = random_floats(n, 5, 4.0f), u = random_floats(n, 6);
  std::vector<float> want(n);
  cpu::silu_mul(g.data(), u.data(), n, want.data());
  auto dg = cuda::DeviceBuffer::from(g), du = cuda::DeviceBuffer::from(u);
  cuda::silu_mul(dg.as<float>(), du.as<float>(), n, dg.as<float>());
  expect_close(dg.to_vector<float>(n), want, 1e-6f, 1e-5f, "silu_mul");
}

namespace {
ModelConfig yarn_config() {
  ModelConfig c;
  c.qk_rope_head_dim = 64;
  c.rope_theta = 10000.0;
  YarnScaling y;
  y.factor = 40.0;
  y.original_max_position_embeddings = 4096;
  y.beta_fast = 32.0;
  y.beta_slow = 1.0;
  c.yarn = y;
  return c;
}
}  // namespace

TEST_F(GpuOps, RopeWithYarnMatchesCpu) {
  const ModelConfig cfg = yarn_config();
  const cpu::Rope rope(cfg);
  const int64_t tokens = 9, heads = 16, qk = 192, nope = 128;  // q rows: [heads][nope | rope]
  auto x = random_floats(tokens * heads * qk, 7);
  const std::vector<int32_t> pos = {0, 1, 2, 17, 100, 4095, 4096, 70000, 163839};
  std::vector<float> want = x;
  for (int64_t t = 0; t < tokens; ++t) rope.apply(want.data() + t * heads * qk + nope, heads, qk, pos[t]);
  auto dx = cuda::DeviceBuffer::from(x), dp = cuda::DeviceBuffer::from(pos),
       df = cuda::DeviceBuffer::from(rope.inv_freq());
  cuda::rope(dx.as<float>() + nope, tokens, heads * qk, heads, qk, rope.dim(), dp.as<int32_t>(), df.as<float>());
  // Angles up to 1.6e5 rad: cos/sin of the same f32 angle, a few ulps apart.
  expect_close(dx.to_vector<float>(x.size()), want, 2e-5f, 2e-5f, "rope");
}
