#include "kernels/cpu/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace moemesh::cpu {

int32_t argmax(const float* logits, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (logits[i] > logits[best]) best = i;
  return static_cast<int32_t>(best);
}

TokenLogprobs token_logprobs(const float* logits, int64_t n, int32_t chosen, int k) {
  float mx = logits[0];
  for (int64_t i = 1; i < n; ++i) mx = std::max(mx, logits[i]);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(logits[i] - mx));
  const double lse = static_cast<double>(mx) + std::log(sum);
  TokenLogprobs out;
  out.logprob = static_cast<float>(logits[chosen] - lse);
  k = static_cast<int>(std::min<int64_t>(std::max(k, 0), n));
  // The k best in one pass: a small sorted list (k is at most 20).
  std::vector<int32_t> best;
  best.reserve(static_cast<size_t>(k) + 1);
  auto better = [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  for (int64_t i = 0; i < n && k > 0; ++i) {
    const auto id = static_cast<int32_t>(i);
    if (static_cast<int>(best.size()) == k && !better(id, best.back())) continue;
    best.insert(std::upper_bound(best.begin(), best.end(), id, better), id);
    if (static_cast<int>(best.size()) > k) best.pop_back();
  }
  for (int32_t id : best) out.top.emplace_back(id, static_cast<float>(logits[id] - lse));
  return out;
}

