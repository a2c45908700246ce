// Small CPU kernels against plain reference formulas written here.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <random>
#include <set>

#include "kernels/cpu/linear_t.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/sampling.h"
#include "kernels/cpu/topk_gate.h"
#include "model/checkpoint_maker.h"

using namespace moemesh;

namespace {
std::vector<float> randn(size_t n, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}
}  // namespace

TEST(Ops, RmsNorm) {
  const int64_t rows = 5, n = 37;
  auto x = randn(rows * n, 1), w = randn(n, 2);
  std::vector<float> y(rows * n);
  cpu::rmsnorm(x.data(), rows, n, w.data(), 1e-6f, y.data());
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int64_t i = 0; i < n; ++i) ss += double(x[r * n + i]) * x[r * n + i];
    const double inv = 1.0 / std::sqrt(ss / n + 1e-6);
    for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(y[r * n + i], x[r * n + i] * inv * w[i], 1e-5);
  }
}

TEST(Ops, SiluMulSoftmaxDot) {
  auto g = randn(100, 3, 4.0f), u = randn(100, 4);
  std::vector<float> o(100);
  cpu::silu_mul(g.data(), u.data(), 100, o.data());
  for (int i = 0; i < 100; ++i) EXPECT_NEAR(o[i], g[i] / (1.0 + std::exp(-double(g[i]))) * u[i], 1e-5);

  auto s = randn(50, 5, 10.0f);
  s[7] = -INFINITY;
  auto p = s;
  cpu::softmax_inplace(p.data(), 50);
  double mx = -INFINITY, sum = 0;
  for (float v : s) mx = std::max(mx, double(v));
  for (float v : s) sum += std::exp(v - mx);
  for (int i = 0; i < 50; ++i) EXPECT_NEAR(p[i], std::exp(s[i] - mx) / sum, 1e-6);
  EXPECT_EQ(p[7], 0.0f);

  auto a = randn(77, 6), b = randn(77, 7);
  double d = 0;
  for (int i = 0; i < 77; ++i) d += double(a[i]) * b[i];
  EXPECT_NEAR(cpu::dot(a.data(), b.data(), 77), d, 1e-4);
}

TEST(Ops, RopeYarnMatchesFormula) {
  ModelConfig c = preset_config("tiny");  // yarn factor 40, original 4096, betas 32/1
  cpu::Rope rope(c);
  const int64_t dim = c.qk_rope_head_dim, half = dim / 2;
  // Reference: DeepSeek-V3's precompute_freqs_cis, in double.
  auto corr = [&](double rot) { return dim * std::log(4096.0 / (rot * 2 * M_PI)) / (2 * std::log(c.rope_theta)); };
  double low = std::max(std::floor(corr(32.0)), 0.0), high = std::min(std::ceil(corr(1.0)), double(dim - 1));
  if (low == high) high += 0.001;
  for (int64_t i = 0; i < half; ++i) {
    const double f = 1.0 / std::pow(c.rope_theta, 2.0 * i / dim);
    const double smooth = 1.0 - std::clamp((i - low) / (high - low), 0.0, 1.0);
    const double expect = f / 40.0 * (1 - smooth) + f * smooth;
    EXPECT_NEAR(rope.inv_freq()[i], expect, 1e-6 * std::max(1.0, expect)) << i;
  }
  // Interleaved pairs rotate as complex numbers x · e^{i·pos·θ}.
  const int64_t heads = 3, pos = 57;
  auto x = randn(heads * dim, 8);
  auto y = x;
  rope.apply(y.data(), heads, dim, pos);
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < half; ++i) {
      const double th = pos * double(rope.inv_freq()[i]);
      const double re = x[h * dim + 2 * i], im = x[h * dim + 2 * i + 1];
      EXPECT_NEAR(y[h * dim + 2 * i], re * std::cos(th) - im * std::sin(th), 1e-4);
      EXPECT_NEAR(y[h * dim + 2 * i + 1], re * std::sin(th) + im * std::cos(th), 1e-4);
    }
}

