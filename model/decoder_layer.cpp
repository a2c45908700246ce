#include "model/decoder_layer.h"

#include <stdexcept>

#include "kernels/cpu/ops.h"
#include "model/weight_loader.h"

namespace moemesh {

DecoderLayer::DecoderLayer(const ModelConfig& cfg, const Checkpoint& ckpt, int64_t layer)
    : cfg_(cfg),
      layer_(layer),
      moe_(cfg.is_moe_layer(layer)),
      input_norm_(load_vector(ckpt, layer_prefix(layer) + "input_layernorm.weight", cfg.hidden_size)),
      post_norm_(load_vector(ckpt, layer_prefix(layer) + "post_attention_layernorm.weight", cfg.hidden_size)),
      attn_(cfg, ckpt, layer_prefix(layer) + "self_attn") {
  const std::string mlp = layer_prefix(layer) + "mlp";
  if (!moe_) {
    dense_.emplace(ckpt, mlp, cfg.hidden_size, cfg.intermediate_size);
  } else if (cfg.n_shared_experts > 0) {
    shared_.emplace(ckpt, mlp + ".shared_experts", cfg.hidden_size,
                    cfg.moe_intermediate_size * cfg.n_shared_experts);
  }
}

void DecoderLayer::forward(float* h, const std::vector<SeqChunk>& chunks, LatentKvCache& cache,
                           int64_t cache_layer, MlaMode mode, MoeExecutor* moe) const {
  const int64_t T = batch_rows(chunks);
  const int64_t H = cfg_.hidden_size;
  const float eps = static_cast<float>(cfg_.rms_norm_eps);
  std::vector<float> x(T * H), y(T * H);
  cpu::rmsnorm(h, T, H, input_norm_.data(), eps, x.data());
  attn_.forward(x.data(), chunks, cache, cache_layer, mode, y.data());
  cpu::add_inplace(h, y.data(), T * H);

  cpu::rmsnorm(h, T, H, post_norm_.data(), eps, x.data());
  if (dense_) {
    dense_->forward(x.data(), T, H, y.data());
    cpu::add_inplace(h, y.data(), T * H);
    return;
  }
  if (!moe) throw std::logic_error("MoE layer " + std::to_string(layer_) + " run without an expert executor");
  // The shared expert runs while the routed experts are away (in the mesh).
  moe->begin(layer_, x.data(), T);
  std::vector<float> z;
  if (shared_) {
    z.resize(T * H);
    shared_->forward(x.data(), T, H, z.data());
  }
  moe->end(y.data());
  // Routed and shared outputs are summed before the residual, as the reference does.
  if (shared_) cpu::add_inplace(y.data(), z.data(), T * H);
  cpu::add_inplace(h, y.data(), T * H);
}

}  // namespace moemesh
