// Speculative decoding on the scheduler: batched drafting equals drafting one
// request at a time, fixed and adaptive drafts give plain decoding's tokens
// (greedy) and its distribution (sampling), and the adaptive policy switches
// drafting off where drafts are never accepted and keeps it where they are.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "model/drafter.h"
#include "model/eval.h"
#include "model/scheduler.h"
#include "tests/support/chi_square.h"
#include "tests/support/test_models.h"

using namespace moemesh;
using namespace moemesh::testing;

namespace {

std::map<uint64_t, std::vector<int32_t>> drain(Scheduler& s) {
  std::map<uint64_t, std::vector<int32_t>> out;
  for (int i = 0; i < 100000 && !s.idle(); ++i)
    for (const auto& e : s.step())
      if (e.token >= 0) out[e.id].push_back(e.token);
  EXPECT_TRUE(s.idle());
  return out;
}

EngineOptions exact(int64_t kv = 16384) {
  EngineOptions o;
  o.kv_tokens = kv;
  o.compute = cpu::Precision::Exact;
  o.kv_dtype = KvCacheDtype::F32;
  o.prefix_cache = false;  // a prefix hit decodes without drafts, and runs here repeat prompts
  return o;
}

struct Generated {
  std::map<uint64_t, std::vector<int32_t>> tokens;
  SpeculationStats stats;
};

Generated generate(Engine& e, const std::vector<GenerationRequest>& reqs, int k, bool adaptive, int64_t step_tokens = 256) {
  SchedulerOptions so;
  so.step_tokens = step_tokens;
  so.adaptive_speculation = adaptive;
  Scheduler s(e, so);
  LocalDrafter d(e);
  if (k > 0) s.set_drafter(&d, k);
  for (const auto& r : reqs) s.submit(r);
  Generated out{drain(s), s.speculation()};
  EXPECT_EQ(e.cache().used_pages(), 0);
  return out;
}

std::vector<GenerationRequest> requests(int64_t vocab, int n, int64_t new_tokens, uint64_t seed) {
  std::vector<GenerationRequest> r;
  for (int i = 0; i < n; ++i) r.push_back({static_cast<uint64_t>(100 + i), random_tokens(3 + 5 * i, vocab, seed + i), new_tokens, {}, {}});
  return r;
}

// The trained model's chat prompts, as its reference.json recorded them.
std::vector<std::vector<int32_t>> chat_prompts() {
  const auto ref = nlohmann::json::parse(std::ifstream(trained_model() / "reference.json"));
  std::vector<std::vector<int32_t>> out;
  for (const auto& p : ref["prompts"]) out.push_back(p["prompt_ids"].get<std::vector<int32_t>>());
  return out;
}

}  // namespace

// One MTP forward per draft position for every call at once gives what drafting
// each call alone gives: the same drafts, the same logits of the fed rows.
TEST(Speculation, BatchedDraftingEqualsDraftingOneRequestAtATime) {
  for (const auto& dir : {test_model("tiny"), trained_model()}) {
    SCOPED_TRACE(dir.string());
    Engine batched(dir, exact()), alone(dir, exact());
    const int64_t V = batched.config().vocab_size, H = batched.config().hidden_size;
    std::vector<std::vector<int32_t>> prompts;
    std::vector<StepOutput> outs;
    for (int i = 0; i < 4; ++i) prompts.push_back(random_tokens(4 + 3 * i, V, 40 + i));
    std::vector<DraftCall> calls;
    std::vector<std::vector<float>> hidden;
    for (size_t i = 0; i < prompts.size(); ++i) {
      const StepOutput s = batched.step({{i + 1, prompts[i], false}});
      alone.step({{i + 1, prompts[i], false}});
      hidden.push_back(s.hidden);
    }
    for (size_t i = 0; i < prompts.size(); ++i) {
      // Rows i use (hidden i, token i+1): the prompt's next tokens and one more.
      std::vector<int32_t> next(prompts[i].begin() + 1, prompts[i].end());
      next.push_back(static_cast<int32_t>((7 * i + 3) % V));
      calls.push_back({i + 1, 0, next, hidden[i].data(), static_cast<int>(i % 3) + (i == 3 ? 0 : 1), {}, i == 1});
    }
    LocalDrafter db(batched), da(alone);
    const std::vector<Draft> together = db.draft(calls);
    ASSERT_EQ(together.size(), calls.size());
    for (size_t i = 0; i < calls.size(); ++i) {
      const Draft one = da.draft(calls[i]);
      EXPECT_EQ(together[i].tokens, one.tokens) << "call " << i;
      EXPECT_EQ(static_cast<int>(one.tokens.size()), calls[i].k);
      ASSERT_EQ(together[i].fed_logits.size(), one.fed_logits.size());
      if (!one.fed_logits.empty()) EXPECT_LT(compare(together[i].fed_logits, one.fed_logits).max_abs, 1e-4);
      EXPECT_EQ(batched.mtp_length(i + 1), alone.mtp_length(i + 1));
    }
    (void)H;
  }
}

