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
    shared_.emplace(ckpt, mlp + ".shared_experts", cfg.hidden_size, cfg.moe_intermediate_size * cfg.n_shared_experts);
  }
}

void DecoderLayer::forward(float* h, const std::vector<SeqChunk>& chunks, LatentKvCache& cache, int64_t cache_layer,
                           const ForwardContext& ctx, MoeExecutor* moe) const {
  Workspace& ws = *ctx.ws;
  Workspace::Frame frame(ws);
  const int64_t T = batch_rows(chunks);
  const int64_t H = cfg_.hidden_size;
  const float eps = static_cast<float>(cfg_.rms_norm_eps);
  float* x = ws.floats(T * H);
  float* y = ws.floats(T * H);
  {
    OpTimer t(ctx.profile, OpClass::Norms);
    cpu::rmsnorm(h, T, H, input_norm_.data(), eps, x);
  }
  attn_.forward(x, chunks, cache, cache_layer, ctx, y);
  {
    OpTimer t(ctx.profile, OpClass::Rest);
    cpu::add_inplace(h, y, T * H);
  }
  {
    OpTimer t(ctx.profile, OpClass::Norms);
    cpu::rmsnorm(h, T, H, post_norm_.data(), eps, x);
  }
  if (dense_) {
    {
      OpTimer t(ctx.profile, OpClass::DenseFfn);
      dense_->forward(x, T, H, y, ctx);
    }
    OpTimer t(ctx.profile, OpClass::Rest);
    cpu::add_inplace(h, y, T * H);
    return;
  }
  if (!moe) throw std::logic_error("MoE layer " + std::to_string(layer_) + " run without an expert executor");
  // The shared expert runs while the routed experts are away (in the mesh).
  moe->set_context(&ctx);
  struct Unset {
    MoeExecutor* m;
    ~Unset() { m->set_context(nullptr); }
  } unset{moe};
  float* z = shared_ ? ws.floats(T * H) : nullptr;
  {
    OpTimer t(ctx.profile, OpClass::RoutedExperts);
    moe->begin(layer_, x, T);
  }
  if (shared_) {
    OpTimer t(ctx.profile, OpClass::SharedExperts);
    shared_->forward(x, T, H, z, ctx);
  }
  {
    OpTimer t(ctx.profile, OpClass::RoutedExperts);
    moe->end(y);
  }
  // Routed and shared outputs are summed before the residual, as the reference does.
  OpTimer t(ctx.profile, OpClass::Rest);
  if (shared_) cpu::add_inplace(y, z, T * H);
  cpu::add_inplace(h, y, T * H);
}

}  // namespace moemesh
