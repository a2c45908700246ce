// What speculative decoding measured: verification steps, and drafts tried and
// accepted per draft position (a position is tried only when every draft before
// it was accepted).
#pragma once

#include <cstdint>
#include <vector>

namespace moemesh {

struct SpeculationStats {
  int64_t steps = 0;                   // verification steps
  std::vector<int64_t> drafted;        // per draft position
  std::vector<int64_t> accepted;       // per draft position
  double acceptance(size_t pos) const {
    return drafted.at(pos) ? double(accepted.at(pos)) / drafted.at(pos) : 0.0;
  }
  // Tokens emitted per verification step.
  double tokens_per_step(int64_t generated) const { return steps ? double(generated) / steps : 0.0; }
};

}  // namespace moemesh
