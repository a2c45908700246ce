// Argmax and the sampling distribution on the device against kernels/cpu/sampling.
#include "tests/gpu/gpu_test.h"

#include "kernels/cpu/sampling.h"
#include "kernels/cuda/cuda_backend.h"

using namespace moemesh;
using moemesh::gpu_test::GpuTest;
using moemesh::gpu_test::random_floats;

class GpuSampling : public GpuTest {};

TEST_F(GpuSampling, ArgmaxPerRowLowestIndexOnTies) {
  const int64_t rows = 5, n = 129280;
  auto logits = random_floats(rows * n, 1);
  logits[2 * n + 70000] = 50.0f;
  logits[2 * n + 90000] = 50.0f;  // tie: the lower index wins
  logits[4 * n + n - 1] = 60.0f;
  auto d = cuda::DeviceBuffer::from(logits);
  cuda::DeviceBuffer out(rows * 4);
  cuda::argmax(d.as<float>(), rows, n, out.as<int32_t>());
  const auto got = out.to_vector<int32_t>(rows);
  for (int64_t r = 0; r < rows; ++r) EXPECT_EQ(got[r], cpu::argmax(logits.data() + r * n, n)) << "row " << r;
  EXPECT_EQ(got[2], 70000);
}

TEST_F(GpuSampling, DistributionMatchesCpu) {
  const int64_t n = 50000;
  auto logits = random_floats(n, 2, 3.0f);
  logits[10] = logits[20];  // equal logits keep index order
  struct Case { float t; int64_t k; float p; };
  for (const Case c : {Case{0.0f, 0, 1.0f}, Case{1.0f, 0, 1.0f}, Case{0.7f, 50, 1.0f}, Case{1.0f, 0, 0.9f},
                       Case{0.6f, 40, 0.8f}, Case{2.0f, 1, 0.5f}}) {
    cpu::SamplingParams p;
    p.temperature = c.t;
    p.top_k = c.k;
    p.top_p = c.p;
    std::vector<float> want;
    cpu::sampling_distribution(logits.data(), n, p, want);
    auto d = cuda::DeviceBuffer::from(logits);
    cuda::DeviceBuffer probs(n * 4);
    cuda::sampling_distribution(d.as<float>(), n, c.t, c.k, c.p, probs.as<float>());
    const auto got = probs.to_vector<float>(n);
    for (int64_t i = 0; i < n; ++i)
      ASSERT_NEAR(got[i], want[i], 1e-6f + 1e-5f * want[i]) << "t=" << c.t << " k=" << c.k << " p=" << c.p << " i=" << i;
  }
}