namespace {
// DeepSeek-V3 reference Gate.forward, transcribed literally.
void reference_gate(const std::vector<float>& logits, const std::vector<float>* bias, const cpu::GateParams& p,
                    std::vector<int32_t>& idx, std::vector<float>& w) {
  const int64_t E = p.n_experts;
  std::vector<double> scores(E);
  if (p.scoring == ScoringFunc::Sigmoid) {
    for (int64_t e = 0; e < E; ++e) scores[e] = 1.0 / (1.0 + std::exp(-double(logits[e])));
  } else {
    double mx = *std::max_element(logits.begin(), logits.end()), s = 0;
    for (int64_t e = 0; e < E; ++e) s += std::exp(logits[e] - mx);
    for (int64_t e = 0; e < E; ++e) scores[e] = std::exp(logits[e] - mx) / s;
  }
  std::vector<double> choice = scores;
  if (bias && p.method == TopkMethod::NoauxTc)
    for (int64_t e = 0; e < E; ++e) choice[e] += (*bias)[e];
  if (p.method != TopkMethod::Greedy) {
    const int64_t per = E / p.n_group;
    std::vector<std::pair<double, int64_t>> gs;
    for (int64_t g = 0; g < p.n_group; ++g) {
      std::vector<double> v(choice.begin() + g * per, choice.begin() + (g + 1) * per);
      std::sort(v.rbegin(), v.rend());
      gs.push_back({p.method == TopkMethod::NoauxTc ? v[0] + v[1] : v[0], g});
    }
    std::stable_sort(gs.begin(), gs.end(), [](auto a, auto b) { return a.first > b.first; });
    for (int64_t k = p.topk_group; k < p.n_group; ++k)
      for (int64_t i = 0; i < per; ++i) choice[gs[k].second * per + i] = -INFINITY;
  }
  std::vector<int64_t> order(E);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return choice[a] > choice[b]; });
  idx.assign(order.begin(), order.begin() + p.top_k);
  double sum = 0;
  for (int32_t i : idx) sum += scores[i];
  w.clear();
  for (int32_t i : idx) {
    double v = scores[i];
    if (p.normalize) v /= sum;
    if (p.scale_always || !p.normalize) v *= p.scale;
    w.push_back(float(v));
  }
}
}  // namespace

TEST(Ops, GateMatchesReferenceForEveryMethod) {
  for (const char* preset : {"tiny", "tiny-v2", "v3"}) {
    ModelConfig c = preset_config(preset);
    for (TopkMethod m : {TopkMethod::NoauxTc, TopkMethod::GroupLimitedGreedy, TopkMethod::Greedy}) {
      c.topk_method = m;
      cpu::GateParams p = cpu::GateParams::from_config(c);
      const int64_t T = 40, E = p.n_experts;
      auto logits = randn(T * E, 11, 2.0f);
      auto bias = randn(E, 12, 0.3f);
      std::vector<int32_t> idx(T * p.top_k);
      std::vector<float> w(T * p.top_k);
      cpu::route_tokens(logits.data(), T, bias.data(), p, idx.data(), w.data());
      std::map<int32_t, int> used;
      for (int64_t t = 0; t < T; ++t) {
        std::vector<float> l(logits.begin() + t * E, logits.begin() + (t + 1) * E);
        std::vector<int32_t> ri;
        std::vector<float> rw;
        reference_gate(l, &bias, p, ri, rw);
        for (int64_t k = 0; k < p.top_k; ++k) {
          EXPECT_EQ(idx[t * p.top_k + k], ri[k]) << preset << " token " << t;
          EXPECT_NEAR(w[t * p.top_k + k], rw[k], 1e-5);
          used[ri[k]]++;
        }
      }
      EXPECT_GT(used.size(), size_t(p.top_k)) << "routing should vary across tokens";
    }
  }
}

