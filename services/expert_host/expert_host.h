// The expert-host role: holds a subset of routed experts (any MoE layers), runs
// them over the rows a router dispatches, and returns weighted partial sums.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "actors/wire_message.h"
#include "model/experts.h"
#include "services/expert_host/gpu_experts.h"

namespace moemesh {

// "0-7,12,20-23" → ids; throws std::invalid_argument naming the bad part.
std::vector<int32_t> parse_id_ranges(const std::string& spec, int32_t limit);

class ExpertHost {
 public:
  // Loads `experts` of every MoE layer (the MTP layer included) from the checkpoint.
  // device "cuda" computes them on the GPU (uploaded once per set of experts held).
  ExpertHost(const ModelConfig& cfg, const Checkpoint& ckpt, const std::vector<int32_t>& experts,
             const std::string& device = "cpu", cpu::Precision compute = cpu::Precision::Fast);

  // Answers one message: Dispatch → Combine, Hello → Hello with the experts held.
  // Throws WireError for a message it cannot accept (the caller replies Error).
  wire::Message handle(const wire::Message& m);

  const std::vector<int32_t>& experts() const { return ids_; }
  uint64_t dispatches() const { return dispatches_; }
  uint64_t rows() const { return rows_; }

  // Loads more experts, or drops some (ids not held are ignored); returns what it holds now.
  const std::vector<int32_t>& load(const std::vector<int32_t>& experts);
  const std::vector<int32_t>& unload(const std::vector<int32_t>& experts);

 private:
  void build(std::vector<int32_t> ids);
  const ModelConfig& cfg_;
  const Checkpoint& ckpt_;
  std::vector<int32_t> ids_;
  std::map<int64_t, std::unique_ptr<ExpertSet>> layers_;
  std::string device_;
  cpu::Precision compute_;
  Workspace ws_;  // the experts' scratch, reused dispatch to dispatch
  std::unique_ptr<GpuExperts> gpu_;  // device "cuda" only
  uint64_t dispatches_ = 0, rows_ = 0;
};

}  // namespace moemesh
