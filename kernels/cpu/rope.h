// Rotary position embedding as DeepSeek-V3 applies it: interleaved pairs
// (x[2i], x[2i+1]) rotated by pos · inv_freq[i], with YaRN frequency blending.
#pragma once

#include <cstdint>
#include <vector>

#include "core/model_config.h"

namespace moemesh::cpu {

class Rope {
 public:
  Rope(const ModelConfig& cfg);
  int64_t dim() const { return dim_; }
  const std::vector<float>& inv_freq() const { return inv_freq_; }
  // Rotates `heads` vectors of dim() values, stride `stride`, for position pos.
  void apply(float* x, int64_t heads, int64_t stride, int64_t pos) const;

 private:
  int64_t dim_;
  std::vector<float> inv_freq_;
};

}  // namespace moemesh::cpu
