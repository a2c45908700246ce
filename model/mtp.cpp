#include "model/mtp.h"

#include <cstring>
#include <limits>

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
  if (auto v = load_draft_vocab(ckpt.dir(), cfg_.vocab_size)) gather_draft_head(*v);
}

void MtpModule::gather_draft_head(const DraftVocab& v) {
  const int64_t H = cfg_.hidden_size, N = static_cast<int64_t>(v.ids.size());
  // Unscaled rows are copied as they are, so a draft logit is the full head's (up
  // to the order of its sums);
  // block scales do not survive a gather, so fp8 rows become bf16 of their real values.
  const DType t = head_.block_scaled() ? DType::BF16 : head_.w.dtype;
  const size_t row_bytes = static_cast<size_t>(H) * dtype_size(t);
  draft_head_data_.resize(static_cast<size_t>(N) * row_bytes);
  std::vector<float> row(static_cast<size_t>(H));
  for (int64_t r = 0; r < N; ++r) {
    uint8_t* dst = draft_head_data_.data() + static_cast<size_t>(r) * row_bytes;
    const int64_t o = v.ids[static_cast<size_t>(r)];
    if (!head_.block_scaled()) {
      std::memcpy(dst, head_.w.bytes() + static_cast<size_t>(o) * row_bytes, row_bytes);
      continue;
    }
    for (int64_t k = 0; k < H; ++k) {
      const uint16_t b = f32_to_bf16(head_.at(o, k));
      std::memcpy(dst + 2 * k, &b, 2);
    }
  }
  draft_ids_ = v.ids;
  draft_source_ = v.source;
  draft_head_ = {};
  draft_head_.w = {t, {N, H}, draft_head_data_.data()};
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

void MtpModule::logits(const float* hidden, const std::vector<int64_t>& rows, float* out, const ForwardContext& ctx,
                       bool draft) const {
  Workspace::Frame frame(*ctx.ws);
  const int64_t H = cfg_.hidden_size;
  float* n = ctx.ws->floats(rows.size() * H);
  {
    OpTimer t(ctx.profile, OpClass::Norms);
    for (size_t r = 0; r < rows.size(); ++r)
      cpu::rmsnorm(hidden + rows[r] * H, 1, H, head_norm_.data(), static_cast<float>(cfg_.rms_norm_eps), n + r * H);
  }
  OpTimer t(ctx.profile, OpClass::LmHead);
  const int64_t R = static_cast<int64_t>(rows.size());
  if (!draft || draft_ids_.empty()) return cpu::linear(n, R, head_, out, ctx.precision);
  const int64_t V = cfg_.vocab_size, N = static_cast<int64_t>(draft_ids_.size());
  float* part = ctx.ws->floats(R * N);
  cpu::linear(n, R, draft_head_, part, ctx.precision);
  for (int64_t r = 0; r < R; ++r) {
    float* o = out + r * V;
    std::fill(o, o + V, -std::numeric_limits<float>::infinity());
    for (int64_t i = 0; i < N; ++i) o[draft_ids_[static_cast<size_t>(i)]] = part[r * N + i];
  }
}

}  // namespace moemesh
