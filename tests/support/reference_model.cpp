#include "tests/support/reference_model.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "core/model_config.h"
#include "core/safetensors.h"
#include "model/weight_loader.h"

namespace moemesh::testing {
namespace {

using Vec = std::vector<double>;
using Mat = std::vector<Vec>;  // rows

struct Ref {
  ModelConfig c;
  Checkpoint ck;
  LatentRounding latents = LatentRounding::Bf16;
  explicit Ref(const std::filesystem::path& dir) : c(ModelConfig::load(dir)), ck(dir) {}

  Vec vec(const std::string& name, int64_t n) const {
    TensorView t = ck.get(name);
    Vec v(n);
    for (int64_t i = 0; i < n; ++i) v[i] = load_as_f32(t.dtype, t.data, i);
    return v;
  }
  Vec lin(const std::string& prefix, int64_t out, int64_t in, const Vec& x) const {
    LinearWeight w = load_linear(ck, prefix, out, in);
    Vec y(out, 0.0);
    for (int64_t o = 0; o < out; ++o)
      for (int64_t i = 0; i < in; ++i) y[o] += w.at(o, i) * x[i];
    return y;
  }
  Vec norm(const Vec& x, const Vec& w) const {
    double ss = 0;
    for (double v : x) ss += v * v;
    const double inv = 1.0 / std::sqrt(ss / x.size() + c.rms_norm_eps);
    Vec y(x.size());
    for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * inv * w[i];
    return y;
  }
  Vec inv_freq() const {
    const int64_t d = c.qk_rope_head_dim;
    Vec f(d / 2);
    for (int64_t i = 0; i < d / 2; ++i) f[i] = 1.0 / std::pow(c.rope_theta, 2.0 * i / d);
    if (c.yarn && c.yarn->factor > 1) {
      const auto& y = *c.yarn;
      auto corr = [&](double r) {
        return d * std::log(y.original_max_position_embeddings / (r * 2 * M_PI)) / (2 * std::log(c.rope_theta));
      };
      double lo = std::max(std::floor(corr(y.beta_fast)), 0.0), hi = std::min(std::ceil(corr(y.beta_slow)), double(d - 1));
      if (lo == hi) hi += 0.001;
      for (int64_t i = 0; i < d / 2; ++i) {
        const double smooth = 1 - std::clamp((i - lo) / (hi - lo), 0.0, 1.0);
        f[i] = f[i] / y.factor * (1 - smooth) + f[i] * smooth;
      }
    }
    return f;
  }
  void rope(double* x, int64_t pos) const {
    const Vec f = inv_freq();
    for (size_t i = 0; i < f.size(); ++i) {
      // Angles in f32 like the reference's freqs_cis table.
      const double th = static_cast<float>(static_cast<float>(pos) * static_cast<float>(f[i]));
      const double a = x[2 * i], b = x[2 * i + 1];
      x[2 * i] = a * std::cos(th) - b * std::sin(th);
      x[2 * i + 1] = a * std::sin(th) + b * std::cos(th);
    }
  }
  Vec mlp(const std::string& p, int64_t inter, const Vec& x) const {
    const int64_t H = c.hidden_size;
    Vec g = lin(p + ".gate_proj", inter, H, x), u = lin(p + ".up_proj", inter, H, x);
    for (int64_t i = 0; i < inter; ++i) g[i] = g[i] / (1 + std::exp(-g[i])) * u[i];
    return lin(p + ".down_proj", H, inter, g);
  }

