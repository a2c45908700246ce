#include "model/mla.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/cpu/linear.h"
#include "kernels/cpu/linear_t.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/thread_pool.h"
#include "model/weight_loader.h"

namespace moemesh {
namespace {
// Threshold above which Auto mode expands keys/values (prefill) instead of absorbing.
constexpr int64_t kNaiveMinChunk = 8;

// One cache page as the weight of a product: rows are positions, columns the
// latent and rope values. fp8 pages are dequantised into `scratch` first (their
// scales are per position and part, not 128×128 blocks).
LinearWeight page_weight(const LatentKvCache& cache, const LatentKvCache::PageView& pv, int64_t rows,
                         std::vector<float>& scratch) {
  const int64_t D = cache.dim();
  LinearWeight w;
  switch (cache.dtype()) {
    case KvCacheDtype::F32: w.w = {DType::F32, {rows, D}, pv.rows}; break;
    case KvCacheDtype::BF16: w.w = {DType::BF16, {rows, D}, pv.rows}; break;
    case KvCacheDtype::FP8: {
      if (scratch.size() < static_cast<size_t>(rows * D)) scratch.resize(rows * D);
      const uint8_t* b = static_cast<const uint8_t*>(pv.rows);
      const int64_t lat = cache.latent_dim();
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t d = 0; d < D; ++d)
          scratch[r * D + d] = fp8e4m3_to_f32(b[r * D + d]) * pv.scales[2 * r + (d < lat ? 0 : 1)];
      w.w = {DType::F32, {rows, D}, scratch.data()};
      break;
    }
  }
  return w;
}
}  // namespace

MlaLayer::MlaLayer(const ModelConfig& cfg, const Checkpoint& ckpt, const std::string& p)
    : cfg_(cfg),
      H_(cfg.num_attention_heads),
      nope_(cfg.qk_nope_head_dim),
      rope_(cfg.qk_rope_head_dim),
      v_(cfg.v_head_dim),
      lora_(cfg.kv_lora_rank),
      qk_(cfg.qk_head_dim()),
      scale_(static_cast<float>(cfg.softmax_scale())),
      rope_table_(cfg) {
  const int64_t hid = cfg.hidden_size;
  if (cfg.q_lora_rank > 0) {
    q_a_ = load_linear(ckpt, p + ".q_a_proj", cfg.q_lora_rank, hid);
    q_a_norm_ = load_vector(ckpt, p + ".q_a_layernorm.weight", cfg.q_lora_rank);
    q_b_ = load_linear(ckpt, p + ".q_b_proj", H_ * qk_, cfg.q_lora_rank);
  } else {
    q_ = load_linear(ckpt, p + ".q_proj", H_ * qk_, hid);
  }
  kv_a_ = load_linear(ckpt, p + ".kv_a_proj_with_mqa", lora_ + rope_, hid);
  kv_a_norm_ = load_vector(ckpt, p + ".kv_a_layernorm.weight", lora_);
  kv_b_ = load_linear(ckpt, p + ".kv_b_proj", H_ * (nope_ + v_), lora_);
  o_ = load_linear(ckpt, p + ".o_proj", hid, H_ * v_);
}

