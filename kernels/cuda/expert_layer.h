// The routed experts of one MoE layer on the device, uploaded once: the GPU
// counterpart of model/experts.h's ExpertSet::forward (gather rows by expert,
// grouped gate/up GEMM, fused SwiGLU, grouped down GEMM, weighted combine).
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "core/tensor.h"
#include "kernels/cuda/cuda_backend.h"

namespace moemesh::cuda {

struct ExpertWeights {
  int32_t id = 0;
  LinearWeight gate, up, down;  // [inter, hidden], [inter, hidden], [hidden, inter]
};

class ExpertLayer {
 public:
  ExpertLayer(int64_t hidden, int64_t inter, const std::vector<ExpertWeights>& experts);

  bool has(int32_t e) const { return experts_.count(e) != 0; }
  size_t device_bytes() const;

  // Host arrays: x, out [tokens, hidden]; experts, weights [tokens, top_k].
  // out[t] += Σ_k weights[t,k] · expert_{experts[t,k]}(x[t]) over the experts
  // held here (others, and -1, are skipped), summed in ascending expert order.
  // Not thread-safe: the workspaces are the layer's own.
  void forward(const float* x, int64_t tokens, const int32_t* experts, const float* weights, int64_t top_k,
               float* out);

 private:
  struct Expert {
    DeviceLinear gate, up, down;
  };
  int64_t hidden_, inter_;
  std::map<int32_t, Expert> experts_;
  DeviceBuffer x_, xg_, g_, u_, y_, out_, index_, row_weight_;
};

}  // namespace moemesh::cuda
