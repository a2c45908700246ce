// Logit bias, presence / frequency / repetition penalties and min-p, against
// plain references written from their definitions; and the scheduler applying
// them at every position, with and without speculative drafts.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <set>

#include "kernels/cpu/sampling.h"
#include "model/scheduler.h"
#include "tests/support/test_models.h"

using namespace moemesh;
using namespace moemesh::testing;

namespace {

std::vector<float> random_logits(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 3.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = d(rng);
  return v;
}

// The definitions, token by token over the whole vocabulary.
std::vector<float> reference_adjust(std::vector<float> l, const cpu::LogitAdjustments& a, const std::vector<int32_t>& prompt,
                                    const std::vector<int32_t>& generated) {
  const int64_t n = static_cast<int64_t>(l.size());
  for (const auto& [id, b] : a.logit_bias) l[static_cast<size_t>(id)] += b;
  for (int64_t t = 0; t < n; ++t) {
    const auto c = std::count(generated.begin(), generated.end(), static_cast<int32_t>(t));
    const bool seen = c > 0 || std::count(prompt.begin(), prompt.end(), static_cast<int32_t>(t)) > 0;
    float& x = l[static_cast<size_t>(t)];
    if (seen) x = x > 0 ? x / a.repetition_penalty : x * a.repetition_penalty;
    if (c > 0) x -= a.presence_penalty;
    x -= a.frequency_penalty * static_cast<float>(c);
  }
  return l;
}

}  // namespace

TEST(LogitAdjustments, MatchTheDefinitionsWithHistoryAndTokensAhead) {
  const int64_t V = 97;
  std::mt19937 rng(5);
  std::uniform_int_distribution<int32_t> tok(0, 40);  // a small range: repeats happen
  for (int trial = 0; trial < 200; ++trial) {
    cpu::LogitAdjustments a;
    a.presence_penalty = trial % 3 == 0 ? 0.0f : std::uniform_real_distribution<float>(-2, 2)(rng);
    a.frequency_penalty = trial % 5 == 0 ? 0.0f : std::uniform_real_distribution<float>(-2, 2)(rng);
    a.repetition_penalty = trial % 2 == 0 ? 1.0f : std::uniform_real_distribution<float>(0.5f, 3.0f)(rng);
    for (int b = 0; b < trial % 4; ++b) a.logit_bias.emplace_back(tok(rng), std::uniform_real_distribution<float>(-100, 100)(rng));
    std::vector<int32_t> prompt(static_cast<size_t>(trial % 7)), generated(static_cast<size_t>(trial % 11)), ahead(static_cast<size_t>(trial % 4));
    for (auto* v : {&prompt, &generated, &ahead})
      for (auto& x : *v) x = tok(rng);
    cpu::TokenHistory h;
    for (int32_t t : generated) h.add(t);
    h.prompt = prompt;
    std::sort(h.prompt.begin(), h.prompt.end());
    h.prompt.erase(std::unique(h.prompt.begin(), h.prompt.end()), h.prompt.end());

    auto logits = random_logits(V, 100u + static_cast<uint32_t>(trial));
    auto got = logits;
    cpu::adjust_logits(got.data(), V, a, h, ahead);
    std::vector<int32_t> all = generated;
    all.insert(all.end(), ahead.begin(), ahead.end());
    const auto want = reference_adjust(logits, a, prompt, all);
    for (int64_t t = 0; t < V; ++t) ASSERT_NEAR(got[t], want[t], 1e-4f) << "trial " << trial << " token " << t;
  }
}

TEST(LogitAdjustments, MinPKeepsTokensWithinItsShareOfTheMostLikely) {
  const int64_t V = 300;
  const auto logits = random_logits(V, 9);
  for (float min_p : {0.01f, 0.1f, 0.5f, 1.0f}) {
    for (int64_t top_k : {int64_t{0}, int64_t{20}}) {
      cpu::SamplingParams p{0.7f, top_k, 1.0f, 1, min_p};
      std::vector<float> probs;
      cpu::sampling_distribution(logits.data(), V, p, probs);
      // Reference: softmax(logits / T) over the top-k, then drop p < min_p * max.
      std::vector<int32_t> order(V);
      std::iota(order.begin(), order.end(), 0);
      std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
      const int64_t k = top_k > 0 ? top_k : V;
      std::set<int32_t> keep;
      for (int64_t i = 0; i < k; ++i) {
        const double rel = std::exp((logits[order[i]] - logits[order[0]]) / 0.7);
        if (rel >= min_p) keep.insert(order[i]);
      }
      double mass = 0;
      for (int64_t t = 0; t < V; ++t) {
        EXPECT_EQ(probs[t] > 0.0f, keep.count(static_cast<int32_t>(t)) == 1) << "min_p " << min_p << " token " << t;
        mass += probs[t];
      }
      EXPECT_NEAR(mass, 1.0, 1e-5);
      if (min_p == 1.0f) EXPECT_EQ(keep.size(), 1u);
    }
  }
}

namespace {
std::vector<int32_t> run(Engine& e, const GenerationRequest& r, int k) {
  Scheduler s(e, {32, 64, 1024, 64});
  LocalDrafter d(e);
  if (k > 0) s.set_drafter(&d, k);
  s.submit(r);
  std::vector<int32_t> out;
  for (int i = 0; i < 10000 && !s.idle(); ++i)
    for (const auto& ev : s.step())
      if (ev.token >= 0) out.push_back(ev.token);
  return out;
}
}  // namespace

