// Token sampling: greedy, temperature, top-k, top-p, seeded and reproducible.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace moemesh::cpu {

struct SamplingParams {
  float temperature = 0.0f;  // 0: greedy
  int64_t top_k = 0;         // 0: off
  float top_p = 1.0f;        // 1: off
  uint64_t seed = 0;
  bool greedy() const { return temperature <= 0.0f; }
};

int32_t argmax(const float* logits, int64_t n);

// Log-probabilities as the model gives them (log-softmax of the raw logits,
// before temperature or any filter): the chosen token's, and the k most likely
// tokens' in descending order (ties: the lower id first).
struct TokenLogprobs {
  float logprob = 0.0f;
  std::vector<std::pair<int32_t, float>> top;
};
TokenLogprobs token_logprobs(const float* logits, int64_t n, int32_t chosen, int k);

// The distribution that sampling draws from (temperature, top-k, top-p applied),
// as probabilities over the whole vocabulary (zeros outside the kept set).
void sampling_distribution(const float* logits, int64_t n, const SamplingParams& p,
                           std::vector<float>& probs);

class Sampler {
 public:
  explicit Sampler(const SamplingParams& p) : params_(p), rng_(p.seed) {}
  int32_t sample(const float* logits, int64_t n);
  // A uniform draw in [0, 1), from the same seeded stream (speculative verification).
  double uniform() { return std::uniform_real_distribution<double>(0.0, 1.0)(rng_); }
  const SamplingParams& params() const { return params_; }

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
  std::vector<float> probs_;
};

}  // namespace moemesh::cpu

namespace moemesh::cpu {

// Speculative verification that keeps the output distribution unchanged
// (Leviathan et al., Chen et al.): the target distribution p, the draft
// distribution q it was drawn from, the drafted token. Accepts it with
// probability min(1, p/q); otherwise returns a token drawn from
// normalize(max(0, p - q)). Either way the returned token is distributed as p.
struct Verdict {
  int32_t token;
  bool accepted;
};
Verdict verify_draft(const std::vector<float>& p, const std::vector<float>& q, int32_t draft, Sampler& rng);

}  // namespace moemesh::cpu