void MlaLayer::forward(const float* x, const std::vector<SeqChunk>& chunks, LatentKvCache& cache, int64_t layer,
                       const ForwardContext& ctx, float* out) const {
  Workspace& ws = *ctx.ws;
  Workspace::Frame frame(ws);
  const int64_t T = batch_rows(chunks), D = lora_ + rope_;
  const float eps = static_cast<float>(cfg_.rms_norm_eps);

  float* q = ws.floats(T * H_ * qk_);
  float* kv = ws.floats(T * D);
  if (cfg_.q_lora_rank > 0) {
    float* qa = ws.floats(T * cfg_.q_lora_rank);
    {
      OpTimer t(ctx.profile, OpClass::AttentionProjections);
      cpu::linear(x, T, q_a_, qa, ctx.precision);
    }
    {
      OpTimer t(ctx.profile, OpClass::Norms);
      cpu::rmsnorm(qa, T, cfg_.q_lora_rank, q_a_norm_.data(), eps, qa);
    }
    OpTimer t(ctx.profile, OpClass::AttentionProjections);
    cpu::linear(qa, T, q_b_, q, ctx.precision);
  } else {
    OpTimer t(ctx.profile, OpClass::AttentionProjections);
    cpu::linear(x, T, q_, q, ctx.precision);
  }
  {
    OpTimer t(ctx.profile, OpClass::AttentionProjections);
    cpu::linear(x, T, kv_a_, kv, ctx.precision);
  }
  {
    OpTimer n(ctx.profile, OpClass::Norms);
    cpu::rmsnorm(kv, T, lora_, D, kv_a_norm_.data(), eps, kv, D);
  }
  float* attn = ws.floats(T * H_ * v_);
  {
    OpTimer t(ctx.profile, OpClass::MlaCore);
    for (const SeqChunk& c : chunks) {
      for (int64_t i = 0; i < c.len; ++i) {
        const int64_t r = c.row + i, pos = c.start + i;
        rope_table_.apply(q + r * H_ * qk_ + nope_, H_, qk_, pos);
        float* k = kv + r * D;
        rope_table_.apply(k + lora_, 1, rope_, pos);
        cache.store(c.seq, layer, pos, k);
      }
    }
    for (const SeqChunk& c : chunks) {
      const bool naive = ctx.mla == MlaMode::Naive || (ctx.mla == MlaMode::Auto && c.len >= kNaiveMinChunk);
      if (naive) attend_naive(c, q, cache, layer, ctx, attn);
      else attend_absorbed(c, q, cache, layer, ctx, attn);
    }
  }
  OpTimer t(ctx.profile, OpClass::AttentionProjections);
  cpu::linear(attn, T, o_, out, ctx.precision);
}

void MlaLayer::attend_absorbed(const SeqChunk& c, const float* q, const LatentKvCache& cache, int64_t layer,
                               const ForwardContext& ctx, float* attn) const {
  Workspace& ws = *ctx.ws;
  Workspace::Frame frame(ws);
  const int64_t n = c.len, L = c.start + c.len, D = lora_ + rope_, HN = n * H_;
  const int64_t qstride = H_ * qk_, S = cache.page_tokens(), pages = cache.pages_for(L);
  // qc[(i·H + h)] = [q_nope[i, h] · W_kb[h] | q_pe[i, h]]: a query against whole cache rows.
  float* qc = ws.floats(HN * D);
  cpu::parallel_for(H_, 1, [&](int64_t h0, int64_t h1) {
    for (int64_t h = h0; h < h1; ++h) {
      const int64_t kb = h * (nope_ + v_);
      cpu::linear_t(q + c.row * qstride + h * qk_, n, qstride, kv_b_, kb, kb + nope_, qc + h * D, H_ * D);
      for (int64_t i = 0; i < n; ++i)
        std::copy_n(q + (c.row + i) * qstride + h * qk_ + nope_, rope_, qc + (i * H_ + h) * D + lora_);
    }
  });
  // Scores against every cached position, one page at a time.
  float* scores = ws.floats(HN * L);
  cpu::parallel_for(pages, 1, [&](int64_t p0, int64_t p1) {
    thread_local std::vector<float> scratch;
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t rows = std::min(S, L - p * S);
      const LinearWeight kw = page_weight(cache, cache.page(c.seq, layer, p), rows, scratch);
      cpu::linear_rows_serial(qc, HN, D, kw, 0, rows, scores + p * S, L, ctx.precision);
    }
  });
  // Causal softmax: query i sees positions 0 .. start + i.
  cpu::parallel_for(HN, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      float* s = scores + r * L;
      const int64_t visible = c.start + r / H_ + 1;
      for (int64_t j = 0; j < visible; ++j) s[j] *= scale_;
      cpu::softmax_inplace(s, visible);
      std::fill(s + visible, s + L, 0.0f);
    }
  });
  // o_lat = P · cached rows (the rope columns come along and are ignored).
  float* o_lat = ws.floats(HN * D);
  cpu::parallel_for(HN, 4, [&](int64_t r0, int64_t r1) {
    thread_local std::vector<float> scratch, part;
    const int64_t nr = r1 - r0;
    if (part.size() < static_cast<size_t>(nr * D)) part.resize(nr * D);
    std::fill(o_lat + r0 * D, o_lat + r1 * D, 0.0f);
    for (int64_t p = 0; p < pages; ++p) {
      const int64_t rows = std::min(S, L - p * S);
      const LinearWeight kw = page_weight(cache, cache.page(c.seq, layer, p), rows, scratch);
      cpu::linear_t(scores + r0 * L + p * S, nr, L, kw, 0, rows, part.data(), D);
      cpu::add_inplace(o_lat + r0 * D, part.data(), nr * D);
    }
  });
  // attn[i, h, :] = W_vb[h] · o_lat[i, h, :lora]
  cpu::parallel_for(H_, 1, [&](int64_t h0, int64_t h1) {
    for (int64_t h = h0; h < h1; ++h) {
      const int64_t kb = h * (nope_ + v_);
      cpu::linear_rows_serial(o_lat + h * D, n, H_ * D, kv_b_, kb + nope_, kb + nope_ + v_,
                              attn + c.row * H_ * v_ + h * v_, H_ * v_, ctx.precision);
    }
  });
}

