// How a forward pass lays out several sequences' new tokens in one activation
// matrix: each chunk is a run of consecutive positions of one sequence.
#pragma once

#include <cstdint>
#include <vector>

#include "model/kv_cache.h"

namespace moemesh {

struct SeqChunk {
  SeqId seq = 0;
  int64_t start = 0;  // position of the chunk's first token (= tokens already cached)
  int64_t len = 0;    // tokens in this chunk
  int64_t row = 0;    // first row of the chunk in the [T, hidden] activations
};

// Total rows of a batch.
inline int64_t batch_rows(const std::vector<SeqChunk>& chunks) {
  int64_t t = 0;
  for (const auto& c : chunks) t += c.len;
  return t;
}

}  // namespace moemesh
