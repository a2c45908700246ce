#include "model/mla.h"

#include <cmath>
#include <limits>

#include "kernels/cpu/linear.h"
#include "kernels/cpu/linear_t.h"
#include "kernels/cpu/multiversion.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/thread_pool.h"
#include "model/weight_loader.h"

namespace moemesh {
namespace {
// Threshold above which Auto mode expands keys/values (prefill) instead of absorbing.
constexpr int64_t kNaiveMinChunk = 8;

MOEMESH_MULTIVERSION float dot_bf16(const float* a, const uint16_t* b, int64_t n) {
  float s[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) s[k] += a[i + k] * bf16_to_f32(b[i + k]);
  float t = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
  for (; i < n; ++i) t += a[i] * bf16_to_f32(b[i]);
  return t;
}

MOEMESH_MULTIVERSION void axpy_bf16(float a, const uint16_t* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * bf16_to_f32(x[i]);
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

void MlaLayer::forward(const float* x, const std::vector<SeqChunk>& chunks, LatentKvCache& cache,
                       int64_t layer, MlaMode mode, float* out) const {
  const int64_t T = batch_rows(chunks);
  const float eps = static_cast<float>(cfg_.rms_norm_eps);

  std::vector<float> q(T * H_ * qk_);
  if (cfg_.q_lora_rank > 0) {
    std::vector<float> qa(T * cfg_.q_lora_rank);
    cpu::linear(x, T, q_a_, qa.data());
    cpu::rmsnorm(qa.data(), T, cfg_.q_lora_rank, q_a_norm_.data(), eps, qa.data());
    cpu::linear(qa.data(), T, q_b_, q.data());
  } else {
    cpu::linear(x, T, q_, q.data());
  }
  std::vector<float> kv(T * (lora_ + rope_));
  cpu::linear(x, T, kv_a_, kv.data());
  cpu::rmsnorm(kv.data(), T, lora_, lora_ + rope_, kv_a_norm_.data(), eps, kv.data(), lora_ + rope_);

  for (const SeqChunk& c : chunks) {
    for (int64_t i = 0; i < c.len; ++i) {
      const int64_t r = c.row + i, pos = c.start + i;
      rope_table_.apply(q.data() + r * H_ * qk_ + nope_, H_, qk_, pos);
      float* k = kv.data() + r * (lora_ + rope_);
      rope_table_.apply(k + lora_, 1, rope_, pos);
      uint16_t* dst = cache.row(c.seq, layer, pos);
      for (int64_t d = 0; d < lora_ + rope_; ++d) dst[d] = f32_to_bf16(k[d]);
    }
  }

  std::vector<float> attn(T * H_ * v_);
  for (const SeqChunk& c : chunks) {
    const bool naive = mode == MlaMode::Naive || (mode == MlaMode::Auto && c.len >= kNaiveMinChunk);
    if (naive) attend_naive(c, q.data(), cache, layer, attn.data());
    else attend_absorbed(c, q.data(), cache, layer, attn.data());
  }
  cpu::linear(attn.data(), T, o_, out);
}

void MlaLayer::attend_absorbed(const SeqChunk& c, const float* q, const LatentKvCache& cache,
                               int64_t layer, float* attn) const {
  const int64_t L = c.start + c.len;
  const int64_t qstride = H_ * qk_;
  // q_lat[i, h, :] = q_nope[i, h, :] · W_kb[h]  (kv_b's key rows of head h)
  std::vector<float> q_lat(c.len * H_ * lora_);
  std::vector<float> o_lat(c.len * H_ * lora_);
  std::vector<const uint16_t*> rows(L);
  for (int64_t j = 0; j < L; ++j) rows[j] = cache.row(c.seq, layer, j);
  cpu::parallel_for(H_, 1, [&](int64_t h0, int64_t h1) {
    std::vector<float> scores(L);
    for (int64_t h = h0; h < h1; ++h) {
      const int64_t kb = h * (nope_ + v_);
      cpu::linear_t(q + c.row * qstride + h * qk_, c.len, qstride, kv_b_, kb, kb + nope_,
                    q_lat.data() + h * lora_, H_ * lora_);
      for (int64_t i = 0; i < c.len; ++i) {
        const float* ql = q_lat.data() + (i * H_ + h) * lora_;
        const float* qp = q + (c.row + i) * qstride + h * qk_ + nope_;
        const int64_t n = c.start + i + 1;
        for (int64_t j = 0; j < n; ++j)
          scores[j] = (dot_bf16(ql, rows[j], lora_) + dot_bf16(qp, rows[j] + lora_, rope_)) * scale_;
        cpu::softmax_inplace(scores.data(), n);
        float* ol = o_lat.data() + (i * H_ + h) * lora_;
        std::fill(ol, ol + lora_, 0.0f);
        for (int64_t j = 0; j < n; ++j) axpy_bf16(scores[j], rows[j], ol, lora_);
      }
      // attn[i, h, :] = W_vb[h] · o_lat[i, h, :]
      cpu::linear_rows(o_lat.data() + h * lora_, c.len, H_ * lora_, kv_b_, kb + nope_, kb + nope_ + v_,
                       attn + c.row * H_ * v_ + h * v_, H_ * v_);
    }
  });
}

void MlaLayer::attend_naive(const SeqChunk& c, const float* q, const LatentKvCache& cache,
                            int64_t layer, float* attn) const {
  const int64_t L = c.start + c.len;
  const int64_t qstride = H_ * qk_;
  const int64_t kvw = nope_ + v_;
  // Expand every cached latent into this layer's keys and values.
  std::vector<float> lat(L * lora_), kpe(L * rope_), kvx(L * H_ * kvw);
  for (int64_t j = 0; j < L; ++j) {
    const uint16_t* r = cache.row(c.seq, layer, j);
    for (int64_t d = 0; d < lora_; ++d) lat[j * lora_ + d] = bf16_to_f32(r[d]);
    for (int64_t d = 0; d < rope_; ++d) kpe[j * rope_ + d] = bf16_to_f32(r[lora_ + d]);
  }
  cpu::linear(lat.data(), L, kv_b_, kvx.data());
  cpu::parallel_for(c.len * H_, 1, [&](int64_t t0, int64_t t1) {
    std::vector<float> scores(L);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t i = t / H_, h = t % H_;
      const float* qn = q + (c.row + i) * qstride + h * qk_;
      const int64_t n = c.start + i + 1;
      for (int64_t j = 0; j < n; ++j) {
        const float* k = kvx.data() + (j * H_ + h) * kvw;
        scores[j] = (cpu::dot(qn, k, nope_) + cpu::dot(qn + nope_, kpe.data() + j * rope_, rope_)) * scale_;
      }
      cpu::softmax_inplace(scores.data(), n);
      float* o = attn + (c.row + i) * H_ * v_ + h * v_;
      std::fill(o, o + v_, 0.0f);
      for (int64_t j = 0; j < n; ++j) cpu::axpy(scores[j], kvx.data() + (j * H_ + h) * kvw + nope_, o, v_);
    }
  });
}

}  // namespace moemesh
