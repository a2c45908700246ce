// The expert host's `device: cuda`: its routed experts of every MoE layer held
// on a CUDA device, uploaded once, and dispatches computed there with the
// grouped GEMM of kernels/cuda. Plain C++: builds without CUDA too, where
// constructing it fails with a clear error.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/model_config.h"
#include "core/safetensors.h"
#include "model/moe_gate.h"

namespace moemesh {

class GpuExperts {
 public:
  // Uploads experts `ids` of `layers`. Throws std::runtime_error when this build
  // has no CUDA backend or no CUDA device is visible.
  GpuExperts(const ModelConfig& cfg, const Checkpoint& ckpt, const std::vector<int64_t>& layers,
             const std::vector<int32_t>& ids);
  ~GpuExperts();
  GpuExperts(const GpuExperts&) = delete;
  GpuExperts& operator=(const GpuExperts&) = delete;

  // As ExpertSet::forward: out[t] += Σ_k weight · expert(x[t]) over the experts held.
  void forward(int64_t layer, const float* x, const Routing& r, float* out) const;
  size_t device_bytes() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace moemesh
