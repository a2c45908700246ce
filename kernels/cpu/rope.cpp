#include "kernels/cpu/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace moemesh::cpu {
namespace {
// Dimension index at which `rotations` full turns fit in the original context.
double correction_dim(double rotations, double dim, double base, double max_pos) {
  return dim * std::log(max_pos / (rotations * 2.0 * std::numbers::pi)) / (2.0 * std::log(base));
}
}  // namespace

Rope::Rope(const ModelConfig& cfg) : dim_(cfg.qk_rope_head_dim) {
  const int64_t half = dim_ / 2;
  inv_freq_.resize(half);
  // Computed in f32 like the reference (base ** (arange(0, dim, 2) / dim)).
  for (int64_t i = 0; i < half; ++i) {
    const float e = static_cast<float>(2 * i) / static_cast<float>(dim_);
    inv_freq_[i] = 1.0f / std::pow(static_cast<float>(cfg.rope_theta), e);
  }
  if (cfg.yarn && cfg.yarn->factor > 1.0) {
    const auto& y = *cfg.yarn;
    const double orig = static_cast<double>(y.original_max_position_embeddings);
    double low = std::floor(correction_dim(y.beta_fast, dim_, cfg.rope_theta, orig));
    double high = std::ceil(correction_dim(y.beta_slow, dim_, cfg.rope_theta, orig));
    low = std::max(low, 0.0);
    high = std::min(high, static_cast<double>(dim_ - 1));
    if (low == high) high += 0.001;
    for (int64_t i = 0; i < half; ++i) {
      const float ramp = std::clamp(static_cast<float>((static_cast<double>(i) - low) / (high - low)), 0.0f, 1.0f);
      const float smooth = 1.0f - ramp;
      const float f = inv_freq_[i];
      inv_freq_[i] = f / static_cast<float>(y.factor) * (1.0f - smooth) + f * smooth;
    }
  }
}

void Rope::apply(float* x, int64_t heads, int64_t stride, int64_t pos) const {
  const int64_t half = dim_ / 2;
  float cs[256], sn[256];
  float* c = cs;
  float* s = sn;
  std::vector<float> big;
  if (half > 256) {
    big.resize(2 * half);
    c = big.data();
    s = big.data() + half;
  }
  for (int64_t i = 0; i < half; ++i) {
    const float angle = static_cast<float>(pos) * inv_freq_[i];
    c[i] = std::cos(angle);
    s[i] = std::sin(angle);
  }
  for (int64_t h = 0; h < heads; ++h) {
    float* v = x + h * stride;
    for (int64_t i = 0; i < half; ++i) {
      const float a = v[2 * i], b = v[2 * i + 1];
      v[2 * i] = a * c[i] - b * s[i];
      v[2 * i + 1] = a * s[i] + b * c[i];
    }
  }
}

}  // namespace moemesh::cpu