TEST(Speculation, FixedAndAdaptiveDraftsGivePlainGreedyTokens) {
  for (const auto& dir : {test_model("tiny"), trained_model()}) {
    SCOPED_TRACE(dir.string());
    Engine e(dir, exact());
    const auto reqs = requests(e.config().vocab_size, 6, 24, 7);
    const auto plain = generate(e, reqs, 0, false).tokens;
    for (int k : {1, 2, 3}) {
      const Generated r = generate(e, reqs, k, false, 40);  // a small budget: chunked prefill beside verification
      EXPECT_EQ(r.tokens, plain) << "fixed k=" << k;
      ASSERT_EQ(r.stats.drafted.size(), static_cast<size_t>(k));
      EXPECT_GT(r.stats.drafted[0], 0);
      for (int i = 1; i < k; ++i) EXPECT_LE(r.stats.drafted[i], r.stats.drafted[i - 1]);
    }
    EXPECT_EQ(generate(e, reqs, 3, true).tokens, plain) << "adaptive";
  }
}

// Random weights: drafts are never accepted, so after the first measurements
// only rare probes draft at all.
TEST(Speculation, AdaptiveDraftingTurnsItselfOffOnARandomModel) {
  Engine e(test_model("tiny"), exact());
  const auto reqs = requests(e.config().vocab_size, 4, 200, 11);
  const Generated fixed = generate(e, reqs, 2, false);
  EXPECT_LT(fixed.stats.acceptance(0), 0.2) << "the premise: a random model's drafts fail";
  const Generated r = generate(e, reqs, 2, true);
  EXPECT_EQ(r.tokens, fixed.tokens);
  int64_t generated = 0;
  for (const auto& [id, t] : r.tokens) generated += static_cast<int64_t>(t.size());
  std::printf("adaptive on random weights: %lld drafts for %lld tokens (fixed k=2: %lld)\n",
              static_cast<long long>(r.stats.drafted[0]), static_cast<long long>(generated),
              static_cast<long long>(fixed.stats.drafted[0]));
  EXPECT_LT(r.stats.drafted[0], generated / 10) << "drafting stays off but for probes";
  EXPECT_GT(r.stats.drafted[0], 0) << "it did try";
}

// The trained model's MTP module predicts the token after next well: what
// adaptive drafting drafts is kept. (How much it drafts follows this machine's
// timings; the policy's choice of cap is tested on synthetic timings in
// test_draft_policy.cpp.)
TEST(Speculation, AdaptiveDraftingKeepsDraftingWhereDraftsAreAccepted) {
  Engine e(trained_model(), exact());
  // Chat prompts of the kind it was trained on: its answers are its own text.
  std::vector<GenerationRequest> reqs;
  const auto ids = chat_prompts();
  for (size_t i = 0; i < ids.size(); ++i) reqs.push_back({200 + i, ids[i], 64, {}, {}});
  const Generated r = generate(e, reqs, 3, true);
  int64_t generated = 0;
  for (const auto& [id, t] : r.tokens) generated += static_cast<int64_t>(t.size());
  std::printf("adaptive on the trained model: acceptance %.2f / %.2f / %.2f, %lld drafts for %lld tokens\n",
              r.stats.acceptance(0), r.stats.acceptance(1), r.stats.acceptance(2),
              static_cast<long long>(r.stats.drafted[0]), static_cast<long long>(generated));
  EXPECT_GT(r.stats.drafted[0], 0) << "it tried";
  EXPECT_GT(r.stats.acceptance(0), 0.4);
}

// Sampling with batched drafts verified by rejection sampling follows plain
// sampling's distribution: the second generated token's frequencies over many
// seeds, speculative against plain, agree by a chi-square test.
TEST(Speculation, BatchedSpeculativeSamplingKeepsTheDistribution) {
  Engine e(trained_model(), exact(1 << 16));
  const int64_t V = e.config().vocab_size;
  auto second_tokens = [&](int k, uint64_t seed0) {
    std::vector<GenerationRequest> reqs;
    for (int i = 0; i < 400; ++i) {
      GenerationRequest r{static_cast<uint64_t>(1000 + i), chat_prompts()[0], 3, {}, {}};
      r.sampling = cpu::SamplingParams{1.0f, 0, 1.0f, seed0 + i};
      reqs.push_back(r);
    }
    SchedulerOptions so;
    so.adaptive_speculation = false;  // every request drafts: the verifier is what is tested
    so.max_running = 64;
    Scheduler s(e, so);
    LocalDrafter d(e);
    if (k > 0) s.set_drafter(&d, k);
    for (const auto& r : reqs) s.submit(r);
    std::map<int32_t, double> counts;
    for (const auto& [id, t] : drain(s))
      if (t.size() >= 2) counts[t[1]] += 1;
    return counts;
  };
  const auto plain = second_tokens(0, 1), spec = second_tokens(2, 100000);
  const ChiSquare c = chi_square_two_sample(plain, spec);
  std::printf("chi-square %.1f over %d cells (limit %.1f)\n", c.chi2, c.cells, c.limit);
  ASSERT_GE(c.cells, 3) << "the second token should vary across seeds";
  EXPECT_LT(c.chi2, c.limit);
  (void)V;
}

TEST(Speculation, SeededSamplingWithDraftsRepeats) {
  Engine e(test_model("tiny"), exact());
  auto reqs = requests(e.config().vocab_size, 3, 20, 300);
  for (auto& r : reqs) r.sampling = cpu::SamplingParams{0.8f, 40, 0.95f, 5 + r.id};
  const Generated a = generate(e, reqs, 2, false), b = generate(e, reqs, 2, false);
  EXPECT_EQ(a.tokens, b.tokens) << "same seeds, same output";
  for (const auto& [id, t] : a.tokens) EXPECT_EQ(t.size(), 20u);
  EXPECT_GT(a.stats.drafted[0], 0);
}