TEST(Ops, LinearTransposedMatchesLoop) {
  const int64_t out = 70, in = 33, m = 3;
  auto wv = randn(out * in, 21);
  LinearWeight w;
  w.w = {DType::F32, {out, in}, wv.data()};
  auto x = randn(m * 20, 22);
  std::vector<float> y(m * in);
  cpu::linear_t(x.data(), m, 20, w, 10, 30, y.data(), in);
  for (int64_t r = 0; r < m; ++r)
    for (int64_t i = 0; i < in; ++i) {
      double s = 0;
      for (int64_t o = 10; o < 30; ++o) s += double(x[r * 20 + o - 10]) * wv[o * in + i];
      EXPECT_NEAR(y[r * in + i], s, 1e-4);
    }
}

TEST(Sampling, GreedyAndSeededDraws) {
  auto logits = randn(500, 31, 3.0f);
  cpu::SamplingParams g;
  cpu::Sampler gs(g);
  EXPECT_EQ(gs.sample(logits.data(), 500), std::max_element(logits.begin(), logits.end()) - logits.begin());

  cpu::SamplingParams p{0.8f, 0, 1.0f, 42};
  cpu::Sampler a(p), b(p);
  std::vector<int32_t> da, db;
  for (int i = 0; i < 50; ++i) {
    da.push_back(a.sample(logits.data(), 500));
    db.push_back(b.sample(logits.data(), 500));
  }
  EXPECT_EQ(da, db);
  EXPECT_GT(std::set<int32_t>(da.begin(), da.end()).size(), 1u);
}

TEST(Sampling, TopKTopPRestrictTheSupport) {
  auto logits = randn(300, 41, 2.0f);
  std::vector<int32_t> order(300);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return logits[a] > logits[b]; });

  std::vector<float> probs;
  cpu::sampling_distribution(logits.data(), 300, {1.0f, 5, 1.0f, 0}, probs);
  double mass = 0;
  for (int i = 0; i < 300; ++i) {
    const bool top5 = std::find(order.begin(), order.begin() + 5, i) != order.begin() + 5;
    if (!top5) {
      EXPECT_EQ(probs[i], 0.0f);
    }
    mass += probs[i];
  }
  EXPECT_NEAR(mass, 1.0, 1e-5);
  // Within the kept set, probabilities follow softmax(logits / T).
  EXPECT_NEAR(probs[order[0]] / probs[order[1]], std::exp(logits[order[0]] - logits[order[1]]), 1e-3);

  // top_p: the smallest prefix reaching the mass.
  cpu::sampling_distribution(logits.data(), 300, {1.0f, 0, 0.5f, 0}, probs);
  double z = 0;
  for (int i = 0; i < 300; ++i) z += std::exp(double(logits[i]));
  double acc = 0;
  int keep = 0;
  while (acc < 0.5) acc += std::exp(double(logits[order[keep++]])) / z;
  int nonzero = 0;
  for (float v : probs) nonzero += v > 0;
  EXPECT_EQ(nonzero, keep);

  // Sampled frequencies follow the distribution.
  cpu::Sampler s({1.0f, 3, 1.0f, 7});
  cpu::sampling_distribution(logits.data(), 300, {1.0f, 3, 1.0f, 7}, probs);
  std::map<int32_t, int> hist;
  const int n = 20000;
  for (int i = 0; i < n; ++i) hist[s.sample(logits.data(), 300)]++;
  EXPECT_EQ(hist.size(), 3u);
  for (auto [tok, cnt] : hist) EXPECT_NEAR(double(cnt) / n, probs[tok], 0.02);
}

