// Random weights as a checkpoint stores them (f32, bf16, f16, or fp8-e4m3 with
// 128×128 block scales), with the LinearWeight view the kernels take.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"

namespace moemesh::testing {

struct OwnedWeight {
  std::vector<uint8_t> data;
  std::vector<float> scales;
  LinearWeight lw;
};

// Values ~N(0, 0.1); fp8 blocks get scales 2^[-12, max_scale_exp2).
inline OwnedWeight random_weight(DType t, int64_t out, int64_t in, uint64_t seed, float max_scale_exp2) {
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
      w.scales.push_back(std::exp2(std::uniform_real_distribution<float>(-12, max_scale_exp2)(rng)));
    w.lw.scale_inv = w.scales.data();
    w.lw.scale_cols = bc;
  }
  return w;
}

}  // namespace moemesh::testing
