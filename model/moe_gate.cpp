#include "model/moe_gate.h"

#include "kernels/cpu/linear.h"
#include "kernels/cpu/thread_pool.h"
#include "model/weight_loader.h"

namespace moemesh {

MoeGate::MoeGate(const ModelConfig& cfg, const Checkpoint& ckpt, int64_t layer)
    : params_(cpu::GateParams::from_config(cfg)) {
  const std::string p = layer_prefix(layer) + "mlp.gate";
  weight_ = load_linear(ckpt, p, cfg.n_routed_experts, cfg.hidden_size);
  if (weight_.block_scaled()) throw CheckpointError("tensor '" + p + ".weight': the gate must not be fp8");
  if (cfg.topk_method == TopkMethod::NoauxTc)
    bias_ = load_vector(ckpt, p + ".e_score_correction_bias", cfg.n_routed_experts);
}

Routing MoeGate::route(const float* x, int64_t tokens) const {
  Routing r;
  std::vector<float> logits;
  route(x, tokens, r, logits);
  return r;
}

void MoeGate::route(const float* x, int64_t tokens, Routing& r, std::vector<float>& logits) const {
  r.tokens = tokens;
  r.top_k = params_.top_k;
  // Gate logits stay exact: expert choice must not depend on the precision setting.
  logits.resize(tokens * params_.n_experts);
  cpu::linear(x, tokens, weight_, logits.data());
  r.experts.resize(tokens * r.top_k);
  r.weights.resize(tokens * r.top_k);
  const int64_t E = params_.n_experts, k = r.top_k;
  cpu::parallel_for(tokens, 16, [&](int64_t b, int64_t e) {
    cpu::route_tokens(logits.data() + b * E, e - b, bias_.empty() ? nullptr : bias_.data(), params_,
                      r.experts.data() + b * k, r.weights.data() + b * k);
  });
}

}  // namespace moemesh
