// Shared pieces of the GPU tests: a fixture that skips where no CUDA device is
// visible, random data, and checkpoint-like weights with their CPU views.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"
#include "kernels/cuda/device.h"
#include "tests/support/random_weight.h"

namespace moemesh::gpu_test {

class GpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device visible";
  }
};

inline std::vector<float> random_floats(size_t n, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

using moemesh::testing::OwnedWeight;
inline OwnedWeight make_weight(DType t, int64_t out, int64_t in, uint64_t seed) {
  return moemesh::testing::random_weight(t, out, in, seed, -8);
}

// |got - want| <= atol + rtol·|want| everywhere.
inline void expect_close(const std::vector<float>& got, const std::vector<float>& want, float atol, float rtol,
                         const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_LE(std::fabs(got[i] - want[i]), atol + rtol * std::fabs(want[i])) << what << " at " << i;
}

}  // namespace moemesh::gpu_test