TEST(Sampling, DraftVerificationKeepsTheTargetDistribution) {
  // For random target p and draft q: draw d ~ q, verify; the result must follow p.
  std::mt19937 rng(11);
  for (int trial = 0; trial < 4; ++trial) {
    const int n = 6;
    std::vector<float> p(n), q(n);
    std::uniform_real_distribution<float> u(0.0f, 1.0f);
    float sp = 0, sq = 0;
    for (int i = 0; i < n; ++i) { p[i] = u(rng); q[i] = trial == 3 ? (i == 2 ? 1.0f : 0.0f) : u(rng); sp += p[i]; sq += q[i]; }
    for (int i = 0; i < n; ++i) { p[i] /= sp; q[i] /= sq; }
    cpu::Sampler s({1.0f, 0, 1.0f, 99u + trial});
    std::discrete_distribution<int> draw(q.begin(), q.end());
    std::vector<int> hist(n, 0);
    int accepted = 0;
    const int draws = 100000;
    for (int k = 0; k < draws; ++k) {
      const auto v = cpu::verify_draft(p, q, draw(rng), s);
      hist[v.token]++;
      accepted += v.accepted;
    }
    double expected_accept = 0;
    for (int i = 0; i < n; ++i) {
      EXPECT_NEAR(double(hist[i]) / draws, p[i], 0.01) << "trial " << trial << " token " << i;
      expected_accept += std::min(p[i], q[i]);
    }
    // Acceptance rate is Σ min(p, q).
    EXPECT_NEAR(double(accepted) / draws, expected_accept, 0.01);
  }
}

TEST(Ops, ExpIsWithinTwoUlpOfTheLibrary) {
  double worst = 0;
  for (float x = -90.0f; x < 88.72f; x += 0.0137f) {
    const double want = std::exp(static_cast<double>(x));
    const float got = cpu::exp_f32(x);
    if (x < -87.33f) {
      EXPECT_EQ(got, 0.0f) << x;
      continue;
    }
    ASSERT_TRUE(std::isfinite(got)) << x;
    // Relative to the float spacing at the true value (denormals: to the smallest normal's).
    const double ulp = std::max(std::abs(std::nextafter(static_cast<float>(want), INFINITY) - static_cast<float>(want)),
                                std::numeric_limits<float>::denorm_min());
    worst = std::max(worst, std::abs(got - want) / ulp);
  }
  EXPECT_LE(worst, 2.0);
  EXPECT_EQ(cpu::exp_f32(-INFINITY), 0.0f);
  EXPECT_GT(cpu::exp_f32(88.72f), 3.3e38f);
  EXPECT_EQ(cpu::exp_f32(0.0f), 1.0f);
  std::vector<float> v{1.0f, -INFINITY, 3.0f};
  cpu::softmax_inplace(v.data(), 3);
  EXPECT_EQ(v[1], 0.0f);
  EXPECT_NEAR(v[0] + v[2], 1.0f, 1e-6);
}

// Log-probabilities against a plain reference: log-softmax in double, a full sort.
TEST(Sampling, TokenLogprobsAreTheLogSoftmaxAndItsBestTokens) {
  auto logits = randn(1000, 43, 3.0f);
  logits[17] = logits[400] = *std::max_element(logits.begin(), logits.end()) + 1.0f;  // a tie at the top: the lower id first
  double mx = -1e30, sum = 0;
  for (float v : logits) mx = std::max(mx, static_cast<double>(v));
  for (float v : logits) sum += std::exp(static_cast<double>(v) - mx);
  auto ref = [&](int i) { return static_cast<double>(logits[i]) - mx - std::log(sum); };
  std::vector<int32_t> order(1000);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return logits[a] > logits[b]; });
  for (int k : {0, 1, 5, 20}) {
    const cpu::TokenLogprobs t = cpu::token_logprobs(logits.data(), 1000, 123, k);
    EXPECT_NEAR(t.logprob, ref(123), 1e-5);
    ASSERT_EQ(t.top.size(), static_cast<size_t>(k));
    for (int i = 0; i < k; ++i) {
      EXPECT_EQ(t.top[i].first, order[i]) << "rank " << i;
      EXPECT_NEAR(t.top[i].second, ref(order[i]), 1e-5);
    }
  }
  EXPECT_EQ(cpu::token_logprobs(logits.data(), 1000, 400, 2).top[0].first, 17);
  double total = 0;
  for (int i = 0; i < 1000; ++i) total += std::exp(cpu::token_logprobs(logits.data(), 1000, i, 0).logprob);
  EXPECT_NEAR(total, 1.0, 1e-4);
}