void MlaLayer::attend_naive(const SeqChunk& c, const float* q, const LatentKvCache& cache, int64_t layer,
                            const ForwardContext& ctx, float* attn) const {
  Workspace& ws = *ctx.ws;
  Workspace::Frame frame(ws);
  const int64_t L = c.start + c.len, D = lora_ + rope_, n = c.len;
  const int64_t qstride = H_ * qk_;
  const int64_t kvw = nope_ + v_;
  // Expand every cached latent into this layer's keys and values.
  float* rows = ws.floats(L * D);
  float* kvx = ws.floats(L * H_ * kvw);
  for (int64_t j = 0; j < L; ++j) cache.load(c.seq, layer, j, rows + j * D);
  cpu::linear(rows, L, D, kv_b_, kvx, H_ * kvw, ctx.precision);
  // Per head, as products: scores = Q·Kᵀ, causal softmax, out = P·V.
  cpu::parallel_for(H_, 1, [&](int64_t h0, int64_t h1) {
    thread_local std::vector<float> k, v, s;
    if (k.size() < static_cast<size_t>(L * qk_)) k.resize(L * qk_);
    if (v.size() < static_cast<size_t>(L * v_)) v.resize(L * v_);
    if (s.size() < static_cast<size_t>(n * L)) s.resize(n * L);
    for (int64_t h = h0; h < h1; ++h) {
      for (int64_t j = 0; j < L; ++j) {
        const float* src = kvx + (j * H_ + h) * kvw;
        std::copy_n(src, nope_, k.data() + j * qk_);
        std::copy_n(rows + j * D + lora_, rope_, k.data() + j * qk_ + nope_);
        std::copy_n(src + nope_, v_, v.data() + j * v_);
      }
      LinearWeight kw, vw;
      kw.w = {DType::F32, {L, qk_}, k.data()};
      vw.w = {DType::F32, {L, v_}, v.data()};
      cpu::linear_rows_serial(q + c.row * qstride + h * qk_, n, qstride, kw, 0, L, s.data(), L, ctx.precision);
      for (int64_t i = 0; i < n; ++i) {
        float* si = s.data() + i * L;
        const int64_t visible = c.start + i + 1;
        for (int64_t j = 0; j < visible; ++j) si[j] *= scale_;
        cpu::softmax_inplace(si, visible);
        std::fill(si + visible, si + L, 0.0f);
      }
      cpu::linear_t(s.data(), n, L, vw, 0, L, attn + c.row * H_ * v_ + h * v_, H_ * v_);
    }
  });
}

}  // namespace moemesh
