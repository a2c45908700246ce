#include "kernels/cpu/topk_gate.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "kernels/cpu/ops.h"

namespace moemesh::cpu {

GateParams GateParams::from_config(const ModelConfig& c) {
  GateParams p;
  p.n_experts = c.n_routed_experts;
  p.top_k = c.num_experts_per_tok;
  p.n_group = c.n_group;
  p.topk_group = c.topk_group;
  p.method = c.topk_method;
  p.scoring = c.scoring_func;
  p.normalize = c.norm_topk_prob && c.num_experts_per_tok > 1;
  p.scale = static_cast<float>(c.routed_scaling_factor);
  p.scale_always = c.model_type != "deepseek_v2";
  return p;
}

namespace {
// Indices of the k largest values, larger first, lower index first on ties.
void top_indices(const float* v, int64_t n, int64_t k, int32_t* out, std::vector<int32_t>& idx) {
  idx.resize(n);
  std::iota(idx.begin(), idx.end(), 0);
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int32_t a, int32_t b) {
    return v[a] > v[b] || (v[a] == v[b] && a < b);
  });
  std::copy(idx.begin(), idx.begin() + k, out);
}
}  // namespace

void route_tokens(const float* logits, int64_t tokens, const float* bias, const GateParams& p,
                  int32_t* indices, float* weights) {
  const int64_t E = p.n_experts;
  const int64_t per_group = E / p.n_group;
  // Reused across calls: routing a decode step allocates nothing.
  thread_local std::vector<float> scores, choice, group_score;
  thread_local std::vector<int32_t> scratch, groups;
  thread_local std::vector<char> keep;
  scores.resize(E);
  choice.resize(E);
  group_score.resize(p.n_group);
  groups.resize(p.topk_group);
  for (int64_t t = 0; t < tokens; ++t) {
    const float* l = logits + t * E;
    if (p.scoring == ScoringFunc::Sigmoid) {
      for (int64_t e = 0; e < E; ++e) scores[e] = 1.0f / (1.0f + std::exp(-l[e]));
    } else {
      std::copy(l, l + E, scores.begin());
      softmax_inplace(scores.data(), E);
    }
    for (int64_t e = 0; e < E; ++e) choice[e] = bias && p.method == TopkMethod::NoauxTc ? scores[e] + bias[e] : scores[e];
    if (p.method != TopkMethod::Greedy && p.n_group > 1) {
      for (int64_t g = 0; g < p.n_group; ++g) {
        const float* s = choice.data() + g * per_group;
        if (p.method == TopkMethod::NoauxTc) {
          // Sum of the two best experts of the group.
          float a = -std::numeric_limits<float>::infinity(), b = a;
          for (int64_t i = 0; i < per_group; ++i) {
            if (s[i] > a) { b = a; a = s[i]; } else if (s[i] > b) { b = s[i]; }
          }
          group_score[g] = a + b;
        } else {
          group_score[g] = *std::max_element(s, s + per_group);
        }
      }
      top_indices(group_score.data(), p.n_group, p.topk_group, groups.data(), scratch);
      keep.assign(p.n_group, 0);
      for (int32_t g : groups) keep[g] = 1;
      for (int64_t g = 0; g < p.n_group; ++g)
        if (!keep[g])
          std::fill(choice.begin() + g * per_group, choice.begin() + (g + 1) * per_group,
                    -std::numeric_limits<float>::infinity());
    }
    int32_t* ind = indices + t * p.top_k;
    float* w = weights + t * p.top_k;
    top_indices(choice.data(), E, p.top_k, ind, scratch);
    float sum = 0.0f;
    for (int64_t k = 0; k < p.top_k; ++k) {
      w[k] = scores[ind[k]];
      sum += w[k];
    }
    const bool scale = p.scale_always || !p.normalize;
    for (int64_t k = 0; k < p.top_k; ++k) {
      if (p.normalize) w[k] /= sum;
      if (scale) w[k] *= p.scale;
    }
  }
}

}  // namespace moemesh::cpu
