// cpu::GateParams → cuda::GateArgs (host C++; keeps model config out of the .cu files).
#include "kernels/cpu/topk_gate.h"
#include "kernels/cuda/cuda_backend.h"

namespace moemesh::cuda {

GateArgs gate_args(const cpu::GateParams& p) {
  GateArgs a;
  a.n_experts = static_cast<int32_t>(p.n_experts);
  a.top_k = static_cast<int32_t>(p.top_k);
  a.n_group = static_cast<int32_t>(p.n_group);
  a.topk_group = static_cast<int32_t>(p.topk_group);
  a.method = p.method == TopkMethod::Greedy ? 0 : p.method == TopkMethod::GroupLimitedGreedy ? 1 : 2;
  a.sigmoid = p.scoring == ScoringFunc::Sigmoid;
  a.normalize = p.normalize;
  a.scale_always = p.scale_always;
  a.scale = p.scale;
  return a;
}

}  // namespace moemesh::cuda
