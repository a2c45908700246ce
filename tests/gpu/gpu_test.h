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

// A weight as a checkpoint stores it, with the LinearWeight view the CPU kernels take.
struct OwnedWeight {
  std::vector<uint8_t> data;
  std::vector<float> scales;
  LinearWeight lw;
};

inline OwnedWeight make_weight(DType t, int64_t out, int64_t in, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  OwnedWeight w;
  w.data.resize(static_cast<size_t>(out * in) * dtype_size(t));
  for (int64_t i = 0; i < out * in; ++i) {
    const float v = nd(rng) * 0.1f;
    switch (t) {
      case DType::F32: std::memcpy(w.data.data() + 4 * i, &v, 4); break;
      case DType::BF16: { const uint16_t b = f32_to_bf16(v); std::memcpy(w.data.data() + 2 * i, &b, 2); break; }
      case DType::F16: { const uint16_t b = f32_to_f16(v); std::memcpy(w.data.data() + 2 * i, &b, 2); break; }
      case DType::F8_E4M3: w.data[i] = f32_to_fp8e4m3(nd(rng) * 100.0f); break;
      default: break;
    }
  }
  w.lw.w = {t, {out, in}, w.data.data()};
  if (t == DType::F8_E4M3) {
    const int64_t br = (out + 127) / 128, bc = (in + 127) / 128;
    for (int64_t i = 0; i < br * bc; ++i)
      w.scales.push_back(std::exp2(std::uniform_real_distribution<float>(-12, -8)(rng)));
    w.lw.scale_inv = w.scales.data();
    w.lw.scale_cols = bc;
  }
  return w;
}

// |got - want| <= atol + rtol·|want| everywhere.
inline void expect_close(const std::vector<float>& got, const std::vector<float>& want, float atol, float rtol,
                         const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_LE(std::fabs(got[i] - want[i]), atol + rtol * std::fabs(want[i])) << what << " at " << i;
}

}  // namespace moemesh::gpu_test
