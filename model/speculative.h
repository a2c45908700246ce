// Greedy generation with MTP speculation: the MTP module drafts k tokens by
// chaining its own hidden state, the main model verifies them in one step, and
// both caches roll back past the first rejected draft. The output is the same as
// plain greedy generation.
#pragma once

#include <vector>

#include "kernels/cpu/sampling.h"
#include "model/engine.h"

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

// Exactly `n` new tokens after `prompt` (EOS does not stop it), drafting `k` per step.
// Greedy: drafts are the MTP module's argmax and are kept while they equal the main
// model's argmax, so the output is plain greedy decoding's. Sampling: drafts are
// drawn from the MTP module's sampling distribution and verified by rejection
// sampling (cpu::verify_draft), so the output follows the main model's distribution.
std::vector<int32_t> speculative_generate(Engine& engine, SeqId seq, const std::vector<int32_t>& prompt, int64_t n,
                                          int k, const cpu::SamplingParams& sampling, SpeculationStats* stats = nullptr);

inline std::vector<int32_t> speculative_greedy(Engine& engine, SeqId seq, const std::vector<int32_t>& prompt, int64_t n,
                                               int k, SpeculationStats* stats = nullptr) {
  return speculative_generate(engine, seq, prompt, n, k, cpu::SamplingParams{}, stats);
}

}  // namespace moemesh
