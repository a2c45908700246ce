#include "model/mtp.h"

#include "kernels/cpu/linear.h"
#include "kernels/cpu/ops.h"
#include "model/weight_loader.h"

namespace moemesh {

MtpModule::MtpModule(const ModelConfig& cfg, const Checkpoint& ckpt, const Transformer* main)
    : cfg_(cfg), block_(cfg, ckpt, cfg.mtp_layer()) {
  const std::string p = layer_prefix(cfg.mtp_layer());
  const int64_t H = cfg.hidden_size;
  if (ckpt.has(p + "embed_tokens.weight")) {
    own_embed_.emplace(ckpt, p + "embed_tokens.weight", cfg.vocab_size, H);
    embed_ = &*own_embed_;
  } else {
    if (!main) throw CheckpointError("missing tensor '" + p + "embed_tokens.weight'");
    embed_ = &main->embedding();
  }
  if (ckpt.has(p + "shared_head.head.weight")) {
    head_ = load_linear(ckpt, p + "shared_head.head", cfg.vocab_size, H);
  } else {
    if (!main) throw CheckpointError("missing tensor '" + p + "shared_head.head.weight'");
    head_ = main->head();
  }
  load_rest(ckpt);
}

MtpModule::MtpModule(const ModelConfig& cfg, const Checkpoint& ckpt) : cfg_(cfg), block_(cfg, ckpt, cfg.mtp_layer()) {
  const std::string p = layer_prefix(cfg.mtp_layer());
  const int64_t H = cfg.hidden_size;
  const std::string embed = ckpt.has(p + "embed_tokens.weight") ? p + "embed_tokens.weight" : "model.embed_tokens.weight";
  own_embed_.emplace(ckpt, embed, cfg.vocab_size, H);
  embed_ = &*own_embed_;
  head_ = load_linear(ckpt, ckpt.has(p + "shared_head.head.weight") ? p + "shared_head.head" : "lm_head", cfg.vocab_size, H);
  load_rest(ckpt);
}

void MtpModule::load_rest(const Checkpoint& ckpt) {
  const std::string p = layer_prefix(cfg_.mtp_layer());
  const int64_t H = cfg_.hidden_size;
  enorm_ = load_vector(ckpt, p + "enorm.weight", H);
  hnorm_ = load_vector(ckpt, p + "hnorm.weight", H);
  head_norm_ = load_vector(ckpt, p + "shared_head.norm.weight", H);
  eh_proj_ = load_linear(ckpt, p + "eh_proj", H, 2 * H);
}

void MtpModule::forward(const int32_t* next_tokens, const float* prev_hidden, const std::vector<SeqChunk>& chunks,
                        LatentKvCache& cache, const ForwardContext& ctx, MoeExecutor* moe, float* h) const {
  Workspace::Frame frame(*ctx.ws);
  const int64_t T = batch_rows(chunks), H = cfg_.hidden_size;
  const float eps = static_cast<float>(cfg_.rms_norm_eps);
  // [enorm(embed(t_{i+1})), hnorm(h_i)] — embeddings first, as DeepSeek's MTP is served.
  float* cat = ctx.ws->floats(T * 2 * H);
  float* e = ctx.ws->floats(T * H);
  {
    OpTimer t(ctx.profile, OpClass::Rest);
    embed_->lookup(next_tokens, T, e);
  }
  {
    OpTimer t(ctx.profile, OpClass::Norms);
    cpu::rmsnorm(e, T, H, H, enorm_.data(), eps, cat, 2 * H);
    cpu::rmsnorm(prev_hidden, T, H, H, hnorm_.data(), eps, cat + H, 2 * H);
  }
  {
    OpTimer t(ctx.profile, OpClass::Rest);
    cpu::linear(cat, T, eh_proj_, h, ctx.precision);
  }
  block_.forward(h, chunks, cache, 0, ctx, moe);
}

void MtpModule::logits(const float* hidden, const std::vector<int64_t>& rows, float* out,
                       const ForwardContext& ctx) const {
  Workspace::Frame frame(*ctx.ws);
  const int64_t H = cfg_.hidden_size;
  float* n = ctx.ws->floats(rows.size() * H);
  {
    OpTimer t(ctx.profile, OpClass::Norms);
    for (size_t r = 0; r < rows.size(); ++r)
      cpu::rmsnorm(hidden + rows[r] * H, 1, H, head_norm_.data(), static_cast<float>(cfg_.rms_norm_eps), n + r * H);
  }
  OpTimer t(ctx.profile, OpClass::LmHead);
  cpu::linear(n, static_cast<int64_t>(rows.size()), head_, out, ctx.precision);
}

}  // namespace moemesh
