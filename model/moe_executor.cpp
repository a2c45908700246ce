#include "model/moe_executor.h"

#include <algorithm>
#include <chrono>
#include <stdexcept>

namespace moemesh {

LocalMoe::LocalMoe(const ModelConfig& cfg, const Checkpoint& ckpt, const std::vector<int64_t>& layers) : cfg_(cfg) {
  for (int64_t l : layers) {
    gates_[l] = std::make_unique<MoeGate>(cfg, ckpt, l);
    experts_[l] = std::make_unique<ExpertSet>(cfg, ckpt, l, ExpertSet::all(cfg));
  }
}

void LocalMoe::routed(int64_t layer, const float* x, int64_t tokens, float* out) {
  auto g = gates_.find(layer);
  if (g == gates_.end()) throw std::out_of_range("no MoE layer " + std::to_string(layer) + " here");
  ForwardContext own;
  own.ws = &own_ws_;
  const ForwardContext& ctx = ctx_ ? *ctx_ : own;
  std::fill(out, out + tokens * cfg_.hidden_size, 0.0f);
  const auto t0 = std::chrono::steady_clock::now();
  g->second->route(x, tokens, routing_, logits_);
  if (ctx.profile) {
    // The caller charges this whole call to the routed experts; the gate is its own class.
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ctx.profile->add(OpClass::Gate, s);
    ctx.profile->add(OpClass::RoutedExperts, -s);
  }
  experts_.at(layer)->forward(x, routing_, out, ctx);
}

}  // namespace moemesh
