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

// A [rows, cols] matrix as the weight of a product.
LinearWeight matrix(DType t, int64_t rows, int64_t cols, const void* data) {
  LinearWeight w;
  w.w = {t, {rows, cols}, data};
  return w;
}

// The cached rows of a sequence's layer as products read them: one page (rows
// [p·S, p·S + rows)) at a time, straight from the cache for f32 and bf16, from
// `deq` (the layer's rows dequantised once per step) for fp8, whose scales are
// per position and part rather than 128×128 blocks.
struct CachedRows {
  const LatentKvCache& cache;
  SeqId seq;
  int64_t layer;
  const float* deq = nullptr;
  LinearWeight page(int64_t p, int64_t rows) const {
    const int64_t D = cache.dim();
    if (deq) return matrix(DType::F32, rows, D, deq + p * cache.page_tokens() * D);
    const auto pv = cache.page(seq, layer, p);
    return matrix(cache.dtype() == KvCacheDtype::F32 ? DType::F32 : DType::BF16, rows, D, pv.rows);
  }
};

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
  // fp8 pages dequantised once for both products below.
  CachedRows cached{cache, c.seq, layer};
  if (cache.dtype() == KvCacheDtype::FP8) {
    float* deq = ws.floats(L * D);
    for (int64_t j = 0; j < L; ++j) cache.load(c.seq, layer, j, deq + j * D);
    cached.deq = deq;
  }
  // Scores against every cached position, one page at a time.
  float* scores = ws.floats(HN * L);
  cpu::parallel_for(pages, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t rows = std::min(S, L - p * S);
      cpu::linear_rows_serial(qc, HN, D, cached.page(p, rows), 0, rows, scores + p * S, L, ctx.precision);
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
  // o_lat = P · cached rows, their latent columns only (not the rope ones).
  const int64_t R = lora_;
  float* o_lat = ws.floats(HN * R);
  float* part = ws.floats(HN * R);
  cpu::parallel_for(HN, 4, [&](int64_t r0, int64_t r1) {
    const int64_t nr = r1 - r0;
    std::fill(o_lat + r0 * R, o_lat + r1 * R, 0.0f);
    for (int64_t p = 0; p < pages; ++p) {
      const int64_t rows = std::min(S, L - p * S);
      cpu::linear_t(scores + r0 * L + p * S, nr, L, cached.page(p, rows), 0, rows, part + r0 * R, R, R);
      cpu::add_inplace(o_lat + r0 * R, part + r0 * R, nr * R);
    }
  });
  // attn[i, h, :] = W_vb[h] · o_lat[i, h, :]
  cpu::parallel_for(H_, 1, [&](int64_t h0, int64_t h1) {
    for (int64_t h = h0; h < h1; ++h) {
      const int64_t kb = h * (nope_ + v_);
      cpu::linear_rows_serial(o_lat + h * R, n, H_ * R, kv_b_, kb + nope_, kb + nope_ + v_,
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
  // Per head, as products: scores = Q·Kᵀ, causal softmax, out = P·V, with each
  // thread's keys, values and scores in its own part of the workspace.
  const int64_t per_thread = L * qk_ + L * v_ + n * L;
  float* scratch = ws.floats(cpu::num_threads() * per_thread);
  cpu::parallel_for(H_, 1, [&](int64_t h0, int64_t h1) {
    float* k = scratch + cpu::current_thread_index() * per_thread;
    float* v = k + L * qk_;
    float* s = v + L * v_;
    for (int64_t h = h0; h < h1; ++h) {
      for (int64_t j = 0; j < L; ++j) {
        const float* src = kvx + (j * H_ + h) * kvw;
        std::copy_n(src, nope_, k + j * qk_);
        std::copy_n(rows + j * D + lora_, rope_, k + j * qk_ + nope_);
        for (int64_t d = 0; d < v_; ++d) v[d * L + j] = src[nope_ + d];  // Vᵀ: out = P·V is a product
      }
      cpu::linear_rows_serial(q + c.row * qstride + h * qk_, n, qstride, matrix(DType::F32, L, qk_, k), 0, L, s, L,
                              ctx.precision);
      for (int64_t i = 0; i < n; ++i) {
        float* si = s + i * L;
        const int64_t visible = c.start + i + 1;
        for (int64_t j = 0; j < visible; ++j) si[j] *= scale_;
        cpu::softmax_inplace(si, visible);
        std::fill(si + visible, si + L, 0.0f);
      }
      cpu::linear_rows_serial(s, n, L, matrix(DType::F32, v_, L, v), 0, v_, attn + c.row * H_ * v_ + h * v_, H_ * v_,
                              ctx.precision);
    }
  });
}

}  // namespace moemesh
