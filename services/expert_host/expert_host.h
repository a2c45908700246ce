// The expert host's compute, free of sockets: the routed experts it holds (any
// MoE layers) run over the rows of a Dispatch, giving the weighted partial sums
// of a Combine. The actor (expert_host_service.cpp) carries the messages.
#pragma once

#include <map>
#include <memory>
#include <shared_mutex>
#include <string>
#include <vector>

#include "model/experts.h"
#include "services/expert_host/api.h"
#include "gpu_experts.h"

namespace moemesh {

class ExpertHost {
 public:
  // Loads `experts` of every MoE layer (the MTP layer included) from the checkpoint.
  // device "cuda" computes them on the GPU (uploaded once per set of experts held).
  ExpertHost(const ModelConfig& cfg, const Checkpoint& ckpt, const std::vector<int32_t>& experts,
             const std::string& device = "cpu", cpu::Precision compute = cpu::Precision::Fast);

  // Answers one message: Dispatch → Combine. Throws WireError for a message it
  // cannot accept (NotHeld for an expert it does not hold; the caller replies Error).
  wire::Message handle(const wire::Message& m);

  const std::vector<int32_t>& experts() const { return ids_; }
  uint64_t dispatches() const { return dispatches_; }
  uint64_t rows() const { return rows_; }
  // Rows computed per expert since the last call (experts without rows left out).
  std::vector<std::pair<int32_t, uint64_t>> take_expert_rows();

  // Loads more experts, or drops some (ids not held are ignored); returns what it holds now.
  // Safe to call on another thread than handle()'s: the new sets are built
  // aside and swapped in (on the GPU, which holds one set, handle() waits).
  const std::vector<int32_t>& load(const std::vector<int32_t>& experts);
  const std::vector<int32_t>& unload(const std::vector<int32_t>& experts);

 private:
  void build(std::vector<int32_t> ids);
  mutable std::shared_mutex swap_;  // handle() shares it; build() swaps the sets under it
  const ModelConfig& cfg_;
  const Checkpoint& ckpt_;
  std::vector<int32_t> ids_;
  std::map<int64_t, std::unique_ptr<ExpertSet>> layers_;
  std::string device_;
  cpu::Precision compute_;
  Workspace ws_;  // the experts' scratch, reused dispatch to dispatch
  std::unique_ptr<GpuExperts> gpu_;  // device "cuda" only
  uint64_t dispatches_ = 0, rows_ = 0;
  std::vector<uint64_t> expert_rows_;  // per expert, since take_expert_rows
};

}  // namespace moemesh
