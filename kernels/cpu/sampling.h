// Token sampling: greedy, temperature, top-k, top-p, min-p, seeded and
// reproducible; and the logit adjustments that depend on what came before
// (logit bias, presence, frequency and repetition penalties).
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <unordered_map>
#include <vector>

namespace moemesh::cpu {

struct SamplingParams {
  float temperature = 0.0f;  // 0: greedy
  int64_t top_k = 0;         // 0: off
  float top_p = 1.0f;        // 1: off
  uint64_t seed = 0;
  // 0: off. Keeps the tokens whose probability (after temperature) is at least
  // min_p times the most likely token's; applied with top-k and top-p.
  float min_p = 0.0f;
  bool greedy() const { return temperature <= 0.0f; }
  // The most likely token whatever the random draws (top-k 1, min-p 1 but for
  // exact ties): as greedy for what the tokens depend on.
  bool picks_most_likely() const { return greedy() || top_k == 1 || min_p >= 1.0f; }
};

// Changes to the logits before sampling, as OpenAI and vLLM define them:
//   logit_bias          added to the logit of each listed token
//   presence_penalty    subtracted once from every token generated so far
//   frequency_penalty   subtracted once per time a token was generated so far
//   repetition_penalty  for every token of the prompt or generated so far, a
//                       positive logit is divided by it and a negative one multiplied
// Bias first, then the repetition penalty, then presence and frequency (vLLM's
// order). Log-probabilities are reported from the
// logits before any of this (docs/API.md).
struct LogitAdjustments {
  std::vector<std::pair<int32_t, float>> logit_bias;  // token, bias
  float presence_penalty = 0.0f;   // 0: off
  float frequency_penalty = 0.0f;  // 0: off
  float repetition_penalty = 1.0f; // 1: off
  bool any() const { return !logit_bias.empty() || counts_history(); }
  // The penalties need the generated tokens counted (the bias alone does not).
  bool counts_history() const { return presence_penalty != 0.0f || frequency_penalty != 0.0f || repetition_penalty != 1.0f; }
};

// What the penalties look at: how often each token was generated, and the
// distinct prompt tokens (only kept when the repetition penalty is on).
struct TokenHistory {
  std::unordered_map<int32_t, int32_t> generated;  // token -> count
  std::vector<int32_t> prompt;                     // sorted, unique
  void add(int32_t token) { ++generated[token]; }
};

// Applies `adj` to logits [n] in place; `ahead` are tokens past `history` that
// count as generated too (draft tokens being verified). Ids out of range are skipped.
void adjust_logits(float* logits, int64_t n, const LogitAdjustments& adj, const TokenHistory& history,
                   std::span<const int32_t> ahead = {});

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