TEST(LogitAdjustments, TheSchedulerAppliesThemAtEveryPositionWithOrWithoutDrafts) {
  EngineOptions o;
  o.kv_tokens = 4096;
  o.prefix_cache = false;
  Engine e(test_model("tiny"), o);
  const int64_t V = e.config().vocab_size;
  const auto prompt = random_tokens(9, V, 33);
  GenerationRequest r{1, prompt, 24, {}, {}};
  r.adjust.frequency_penalty = 2.0f;
  r.adjust.presence_penalty = 1.0f;
  r.adjust.repetition_penalty = 1.5f;
  r.adjust.logit_bias = {{prompt[0], 5.0f}, {7, -100.0f}};

  // Reference: one sequence, one token at a time, adjusted from the definitions.
  std::vector<int32_t> want;
  {
    std::vector<float> logits;
    StepOutput out = e.step({{500, prompt, false}});
    logits.assign(out.last_logits(0, V), out.last_logits(0, V) + V);
    for (int i = 0; i < 24; ++i) {
      const auto adj = reference_adjust(logits, r.adjust, prompt, want);
      want.push_back(static_cast<int32_t>(std::max_element(adj.begin(), adj.end()) - adj.begin()));
      out = e.step({{500, {want.back()}, false}});
      logits.assign(out.last_logits(0, V), out.last_logits(0, V) + V);
    }
    e.release(500);
  }
  EXPECT_EQ(std::count(want.begin(), want.end(), 7), 0);
  const auto plain = run(e, GenerationRequest{2, prompt, 24, {}, {}}, 0);
  EXPECT_NE(plain, want) << "the penalties changed nothing: the test would not see them missing";
  EXPECT_EQ(run(e, r, 0), want);
  r.id = 3;
  EXPECT_EQ(run(e, r, 3), want) << "drafts are verified against the same adjusted logits";

  // Sampled: reproducible with the seed, and the same with drafts (the verifier's draws differ, so only the bias is checked).
  GenerationRequest t = r;
  t.id = 4;
  t.sampling = {1.0f, 0, 1.0f, 77, 0.05f};
  const auto a = run(e, t, 0);
  t.id = 5;
  EXPECT_EQ(run(e, t, 0), a);
  t.id = 6;
  const auto drafted = run(e, t, 2);
  EXPECT_EQ(drafted.size(), 24u);
  EXPECT_EQ(std::count(drafted.begin(), drafted.end(), 7), 0) << "a -100 bias keeps the token out under drafts too";
}

TEST(LogitAdjustments, OutOfRangeValuesAreRefused) {
  EngineOptions o;
  o.kv_tokens = 1024;
  Engine e(test_model("tiny"), o);
  Scheduler s(e);
  const auto prompt = random_tokens(4, e.config().vocab_size, 1);
  auto refused = [&](auto edit) {
    GenerationRequest r{1, prompt, 4, {}, {}};
    edit(r);
    EXPECT_THROW(s.submit(r), RequestRefused);
  };
  refused([](GenerationRequest& r) { r.adjust.presence_penalty = 2.5f; });
  refused([](GenerationRequest& r) { r.adjust.frequency_penalty = -3.0f; });
  refused([](GenerationRequest& r) { r.adjust.repetition_penalty = 0.0f; });
  refused([](GenerationRequest& r) { r.sampling.min_p = 1.5f; });
  refused([&](GenerationRequest& r) { r.adjust.logit_bias = {{static_cast<int32_t>(e.config().vocab_size), 1.0f}}; });
  refused([](GenerationRequest& r) { r.adjust.logit_bias = {{1, 101.0f}}; });
}

TEST(LogitAdjustments, ChoicesOfOnePromptPrefillItOnce) {
  EngineOptions o;
  o.kv_tokens = 4096;
  Engine e(test_model("tiny"), o);
  ASSERT_NE(e.prefix_cache(), nullptr);
  const int64_t page = e.cache().page_tokens();
  const auto prompt = random_tokens(3 * page + 5, e.config().vocab_size, 8);
  Scheduler s(e, {page, 64, 1024, 64});  // a page per step: the prompt takes several steps
  for (uint64_t id = 1; id <= 3; ++id) {
    GenerationRequest r{id, prompt, 6, {}, {}};
    r.sampling = {0.9f, 0, 1.0f, id, 0.0f};
    s.submit(r);
  }
  std::map<uint64_t, int64_t> cached;
  std::map<uint64_t, std::vector<int32_t>> tokens;
  for (int i = 0; i < 1000 && !s.idle(); ++i)
    for (const auto& ev : s.step()) {
      if (ev.token >= 0) tokens[ev.id].push_back(ev.token);
      if (ev.finish != FinishReason::None) cached[ev.id] = ev.cached_tokens;
    }
  ASSERT_TRUE(s.idle());
  EXPECT_EQ(cached[1], 0);
  EXPECT_EQ(cached[2], 3 * page) << "the second choice waited for the first's prompt pages";
  EXPECT_EQ(cached[3], 3 * page);
  for (uint64_t id = 1; id <= 3; ++id) EXPECT_EQ(tokens[id].size(), 6u);
}
