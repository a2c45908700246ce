// The draft vocabulary (model/draft_vocab.h): counting and the file, refused
// when malformed; the MTP head's draft logits equal the full head's on its
// tokens and are -inf elsewhere while scoring keeps the whole vocabulary; and
// drafts from it keep plain greedy's tokens and plain sampling's distribution.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "core/safetensors.h"
#include "model/draft_vocab.h"
#include "model/drafter.h"
#include "model/scheduler.h"
#include "tests/support/chi_square.h"
#include "tests/support/test_models.h"

using namespace moemesh;
using namespace moemesh::testing;

namespace {

std::vector<std::vector<int32_t>> chat_prompts() {
  const auto ref = nlohmann::json::parse(std::ifstream(trained_model() / "reference.json"));
  std::vector<std::vector<int32_t>> out;
  for (const auto& p : ref["prompts"]) out.push_back(p["prompt_ids"].get<std::vector<int32_t>>());
  return out;
}

// The trained checkpoint's files linked into a fresh directory with a draft
// vocabulary of the `size` tokens most frequent in its chat prompts.
std::filesystem::path with_draft_vocab(int64_t size) {
  const auto dir = temp_dir("draft-vocab-" + std::to_string(size));
  for (const auto& f : std::filesystem::directory_iterator(trained_model()))
    if (f.path().filename() != kDraftVocabFile) std::filesystem::create_symlink(std::filesystem::absolute(f.path()), dir / f.path().filename());
  std::vector<int32_t> tokens;
  for (const auto& p : chat_prompts()) tokens.insert(tokens.end(), p.begin(), p.end());
  const int64_t V = ModelConfig::load(trained_model()).vocab_size;
  save_draft_vocab(dir / kDraftVocabFile, count_draft_vocab(tokens, V, size, {1}, "the chat prompts"), V);
  return dir;
}

// Without one, for comparison (the committed checkpoint may carry its own).
std::filesystem::path without_draft_vocab() {
  const auto dir = temp_dir("draft-vocab-none");
  for (const auto& f : std::filesystem::directory_iterator(trained_model()))
    if (f.path().filename() != kDraftVocabFile) std::filesystem::create_symlink(std::filesystem::absolute(f.path()), dir / f.path().filename());
  return dir;
}

EngineOptions exact(int64_t kv = 16384) {
  EngineOptions o;
  o.kv_tokens = kv;
  o.compute = cpu::Precision::Exact;
  o.kv_dtype = KvCacheDtype::F32;
  o.prefix_cache = false;
  return o;
}

std::map<uint64_t, std::vector<int32_t>> drain(Scheduler& s) {
  std::map<uint64_t, std::vector<int32_t>> out;
  for (int i = 0; i < 100000 && !s.idle(); ++i)
    for (const auto& e : s.step())
      if (e.token >= 0) out[e.id].push_back(e.token);
  EXPECT_TRUE(s.idle());
  return out;
}

void write(const std::filesystem::path& f, const std::string& text) { std::ofstream(f) << text; }

}  // namespace

TEST(DraftVocab, CountsKeepTheMostFrequentAndWhatMustBeThere) {
  const DraftVocab v = count_draft_vocab({5, 3, 3, 7, 5, 3, 9}, 10, 3, {1}, "t");
  EXPECT_EQ(v.ids, (std::vector<int32_t>{1, 3, 5})) << "the end of sequence first, then by count";
  EXPECT_EQ(count_draft_vocab({4, 2}, 10, 5, {}, "t").ids, (std::vector<int32_t>{2, 4})) << "ties by id; unseen ids left out";
  EXPECT_THROW(count_draft_vocab({10}, 10, 3, {}, "t"), std::invalid_argument);
  EXPECT_THROW(count_draft_vocab({1}, 10, 11, {}, "t"), std::invalid_argument);
}

TEST(DraftVocab, TheFileRoundTripsAndABadOneIsRefusedByName) {
  const auto dir = temp_dir("draft-vocab-file");
  EXPECT_FALSE(load_draft_vocab(dir, 100).has_value()) << "no file: no draft vocabulary";
  save_draft_vocab(dir / kDraftVocabFile, {{4, 9, 2}, "x"}, 100);
  const auto v = load_draft_vocab(dir, 100);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->ids, (std::vector<int32_t>{4, 9, 2}));
  EXPECT_EQ(v->source, "x");
  EXPECT_THROW(load_draft_vocab(dir, 50), CheckpointError) << "made for another vocabulary";
  for (const std::string bad : {"not json", "[]", "{\"ids\": []}", "{\"ids\": [1, 1]}", "{\"ids\": [100]}", "{\"ids\": [-1]}",
                                "{\"ids\": [\"a\"]}",
                                "{\"ids\": [1], \"source\": 3}", "{\"ids\": [1, 2], \"size\": 3}"}) {
    write(dir / kDraftVocabFile, bad);
    try {
      load_draft_vocab(dir, 100);
      ADD_FAILURE() << "accepted " << bad;
    } catch (const CheckpointError& e) {
      EXPECT_NE(std::string(e.what()).find(kDraftVocabFile), std::string::npos) << e.what();
    }
  }
}