  // Full-sequence attention of one layer; x: normed inputs.
  Mat attention(int64_t layer, const Mat& x) const {
    const std::string p = layer_prefix(layer) + "self_attn";
    const int64_t H = c.hidden_size, nh = c.num_attention_heads, nope = c.qk_nope_head_dim,
                  rd = c.qk_rope_head_dim, vd = c.v_head_dim, lora = c.kv_lora_rank, qk = nope + rd;
    const int64_t n = static_cast<int64_t>(x.size());
    Mat q(n), k(n), v(n);
    for (int64_t t = 0; t < n; ++t) {
      if (c.q_lora_rank > 0) {
        Vec a = norm(lin(p + ".q_a_proj", c.q_lora_rank, H, x[t]), vec(p + ".q_a_layernorm.weight", c.q_lora_rank));
        q[t] = lin(p + ".q_b_proj", nh * qk, c.q_lora_rank, a);
      } else {
        q[t] = lin(p + ".q_proj", nh * qk, H, x[t]);
      }
      for (int64_t h = 0; h < nh; ++h) rope(&q[t][h * qk + nope], t);
      Vec kv = lin(p + ".kv_a_proj_with_mqa", lora + rd, H, x[t]);
      Vec lat = norm(Vec(kv.begin(), kv.begin() + lora), vec(p + ".kv_a_layernorm.weight", lora));
      Vec pe(kv.begin() + lora, kv.end());
      rope(pe.data(), t);
      if (latents == LatentRounding::Bf16) {
        for (auto& z : lat) z = round_to_bf16(static_cast<float>(z));
        for (auto& z : pe) z = round_to_bf16(static_cast<float>(z));
      } else if (latents == LatentRounding::Fp8) {
        // e4m3 with one scale per part, the largest magnitude mapped to 448.
        for (Vec* part : {&lat, &pe}) {
          double amax = 0;
          for (double z : *part) amax = std::max(amax, std::fabs(static_cast<double>(static_cast<float>(z))));
          const float scale = amax > 0 ? static_cast<float>(amax) / kFp8E4M3Max : 1.0f;
          for (auto& z : *part) z = fp8e4m3_to_f32(f32_to_fp8e4m3(static_cast<float>(z) / scale)) * scale;
        }
      }
      Vec kvb = lin(p + ".kv_b_proj", nh * (nope + vd), lora, lat);
      k[t].resize(nh * qk);
      v[t].resize(nh * vd);
      for (int64_t h = 0; h < nh; ++h) {
        for (int64_t d = 0; d < nope; ++d) k[t][h * qk + d] = kvb[h * (nope + vd) + d];
        for (int64_t d = 0; d < rd; ++d) k[t][h * qk + nope + d] = pe[d];
        for (int64_t d = 0; d < vd; ++d) v[t][h * vd + d] = kvb[h * (nope + vd) + nope + d];
      }
    }
    const double scale = c.softmax_scale();
    Mat out(n);
    for (int64_t t = 0; t < n; ++t) {
      Vec o(nh * vd, 0.0);
      for (int64_t h = 0; h < nh; ++h) {
        Vec s(t + 1);
        for (int64_t j = 0; j <= t; ++j) {
          double d = 0;
          for (int64_t e = 0; e < qk; ++e) d += q[t][h * qk + e] * k[j][h * qk + e];
          s[j] = d * scale;
        }
        const double mx = *std::max_element(s.begin(), s.end());
        double z = 0;
        for (auto& e : s) z += (e = std::exp(e - mx));
        for (int64_t j = 0; j <= t; ++j)
          for (int64_t d = 0; d < vd; ++d) o[h * vd + d] += s[j] / z * v[j][h * vd + d];
      }
      out[t] = lin(p + ".o_proj", H, nh * vd, o);
    }
    return out;
  }

  Vec moe(int64_t layer, const Vec& x) const {
    const std::string p = layer_prefix(layer) + "mlp";
    const int64_t E = c.n_routed_experts, H = c.hidden_size;
    Vec logits = lin(p + ".gate", E, H, x), scores(E);
    if (c.scoring_func == ScoringFunc::Sigmoid) {
      for (int64_t e = 0; e < E; ++e) scores[e] = 1 / (1 + std::exp(-logits[e]));
    } else {
      const double mx = *std::max_element(logits.begin(), logits.end());
      double z = 0;
      for (int64_t e = 0; e < E; ++e) z += std::exp(logits[e] - mx);
      for (int64_t e = 0; e < E; ++e) scores[e] = std::exp(logits[e] - mx) / z;
    }
    Vec choice = scores;
    if (c.topk_method == TopkMethod::NoauxTc) {
      Vec b = vec(p + ".gate.e_score_correction_bias", E);
      for (int64_t e = 0; e < E; ++e) choice[e] += b[e];
    }
    if (c.topk_method != TopkMethod::Greedy) {
      const int64_t per = E / c.n_group;
      std::vector<std::pair<double, int64_t>> gs;
      for (int64_t g = 0; g < c.n_group; ++g) {
        Vec s(choice.begin() + g * per, choice.begin() + (g + 1) * per);
        std::sort(s.rbegin(), s.rend());
        gs.push_back({c.topk_method == TopkMethod::NoauxTc ? s[0] + s[1] : s[0], g});
      }
      std::stable_sort(gs.begin(), gs.end(), [](auto a, auto b) { return a.first > b.first; });
      for (int64_t g = c.topk_group; g < c.n_group; ++g)
        for (int64_t i = 0; i < per; ++i) choice[gs[g].second * per + i] = -INFINITY;
    }
    std::vector<int64_t> order(E);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return choice[a] > choice[b]; });
    order.resize(c.num_experts_per_tok);
    double sum = 0;
    for (int64_t e : order) sum += scores[e];
    const bool normalize = c.norm_topk_prob && c.num_experts_per_tok > 1;
    const bool scale = c.model_type != "deepseek_v2" || !normalize;
    Vec y(H, 0.0);
    for (int64_t e : order) {
      double w = scores[e];
      if (normalize) w /= sum;
      if (scale) w *= c.routed_scaling_factor;
      Vec o = mlp(p + ".experts." + std::to_string(e), c.moe_intermediate_size, x);
      for (int64_t i = 0; i < H; ++i) y[i] += w * o[i];
    }
    if (c.n_shared_experts > 0) {
      Vec s = mlp(p + ".shared_experts", c.moe_intermediate_size * c.n_shared_experts, x);
      for (int64_t i = 0; i < H; ++i) y[i] += s[i];
    }
    return y;
  }