void sampling_distribution(const float* logits, int64_t n, const SamplingParams& p,
                           std::vector<float>& probs) {
  probs.assign(n, 0.0f);
  if (p.greedy()) {
    probs[argmax(logits, n)] = 1.0f;
    return;
  }
  const float inv_t = 1.0f / p.temperature;
  if (!(p.top_k > 0 && p.top_k < n) && p.top_p >= 1.0f) {
    // Nothing that needs the tokens in order (most requests): a softmax over the
    // whole vocabulary, min-p as a threshold on it; no sort of 129k logits.
    float mx = logits[0];
    for (int64_t i = 1; i < n; ++i) mx = std::max(mx, logits[i]);
    const double floor = p.min_p > 0.0f ? static_cast<double>(p.min_p) : 0.0;
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      const double e = std::exp(static_cast<double>(logits[i] * inv_t - mx * inv_t));
      if (e >= floor) {
        probs[i] = static_cast<float>(e);
        sum += e;
      }
    }
    for (int64_t i = 0; i < n; ++i) probs[i] = static_cast<float>(probs[i] / sum);
    return;
  }
  std::vector<int32_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  int64_t keep = n;
  if (p.top_k > 0 && p.top_k < n) {
    keep = p.top_k;
    std::partial_sort(order.begin(), order.begin() + keep, order.end(),
                      [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
  } else {
    std::sort(order.begin(), order.end(),
              [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
  }
  const float mx = logits[order[0]] * inv_t;
  double sum = 0.0;
  std::vector<double> e(keep);
  for (int64_t i = 0; i < keep; ++i) {
    e[i] = std::exp(static_cast<double>(logits[order[i]] * inv_t - mx));
    sum += e[i];
  }
  if (p.min_p > 0.0f) {
    // e[0] is the most likely token's (relative) probability: keep those within min_p of it.
    const double floor = static_cast<double>(p.min_p) * e[0];
    int64_t cut = 1;
    while (cut < keep && e[cut] >= floor) ++cut;
    keep = cut;
    sum = std::accumulate(e.begin(), e.begin() + keep, 0.0);
  }
  if (p.top_p < 1.0f) {
    // Smallest prefix whose mass reaches top_p (at least one token).
    double acc = 0.0;
    int64_t cut = keep;
    for (int64_t i = 0; i < keep; ++i) {
      acc += e[i] / sum;
      if (acc >= p.top_p) { cut = i + 1; break; }
    }
    keep = cut;
    sum = std::accumulate(e.begin(), e.begin() + keep, 0.0);
  }
  for (int64_t i = 0; i < keep; ++i) probs[order[i]] = static_cast<float>(e[i] / sum);
}

void adjust_logits(float* logits, int64_t n, const LogitAdjustments& adj, const TokenHistory& history,
                   std::span<const int32_t> ahead) {
  for (const auto& [id, bias] : adj.logit_bias)
    if (id >= 0 && id < n) logits[id] += bias;
  const bool counted = adj.presence_penalty != 0.0f || adj.frequency_penalty != 0.0f;
  const bool repeat = adj.repetition_penalty != 1.0f;
  if (!counted && !repeat) return;
  // The generated counts with the tokens ahead (a few drafts) folded in.
  auto count_of = [&](int32_t id) {
    auto it = history.generated.find(id);
    int32_t c = it == history.generated.end() ? 0 : it->second;
    for (int32_t a : ahead) c += a == id;
    return c;
  };
  auto repetition = [&](int32_t id) {
    float& l = logits[id];
    l = l > 0.0f ? l / adj.repetition_penalty : l * adj.repetition_penalty;
  };
  auto penalize = [&](int32_t id, int32_t c) {
    logits[id] -= adj.presence_penalty + adj.frequency_penalty * static_cast<float>(c);
  };
  // Ahead tokens not generated before, each once.
  auto new_ahead = [&](size_t i) {
    const int32_t id = ahead[i];
    return id >= 0 && id < n && !history.generated.count(id) && std::find(ahead.begin(), ahead.begin() + i, id) == ahead.begin() + i;
  };
  // The repetition penalty first (vLLM's order), over every distinct token seen...
  if (repeat) {
    auto in_prompt = [&](int32_t id) { return std::binary_search(history.prompt.begin(), history.prompt.end(), id); };
    for (int32_t id : history.prompt)
      if (id >= 0 && id < n) repetition(id);
    for (const auto& [id, c] : history.generated)
      if (id >= 0 && id < n && !in_prompt(id)) repetition(id);
    for (size_t i = 0; i < ahead.size(); ++i)
      if (new_ahead(i) && !in_prompt(ahead[i])) repetition(ahead[i]);
  }
  // ...then presence and frequency over the generated ones.
  if (counted) {
    for (const auto& [id, c] : history.generated)
      if (id >= 0 && id < n) penalize(id, count_of(id));
    for (size_t i = 0; i < ahead.size(); ++i)
      if (new_ahead(i)) penalize(ahead[i], count_of(ahead[i]));
  }
}

int32_t Sampler::sample(const float* logits, int64_t n) {
  if (params_.greedy()) return argmax(logits, n);
  sampling_distribution(logits, n, params_, probs_);
  double u = uniform();
  for (int64_t i = 0; i < n; ++i) {
    u -= probs_[i];
    if (u < 0.0) return static_cast<int32_t>(i);
  }
  // Rounding left a sliver: take the last token with mass.
  for (int64_t i = n - 1; i >= 0; --i)
    if (probs_[i] > 0.0f) return static_cast<int32_t>(i);
  return 0;
}

}  // namespace moemesh::cpu

namespace moemesh::cpu {

Verdict verify_draft(const std::vector<float>& p, const std::vector<float>& q, int32_t draft, Sampler& rng) {
  const double pd = p.at(draft), qd = q.at(draft);
  if (qd > 0.0 && rng.uniform() * qd < pd) return {draft, true};
  // The residual distribution max(0, p - q), renormalised.
  double total = 0.0;
  for (size_t i = 0; i < p.size(); ++i) total += std::max(0.0, double(p[i]) - double(q[i]));
  if (total <= 0.0) return {draft, true};  // p == q: nothing to correct
  double u = rng.uniform() * total;
  int32_t last = draft;
  for (size_t i = 0; i < p.size(); ++i) {
    const double r = std::max(0.0, double(p[i]) - double(q[i]));
    if (r <= 0.0) continue;
    last = static_cast<int32_t>(i);
    u -= r;
    if (u < 0.0) return {last, false};
  }
  return {last, false};
}

}  // namespace moemesh::cpu