// Draft rows get the draft head: the full head's logits on its tokens (the same
// rows, copied; sums in another order), -inf elsewhere; scoring rows keep every logit.
TEST(DraftVocab, DraftLogitsAreTheFullHeadsOnItsTokensAndScoringKeepsTheWholeVocabulary) {
  const auto dv = with_draft_vocab(48);
  const auto ids = load_draft_vocab(dv, ModelConfig::load(dv).vocab_size)->ids;
  const std::set<int32_t> in(ids.begin(), ids.end());
  Engine with(dv, exact()), full(without_draft_vocab(), exact());
  const int64_t V = with.config().vocab_size;
  const auto prompt = chat_prompts()[0];
  const StepOutput a = with.step({{1, prompt, false}}), b = full.step({{1, prompt, false}});
  ASSERT_EQ(a.hidden, b.hidden);
  const std::vector<int32_t> next(prompt.begin() + 1, prompt.end());
  for (bool all : {false, true}) {
    std::vector<float> la, lb;
    with.mtp_truncate(1, 0);
    full.mtp_truncate(1, 0);
    with.mtp_step({{1, next, a.hidden.data(), all}}, la);
    full.mtp_step({{1, next, b.hidden.data(), all}}, lb);
    ASSERT_EQ(la.size(), lb.size());
    ASSERT_EQ(la.size() % V, 0u);
    if (all) {
      EXPECT_EQ(la, lb) << "scoring rows: the whole vocabulary, as without a draft vocabulary";
      continue;
    }
    ASSERT_EQ(la.size(), static_cast<size_t>(V)) << "a draft: the last row only";
    for (int64_t t = 0; t < V; ++t) {
      if (in.count(static_cast<int32_t>(t))) ASSERT_NEAR(la[t], lb[t], 1e-5 * (1 + std::fabs(lb[t]))) << "token " << t;
      else ASSERT_TRUE(std::isinf(la[t]) && la[t] < 0) << "token " << t << " is not in the draft vocabulary";
    }
  }
}

TEST(DraftVocab, DraftsFromItKeepPlainGreedyTokensAndStayInIt) {
  const auto dv = with_draft_vocab(48);
  const auto ids = load_draft_vocab(dv, ModelConfig::load(dv).vocab_size)->ids;
  const std::set<int32_t> in(ids.begin(), ids.end());
  Engine e(dv, exact());
  std::vector<GenerationRequest> reqs;
  const auto prompts = chat_prompts();
  for (size_t i = 0; i < prompts.size(); ++i) reqs.push_back({300 + i, prompts[i], 40, {}, {}});
  auto run = [&](int k) {
    SchedulerOptions so;
    so.adaptive_speculation = false;
    Scheduler s(e, so);
    LocalDrafter d(e);
    if (k > 0) s.set_drafter(&d, k);
    for (const auto& r : reqs) s.submit(r);
    auto out = drain(s);
    return std::make_pair(out, s.speculation());
  };
  const auto plain = run(0).first;
  for (int k : {1, 3}) {
    const auto [tokens, stats] = run(k);
    EXPECT_EQ(tokens, plain) << "k=" << k;
    EXPECT_GT(stats.drafted[0], 0);
    EXPECT_GT(stats.accepted[0], 0) << "the frequent tokens are drafted and kept";
  }
  // What the drafter proposes comes from the draft vocabulary.
  const StepOutput s = e.step({{9, prompts[1], false}});
  LocalDrafter d(e);
  const std::vector<int32_t> next(prompts[1].begin() + 1, prompts[1].end());
  const Draft dr = d.draft(DraftCall{9, 0, next, s.hidden.data(), 3, {}, false});
  ASSERT_EQ(dr.tokens.size(), 3u);
  for (int32_t t : dr.tokens) EXPECT_TRUE(in.count(t)) << t;
  d.release(9);
  e.release(9);
}

// Rejection sampling against a draft distribution that is zero outside the draft
// vocabulary still samples plain decoding's distribution (the chi-square test of
// test_speculation.cpp), here with most of the mass outside a 16-token subset.
TEST(DraftVocab, SpeculativeSamplingFromItKeepsTheDistribution) {
  Engine e(with_draft_vocab(16), exact(1 << 16));
  auto second_tokens = [&](int k, uint64_t seed0) {
    SchedulerOptions so;
    so.adaptive_speculation = false;
    so.max_running = 64;
    Scheduler s(e, so);
    LocalDrafter d(e);
    if (k > 0) s.set_drafter(&d, k);
    for (int i = 0; i < 400; ++i) {
      GenerationRequest r{static_cast<uint64_t>(1000 + i), chat_prompts()[0], 3, {}, {}};
      r.sampling = cpu::SamplingParams{1.0f, 0, 1.0f, seed0 + i};
      s.submit(r);
    }
    std::map<int32_t, double> counts;
    for (const auto& [id, t] : drain(s))
      if (t.size() >= 2) counts[t[1]] += 1;
    return counts;
  };
  const auto plain = second_tokens(0, 1), spec = second_tokens(2, 100000);
  const ChiSquare c = chi_square_two_sample(plain, spec);
  std::printf("chi-square %.1f over %d cells (limit %.1f)\n", c.chi2, c.cells, c.limit);
  ASSERT_GE(c.cells, 3);
  EXPECT_LT(c.chi2, c.limit);
}
