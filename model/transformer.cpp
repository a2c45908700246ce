#include "model/transformer.h"

#include <stdexcept>

#include "kernels/cpu/linear.h"
#include "kernels/cpu/ops.h"
#include "model/weight_loader.h"

namespace moemesh {

void check_token_ids(const int32_t* tokens, int64_t n, int64_t vocab) {
  for (int64_t i = 0; i < n; ++i)
    if (tokens[i] < 0 || tokens[i] >= vocab)
      throw std::out_of_range("token id " + std::to_string(tokens[i]) + " is outside the vocabulary (0.." +
                              std::to_string(vocab - 1) + ")");
}

TokenEmbedding::TokenEmbedding(const Checkpoint& ckpt, const std::string& name, int64_t vocab, int64_t hidden)
    : table_(ckpt.get_float(name, {vocab, hidden})), vocab_(vocab), hidden_(hidden) {}

void TokenEmbedding::lookup(const int32_t* tokens, int64_t n, float* out) const {
  check_token_ids(tokens, n, vocab_);
  for (int64_t i = 0; i < n; ++i) {
    const size_t base = static_cast<size_t>(tokens[i]) * hidden_;
    for (int64_t d = 0; d < hidden_; ++d) out[i * hidden_ + d] = load_as_f32(table_.dtype, table_.data, base + d);
  }
}

Transformer::Transformer(const ModelConfig& cfg, const Checkpoint& ckpt)
    : cfg_(cfg),
      embed_(ckpt, "model.embed_tokens.weight", cfg.vocab_size, cfg.hidden_size),
      norm_(load_vector(ckpt, "model.norm.weight", cfg.hidden_size)),
      head_(load_linear(ckpt, "lm_head", cfg.vocab_size, cfg.hidden_size)) {
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) layers_.push_back(std::make_unique<DecoderLayer>(cfg, ckpt, l));
}

std::vector<int64_t> Transformer::moe_layers() const {
  std::vector<int64_t> v;
  for (const auto& l : layers_)
    if (l->is_moe()) v.push_back(l->index());
  return v;
}

void Transformer::forward(const int32_t* tokens, const std::vector<SeqChunk>& chunks, LatentKvCache& cache,
                          const ForwardContext& ctx, MoeExecutor* moe, float* h) const {
  const int64_t T = batch_rows(chunks), H = cfg_.hidden_size;
  {
    OpTimer t(ctx.profile, OpClass::Rest);
    embed_.lookup(tokens, T, h);
  }
  for (const auto& layer : layers_) layer->forward(h, chunks, cache, layer->index(), ctx, moe);
  OpTimer t(ctx.profile, OpClass::Norms);
  cpu::rmsnorm(h, T, H, norm_.data(), static_cast<float>(cfg_.rms_norm_eps), h);
}

void head_rows(const LinearWeight& head, const float* x, int64_t width, const std::vector<int64_t>& rows, float* out,
               const ForwardContext& ctx) {
  Workspace::Frame frame(*ctx.ws);
  OpTimer t(ctx.profile, OpClass::LmHead);
  float* g = ctx.ws->floats(rows.size() * width);
  for (size_t r = 0; r < rows.size(); ++r) std::copy(x + rows[r] * width, x + (rows[r] + 1) * width, g + r * width);
  cpu::linear(g, static_cast<int64_t>(rows.size()), head, out, ctx.precision);
}

void Transformer::logits(const float* normed, const std::vector<int64_t>& rows, float* out,
                         const ForwardContext& ctx) const {
  head_rows(head_, normed, cfg_.hidden_size, rows, out, ctx);
}

}  // namespace moemesh
