// The expert host with device "cuda": the same combine as on the CPU for a
// tiny f32 and fp8 model; without a device (or without the CUDA expert host in
// the build) it refuses to start, clearly.
#include <gtest/gtest.h>

#include <random>

#include "kernels/cuda/device.h"
#include "services/expert_host/expert_host.h"
#include "tests/support/test_models.h"

using namespace moemesh;
using namespace moemesh::testing;

namespace {

wire::Message dispatch(const ModelConfig& cfg, int64_t layer, int64_t rows, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd;
  const int64_t k = cfg.num_experts_per_tok;
  std::vector<float> x(rows * cfg.hidden_size);
  for (auto& v : x) v = nd(rng);
  std::vector<int32_t> experts;
  std::vector<float> weights;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < k; ++i) {
      experts.push_back(static_cast<int32_t>((r * 3 + i * 5) % cfg.n_routed_experts));
      weights.push_back(0.1f + 0.2f * static_cast<float>(i));
    }
  wire::Message m;
  m.header.type = wire::MsgType::Dispatch;
  m.header.layer = static_cast<uint32_t>(layer);
  m.header.aux = static_cast<uint32_t>(k);
  m.header.rank = 2;
  m.header.dtype = DType::F32;
  m.header.shape = {static_cast<uint32_t>(rows), static_cast<uint32_t>(cfg.hidden_size), 0, 0};
  m.add_payload(x);
  m.add_payload(experts);
  m.add_payload(weights);
  return m;
}

std::vector<float> combine(const wire::Message& m, size_t n) {
  const float* p = m.payload_as<float>(0);
  return std::vector<float>(p, p + n);
}

}  // namespace

TEST(GpuExpertHost, CudaDeviceMatchesCpu) {
#if !MOEMESH_HAVE_CUDA
  GTEST_SKIP() << "expert hosts built without CUDA (-DMOEMESH_CUDA_EXPERT_HOST=ON enables them)";
#endif
  if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device visible";
  for (bool fp8 : {false, true}) {
    const auto& dir = test_model("tiny", fp8);
    const ModelConfig cfg = ModelConfig::load(dir);
    const Checkpoint ckpt(dir);
    int64_t layer = 0;
    while (!cfg.is_moe_layer(layer)) ++layer;
    ExpertHost on_cpu(cfg, ckpt, ExpertSet::all(cfg), "cpu");
    ExpertHost on_gpu(cfg, ckpt, ExpertSet::all(cfg), "cuda");
    for (int64_t rows : {1, 7, 40}) {
      const wire::Message m = dispatch(cfg, layer, rows, 5 + rows);
      const size_t n = static_cast<size_t>(rows * cfg.hidden_size);
      const Diff d = compare(combine(on_gpu.handle(m), n), combine(on_cpu.handle(m), n));
      // fp8 runs the tiled kernel on f32 activations; bf16 goes through cuBLAS with bf16 activations.
      EXPECT_LE(d.max_abs, (fp8 ? 1e-4 : 2e-2) * d.max_ref + 1e-6) << (fp8 ? "fp8" : "bf16/f32") << " rows=" << rows;
    }
  }
}

// Without the CUDA expert host in the build, or without a device: a clear error.
TEST(GpuExpertHost, CudaWithoutDeviceFailsClearly) {
#if MOEMESH_HAVE_CUDA
  if (cuda::device_count() > 0) GTEST_SKIP() << "a CUDA device is visible";
  const std::string expected = "no CUDA device";
#else
  const std::string expected = "no CUDA backend";
#endif
  const auto& dir = test_model("tiny");
  const ModelConfig cfg = ModelConfig::load(dir);
  const Checkpoint ckpt(dir);
  try {
    ExpertHost host(cfg, ckpt, {0, 1}, "cuda");
    FAIL() << "an expert host on cuda started without a device";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
  }
}
