#include "model/experts.h"

#include <algorithm>
#include <stdexcept>

#include "kernels/cpu/ops.h"
#include "kernels/cpu/thread_pool.h"
#include "model/weight_loader.h"

namespace moemesh {

ExpertSet::ExpertSet(const ModelConfig& cfg, const Checkpoint& ckpt, int64_t layer,
                     const std::vector<int32_t>& experts)
    : hidden_(cfg.hidden_size) {
  for (int32_t e : experts) {
    if (e < 0 || e >= cfg.n_routed_experts)
      throw std::out_of_range("expert " + std::to_string(e) + " outside 0.." +
                              std::to_string(cfg.n_routed_experts - 1));
    const std::string p = layer_prefix(layer) + "mlp.experts." + std::to_string(e);
    experts_.emplace(e, SwigluMlp(ckpt, p, cfg.hidden_size, cfg.moe_intermediate_size));
  }
}

std::vector<int32_t> ExpertSet::all(const ModelConfig& cfg) {
  std::vector<int32_t> v(cfg.n_routed_experts);
  for (int32_t i = 0; i < cfg.n_routed_experts; ++i) v[i] = i;
  return v;
}

std::vector<int32_t> ExpertSet::ids() const {
  std::vector<int32_t> v;
  for (const auto& [e, _] : experts_) v.push_back(e);
  return v;
}

size_t ExpertSet::weight_bytes() const {
  size_t b = 0;
  for (const auto& [e, m] : experts_) b += m.weight_bytes();
  return b;
}

void ExpertSet::forward(const float* x, const Routing& r, float* out) const {
  // Group the tokens by expert, then run each expert once over its tokens.
  std::map<int32_t, std::vector<std::pair<int64_t, float>>> by_expert;
  for (int64_t t = 0; t < r.tokens; ++t)
    for (int64_t k = 0; k < r.top_k; ++k) {
      const int32_t e = r.experts[t * r.top_k + k];
      if (has(e)) by_expert[e].emplace_back(t, r.weights[t * r.top_k + k]);
    }
  std::vector<const std::pair<const int32_t, std::vector<std::pair<int64_t, float>>>*> work;
  for (const auto& kv : by_expert) work.push_back(&kv);
  std::vector<std::vector<float>> results(work.size());
  auto run = [&](size_t w) {
    const auto& [e, toks] = *work[w];
    const int64_t m = static_cast<int64_t>(toks.size());
    std::vector<float> xin(m * hidden_);
    results[w].resize(m * hidden_);
    for (int64_t i = 0; i < m; ++i)
      std::copy(x + toks[i].first * hidden_, x + (toks[i].first + 1) * hidden_, xin.begin() + i * hidden_);
    experts_.at(e).forward(xin.data(), m, hidden_, results[w].data());
  };
  // Few tokens per expert (decode): experts side by side, one per thread.
  // Many tokens: one expert at a time, each GEMM spread over the threads.
  int64_t max_tokens = 0;
  for (const auto* w : work) max_tokens = std::max<int64_t>(max_tokens, static_cast<int64_t>(w->second.size()));
  if (max_tokens <= 8) {
    cpu::parallel_for(static_cast<int64_t>(work.size()), 1, [&](int64_t b, int64_t e) {
      for (int64_t w = b; w < e; ++w) run(static_cast<size_t>(w));
    });
  } else {
    for (size_t w = 0; w < work.size(); ++w) run(w);
  }
  // Accumulate in ascending expert order, whatever ran where.
  for (size_t w = 0; w < work.size(); ++w) {
    const auto& toks = work[w]->second;
    for (size_t i = 0; i < toks.size(); ++i)
      cpu::axpy(toks[i].second, results[w].data() + i * hidden_, out + toks[i].first * hidden_, hidden_);
  }
}

}  // namespace moemesh