  void block(int64_t layer, Mat& h) const {
    const int64_t H = c.hidden_size;
    const std::string p = layer_prefix(layer);
    Mat x(h.size());
    for (size_t t = 0; t < h.size(); ++t) x[t] = norm(h[t], vec(p + "input_layernorm.weight", H));
    Mat a = attention(layer, x);
    for (size_t t = 0; t < h.size(); ++t) {
      for (int64_t i = 0; i < H; ++i) h[t][i] += a[t][i];
      Vec n = norm(h[t], vec(p + "post_attention_layernorm.weight", H));
      Vec f = c.is_moe_layer(layer) ? moe(layer, n) : mlp(p + "mlp", c.intermediate_size, n);
      for (int64_t i = 0; i < H; ++i) h[t][i] += f[i];
    }
  }

  Vec embed(const std::string& name, int32_t tok) const {
    TensorView t = ck.get(name);
    Vec v(c.hidden_size);
    for (int64_t i = 0; i < c.hidden_size; ++i) v[i] = load_as_f32(t.dtype, t.data, size_t(tok) * c.hidden_size + i);
    return v;
  }
  std::vector<float> head(const std::string& prefix, const Vec& x) const {
    Vec l = lin(prefix, c.vocab_size, c.hidden_size, x);
    return std::vector<float>(l.begin(), l.end());
  }
};

}  // namespace

ReferenceOutput reference_forward(const std::filesystem::path& model, const std::vector<int32_t>& tokens,
                                  LatentRounding latents) {
  Ref r(model);
  r.latents = latents;
  const ModelConfig& c = r.c;
  const int64_t n = static_cast<int64_t>(tokens.size()), H = c.hidden_size;
  Mat h(n);
  for (int64_t t = 0; t < n; ++t) h[t] = r.embed("model.embed_tokens.weight", tokens[t]);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) r.block(l, h);
  ReferenceOutput out;
  Mat normed(n);
  for (int64_t t = 0; t < n; ++t) {
    normed[t] = r.norm(h[t], r.vec("model.norm.weight", H));
    out.logits.push_back(r.head("lm_head", normed[t]));
  }
  if (c.num_nextn_predict_layers > 0 && n >= 2) {
    const int64_t L = c.mtp_layer();
    const std::string p = layer_prefix(L);
    const std::string emb = r.ck.has(p + "embed_tokens.weight") ? p + "embed_tokens.weight" : "model.embed_tokens.weight";
    const std::string hd = r.ck.has(p + "shared_head.head.weight") ? p + "shared_head.head" : "lm_head";
    Mat m(n - 1);
    for (int64_t t = 0; t + 1 < n; ++t) {
      Vec e = r.norm(r.embed(emb, tokens[t + 1]), r.vec(p + "enorm.weight", H));
      Vec hh = r.norm(normed[t], r.vec(p + "hnorm.weight", H));
      e.insert(e.end(), hh.begin(), hh.end());
      m[t] = r.lin(p + "eh_proj", H, 2 * H, e);
    }
    r.block(L, m);
    for (int64_t t = 0; t + 1 < n; ++t) out.mtp_logits.push_back(r.head(hd, r.norm(m[t], r.vec(p + "shared_head.norm.weight", H))));
  }
  return out;
}

}  // namespace moemesh::testing
