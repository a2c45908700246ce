#include "model/moe_executor.h"

#include <algorithm>
#include <stdexcept>

namespace moemesh {

LocalMoe::LocalMoe(const ModelConfig& cfg, const Checkpoint& ckpt, const std::vector<int64_t>& layers)
    : cfg_(cfg) {
  for (int64_t l : layers) {
    gates_[l] = std::make_unique<MoeGate>(cfg, ckpt, l);
    experts_[l] = std::make_unique<ExpertSet>(cfg, ckpt, l, ExpertSet::all(cfg));
  }
}

void LocalMoe::routed(int64_t layer, const float* x, int64_t tokens, float* out) {
  auto g = gates_.find(layer);
  if (g == gates_.end()) throw std::out_of_range("no MoE layer " + std::to_string(layer) + " here");
  std::fill(out, out + tokens * cfg_.hidden_size, 0.0f);
  const Routing r = g->second->route(x, tokens);
  experts_.at(layer)->forward(x, r, out);
}

}  // namespace moemesh
