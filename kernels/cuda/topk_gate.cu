// MoE routing, one thread per token, in the same order of operations as
// cpu::route_tokens (so ties and sums come out the same).
#include <stdexcept>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_backend.h"

namespace moemesh::cuda {
namespace {

constexpr int kMaxGroups = 64;
constexpr int kMethodGreedy = 0, kMethodNoauxTc = 2;

// The k largest of v[0..n) (larger first, lower index on ties) into out.
// `taken` is scratch of n flags.
__device__ void top_indices(const float* v, int n, int k, int32_t* out, bool* taken) {
  for (int i = 0; i < n; ++i) taken[i] = false;
  for (int j = 0; j < k; ++j) {
    int best = -1;
    for (int i = 0; i < n; ++i)
      if (!taken[i] && (best < 0 || v[i] > v[best])) best = i;
    taken[best] = true;
    out[j] = best;
  }
}

__global__ void route_kernel(const float* logits, int64_t tokens, const float* bias, GateArgs p, int32_t* indices,
                             float* weights) {
  const int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (t >= tokens) return;
  const int E = p.n_experts;
  float scores[kMaxGateExperts], choice[kMaxGateExperts];
  bool taken[kMaxGateExperts];
  const float* l = logits + t * E;
  if (p.sigmoid) {
    for (int e = 0; e < E; ++e) scores[e] = 1.0f / (1.0f + expf(-l[e]));
  } else {
    float mx = -INFINITY;
    for (int e = 0; e < E; ++e) mx = fmaxf(mx, l[e]);
    float sum = 0.0f;
    for (int e = 0; e < E; ++e) {
      scores[e] = expf(l[e] - mx);
      sum += scores[e];
    }
    const float inv = 1.0f / sum;
    for (int e = 0; e < E; ++e) scores[e] *= inv;
  }
  for (int e = 0; e < E; ++e) choice[e] = bias && p.method == kMethodNoauxTc ? scores[e] + bias[e] : scores[e];
  if (p.method != kMethodGreedy && p.n_group > 1) {
    const int per_group = E / p.n_group;
    float group_score[kMaxGroups];
    int32_t groups[kMaxGroups];
    for (int g = 0; g < p.n_group; ++g) {
      const float* s = choice + g * per_group;
      float a = -INFINITY, b = -INFINITY;
      for (int i = 0; i < per_group; ++i) {
        if (p.method == kMethodNoauxTc) {  // the sum of the group's two best
          if (s[i] > a) { b = a; a = s[i]; } else if (s[i] > b) { b = s[i]; }
        } else if (s[i] > a) {
          a = s[i];
        }
      }
      group_score[g] = p.method == kMethodNoauxTc ? a + b : a;
    }
    top_indices(group_score, p.n_group, p.topk_group, groups, taken);
    for (int g = 0; g < p.n_group; ++g) {
      bool keep = false;
      for (int j = 0; j < p.topk_group; ++j) keep = keep || groups[j] == g;
      if (!keep)
        for (int i = 0; i < per_group; ++i) choice[g * per_group + i] = -INFINITY;
    }
  }
  int32_t* ind = indices + t * p.top_k;
  float* w = weights + t * p.top_k;
  top_indices(choice, E, p.top_k, ind, taken);
  float sum = 0.0f;
  for (int k = 0; k < p.top_k; ++k) {
    w[k] = scores[ind[k]];
    sum += w[k];
  }
  const bool scale = p.scale_always || !p.normalize;
  for (int k = 0; k < p.top_k; ++k) {
    if (p.normalize) w[k] /= sum;
    if (scale) w[k] *= p.scale;
  }
}

}  // namespace

void route_tokens(const float* logits, int64_t tokens, const float* bias, const GateArgs& p, int32_t* indices,
                  float* weights, Stream s) {
  if (p.n_experts <= 0 || p.n_experts > kMaxGateExperts || p.n_group < 1 || p.n_group > kMaxGroups ||
      p.n_experts % p.n_group != 0 || p.topk_group < 1 || p.topk_group > p.n_group || p.top_k < 1 ||
      p.top_k > p.n_experts)
    throw std::invalid_argument("cuda::route_tokens: unsupported gate shape");
  if (tokens <= 0) return;
  constexpr int threads = 64;  // large per-thread arrays: small blocks
  route_kernel<<<detail::blocks_for(tokens, threads), threads, 0, detail::stream(s)>>>(logits, tokens, bias, p,
                                                                                       indices, weights);
  MOEMESH_CUDA_LAUNCHED();
}

}  // namespace moemesh::cuda
