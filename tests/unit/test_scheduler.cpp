// Continuous batching: requests joining and leaving a running batch produce what
// each would alone; chunked prefill; limits, stop ids, cancellation, admission.
#include <gtest/gtest.h>

#include <map>

#include "model/eval.h"
#include "model/scheduler.h"
#include "tests/support/test_models.h"

using namespace moemesh;
using namespace moemesh::testing;

namespace {
std::map<uint64_t, std::vector<int32_t>> drain(Scheduler& s, std::map<uint64_t, FinishReason>* reasons = nullptr,
                                               int max_steps = 10000) {
  std::map<uint64_t, std::vector<int32_t>> out;
  for (int i = 0; i < max_steps && !s.idle(); ++i)
    for (const auto& e : s.step()) {
      if (e.token >= 0) out[e.id].push_back(e.token);
      if (e.finish != FinishReason::None && reasons) (*reasons)[e.id] = e.finish;
    }
  EXPECT_TRUE(s.idle());
  return out;
}

// Every page still used is the prefix cache's alone: finished requests hold none.
int64_t pages_held_by_requests(const Engine& e) {
  return e.cache().used_pages() - (e.prefix_cache() ? e.prefix_cache()->stats().pages : 0);
}
}  // namespace

TEST(Scheduler, BatchedRequestsEqualEachAlone) {
  EngineOptions o;
  o.kv_tokens = 4096;
  Engine e(test_model("tiny"), o);
  const int64_t V = e.config().vocab_size;
  std::vector<GenerationRequest> reqs;
  for (uint64_t i = 0; i < 6; ++i) reqs.push_back({100 + i, random_tokens(3 + 7 * i, V, 40 + i), int64_t(4 + 3 * i), {}, {}});
  std::map<uint64_t, std::vector<int32_t>> alone;
  for (const auto& r : reqs) {
    alone[r.id] = greedy_generate(e, 9999, r.prompt, r.max_new_tokens);
    e.release(9999);
  }
  // A small step budget forces chunked prefill beside decodes; requests arrive over time.
  Scheduler s(e, {.step_tokens = 16, .max_running = 4, .max_waiting = 16});
  std::map<uint64_t, std::vector<int32_t>> got;
  std::map<uint64_t, FinishReason> why;
  size_t next = 0;
  for (int step = 0; step < 1000 && (next < reqs.size() || !s.idle()); ++step) {
    if (next < reqs.size() && step % 3 == 0) s.submit(reqs[next++]);
    for (const auto& ev : s.step()) {
      if (ev.token >= 0) got[ev.id].push_back(ev.token);
      if (ev.finish != FinishReason::None) why[ev.id] = ev.finish;
    }
  }
  EXPECT_EQ(got, alone);
  for (const auto& r : reqs) EXPECT_EQ(why[r.id], FinishReason::Length);
  EXPECT_EQ(pages_held_by_requests(e), 0) << "every request's cache is freed";
}

TEST(Scheduler, StopIdsAndSeededSampling) {
  Engine e(test_model("tiny"));
  const int64_t V = e.config().vocab_size;
  const auto prompt = random_tokens(5, V, 77);
  const auto plain = greedy_generate(e, 9999, prompt, 10);
  e.release(9999);
  Scheduler s(e);
  s.submit({1, prompt, 10, {plain[3]}, {}});
  std::map<uint64_t, FinishReason> why;
  auto out = drain(s, &why);
  const auto stop_at = std::find(plain.begin(), plain.end(), plain[3]) - plain.begin();
  EXPECT_EQ(out[1], std::vector<int32_t>(plain.begin(), plain.begin() + stop_at + 1));
  EXPECT_EQ(why[1], FinishReason::Stop);
  // Sampling depends on the request's seed only, not on what else is in the batch.
  cpu::SamplingParams sp{0.9f, 50, 0.95f, 1234};
  s.submit({2, prompt, 12, {}, sp});
  const auto solo = drain(s)[2];
  s.submit({3, random_tokens(9, V, 5), 12, {}, {1.0f, 0, 1.0f, 9}});
  s.submit({4, prompt, 12, {}, sp});
  s.submit({5, random_tokens(2, V, 6), 12, {}, {}});
  EXPECT_EQ(drain(s)[4], solo);
}

TEST(Scheduler, AdmissionWaitsForCacheAndRefusesWhatCanNeverFit) {
  EngineOptions o;
  o.page_tokens = 16;
  o.kv_tokens = 64;  // 4 pages
  Engine e(test_model("tiny"), o);
  const int64_t V = e.config().vocab_size;
  Scheduler s(e, {.step_tokens = 64, .max_running = 8, .max_waiting = 4});
  EXPECT_THROW(s.submit({1, random_tokens(60, V, 1), 10, {}, {}}), RequestRefused) << "70 tokens > 64";
  EXPECT_THROW(s.submit({1, {}, 10, {}, {}}), RequestRefused);
  EXPECT_THROW(s.submit({1, {int32_t(V)}, 10, {}, {}}), RequestRefused);
  EXPECT_THROW(s.submit({1, {1}, 0, {}, {}}), RequestRefused);
  // Three requests of 2 pages each: two run, the third waits for pages.
  for (uint64_t i = 1; i <= 3; ++i) s.submit({i, random_tokens(20, V, i), 8, {}, {}});
  EXPECT_THROW(s.submit({1, {1}, 1, {}, {}}), RequestRefused) << "duplicate id";
  s.submit({4, {1, 2}, 2, {}, {}});
  EXPECT_THROW(s.submit({5, {1}, 1, {}, {}}), RequestRefused) << "queue full";
  std::map<uint64_t, size_t> first;
  for (const auto& ev : s.step()) first[ev.id] += ev.token >= 0;
  EXPECT_EQ(s.running(), 2u);
  EXPECT_EQ(s.waiting(), 2u);
  std::map<uint64_t, FinishReason> why;
  auto out = drain(s, &why);
  for (auto& [id, n] : first) out[id].insert(out[id].begin(), n, -1);
  for (uint64_t i = 1; i <= 3; ++i) EXPECT_EQ(out[i].size(), 8u);
  EXPECT_EQ(out[4].size(), 2u);
  EXPECT_EQ(pages_held_by_requests(e), 0);
}

TEST(Scheduler, CancelFreesTheCache) {
  Engine e(test_model("tiny"));
  const int64_t V = e.config().vocab_size;
  Scheduler s(e);
  s.submit({1, random_tokens(30, V, 1), 50, {}, {}});
  s.submit({2, random_tokens(10, V, 2), 5, {}, {}});
  size_t early = 0;
  for (int i = 0; i < 2; ++i)
    for (const auto& ev : s.step()) early += ev.id == 2 && ev.token >= 0;
  EXPECT_GT(e.cache().used_pages(), 0);
  s.cancel(1);
  s.cancel(42);  // unknown: ignored
  std::map<uint64_t, FinishReason> why;
  auto out = drain(s, &why);
  EXPECT_EQ(why[1], FinishReason::Cancelled);
  EXPECT_EQ(why[2], FinishReason::Length);
  EXPECT_EQ(early + out[2].size(), 5u);
  EXPECT_EQ(out[1].size(), 0u) << "nothing after the cancel";
  EXPECT_EQ(pages_held_by_requests(e), 0);
}

TEST(Scheduler, SpeculationInTheBatchEqualsPlainGreedyAndStopsWhereItShould) {
  EngineOptions o;
  o.kv_tokens = 8192;
  // f32 products and cache: batches of other shapes (drafts change them) differ only by summation order.
  o.compute = cpu::Precision::Exact;
  o.kv_dtype = KvCacheDtype::F32;
  Engine e(test_model("tiny"), o);
  const int64_t V = e.config().vocab_size;
  std::vector<GenerationRequest> reqs;
  for (uint64_t i = 0; i < 5; ++i) reqs.push_back({200 + i, random_tokens(2 + 9 * i, V, 70 + i), int64_t(3 + 4 * i), {}, {}});
  auto run = [&](int k, int64_t step_tokens, bool adaptive = false) {
    Scheduler s(e, {step_tokens, 64, 1024, 64, adaptive});  // speculation at any batch size
    LocalDrafter d(e);
    if (k > 0) s.set_drafter(&d, k);
    for (const auto& r : reqs) s.submit(r);
    auto out = drain(s);
    EXPECT_EQ(pages_held_by_requests(e), 0);
    return std::make_pair(out, s.speculation());
  };
  const auto plain = run(0, 256).first;
  for (int k : {1, 3}) {
    const auto [spec, stats] = run(k, 16);  // small budget: chunked prefill beside verification
    EXPECT_EQ(spec, plain) << "k=" << k;
    EXPECT_EQ(run(k, 16, true).first, plain) << "adaptive, k=" << k;
    ASSERT_EQ(stats.drafted.size(), static_cast<size_t>(k));
    EXPECT_GT(stats.drafted[0], 0);
  }
  // A stop id inside accepted drafts ends the request right there.
  const auto& first = plain.at(200 + 4);
  GenerationRequest r = reqs[4];
  r.stop_ids = {first[2]};
  Scheduler s(e);
  LocalDrafter d(e);
  s.set_drafter(&d, 3);
  s.submit(r);
  std::map<uint64_t, FinishReason> why;
  const auto out = drain(s, &why);
  const size_t stop_at = std::find(first.begin(), first.end(), first[2]) - first.begin();
  EXPECT_EQ(out.at(r.id), std::vector<int32_t>(first.begin(), first.begin() + stop_at + 1));
  EXPECT_EQ(why.at(r.id), FinishReason::Stop);
}

TEST(Scheduler, TwoMicroBatchesGiveTheSameTokens) {
  EngineOptions o;
  o.kv_tokens = 8192;
  o.compute = cpu::Precision::Exact;  // the two paths differ only by summation order
  o.kv_dtype = KvCacheDtype::F32;
  Engine one(test_model("tiny"), o);
  o.moe_lanes = 2;
  Engine two(test_model("tiny"), o);
  ASSERT_EQ(two.moe_lanes(), 2);
  const int64_t V = one.config().vocab_size;
  auto run = [&](Engine& e) {
    Scheduler s(e, {24, 64, 1024});
    for (uint64_t i = 0; i < 6; ++i) s.submit({300 + i, random_tokens(3 + 5 * i, V, 90 + i), 6, {}, {}});
    return drain(s);
  };
  EXPECT_EQ(run(two), run(one));
  // The overlapped step's logits are the plain step's (rows are computed alike;
  // only the batch split differs).
  const std::vector<StepInput> a{{1, random_tokens(7, V, 1), true}}, b{{2, random_tokens(5, V, 2), true}, {3, {4}, false}};
  std::vector<StepInput> ab = a;
  ab.insert(ab.end(), b.begin(), b.end());
  const StepOutput x = one.step(ab), y = two.step_overlapped(a, b);
  ASSERT_EQ(x.logit_rows, y.logit_rows);
  ASSERT_EQ(x.logits.size(), y.logits.size());
  EXPECT_LT(compare(x.logits, y.logits).max_abs, 1e-4);
  for (SeqId s : {1, 2, 3}) EXPECT_EQ(one.length(s), two.length(s));
}

// Log-probabilities ride with the tokens: at temperature 0 the chosen token is
// the most likely one, and speculation reports what plain decoding does.
TEST(Scheduler, LogprobsFollowTheTokensAndSpeculationGivesTheSame) {
  EngineOptions o;
  o.kv_tokens = 4096;
  o.compute = cpu::Precision::Exact;  // other batch shapes differ only by summation order
  o.kv_dtype = KvCacheDtype::F32;
  Engine e(test_model("tiny"), o);
  const int64_t V = e.config().vocab_size;
  auto run = [&](int k) {
    Scheduler s(e, {16, 64, 1024, 64});
    LocalDrafter d(e);
    if (k > 0) s.set_drafter(&d, k);
    GenerationRequest r{7, random_tokens(12, V, 3), 10, {}, {}};
    r.top_logprobs = 3;
    s.submit(r);
    GenerationRequest plain{8, random_tokens(9, V, 4), 10, {}, {}};
    s.submit(plain);
    std::vector<std::pair<int32_t, cpu::TokenLogprobs>> got;
    for (int i = 0; i < 1000 && !s.idle(); ++i)
      for (const auto& ev : s.step()) {
        if (ev.id == 8) EXPECT_FALSE(ev.logprobs.has_value()) << "not asked for";
        if (ev.id != 7 || ev.token < 0) continue;
        EXPECT_TRUE(ev.logprobs.has_value());
        if (ev.logprobs) got.emplace_back(ev.token, *ev.logprobs);
      }
    return got;
  };
  const auto plain = run(0);
  ASSERT_EQ(plain.size(), 10u);
  for (const auto& [tok, lp] : plain) {
    ASSERT_EQ(lp.top.size(), 3u);
    EXPECT_EQ(lp.top[0].first, tok) << "greedy picks the most likely token";
    EXPECT_FLOAT_EQ(lp.top[0].second, lp.logprob);
    EXPECT_LE(lp.logprob, 0.0f);
    EXPECT_GE(lp.top[0].second, lp.top[1].second);
    EXPECT_GE(lp.top[1].second, lp.top[2].second);
  }
  const auto spec = run(2);
  ASSERT_EQ(spec.size(), plain.size());
  for (size_t i = 0; i < plain.size(); ++i) {
    EXPECT_EQ(spec[i].first, plain[i].first);
    EXPECT_NEAR(spec[i].second.logprob, plain[i].second.logprob, 1e-3) << i;
  }
  GenerationRequest bad{9, {1, 2}, 2, {}, {}};
  bad.top_logprobs = 21;
  Scheduler s(e);
  EXPECT_THROW(s.submit(bad), RequestRefused);
}

// min_tokens: a stop id cannot end the request early, with or without speculation.
TEST(Scheduler, MinTokensKeepsStopIdsOutOfReachUntilThenWithOrWithoutDrafts) {
  EngineOptions o;
  o.kv_tokens = 4096;
  Engine e(test_model("tiny"), o);
  const int64_t V = e.config().vocab_size;
  const auto prompt = random_tokens(11, V, 21);
  const auto plain = greedy_generate(e, 9999, prompt, 12);
  e.release(9999);
  // The first greedy token as the stop id: without min_tokens it ends at once.
  auto run = [&](int64_t min_tokens, int k) {
    Scheduler s(e, {16, 64, 1024, 64});
    LocalDrafter d(e);
    if (k > 0) s.set_drafter(&d, k);
    GenerationRequest r{1, prompt, 12, {plain[0]}, {}};
    r.min_tokens = min_tokens;
    s.submit(r);
    return drain(s)[1];
  };
  EXPECT_EQ(run(0, 0), std::vector<int32_t>{plain[0]});
  const auto held = run(5, 0);
  ASSERT_GE(held.size(), 5u);
  for (size_t i = 0; i + 1 < held.size(); ++i) EXPECT_NE(held[i], plain[0]) << "a stop id before the end, at " << i;
  for (size_t i = 0; i < 5; ++i) EXPECT_NE(held[i], plain[0]) << i;
  EXPECT_EQ(run(5, 2), held) << "speculation verifies against the same masked logits";
  GenerationRequest bad{2, prompt, 3, {}, {}};
  bad.min_tokens = 4;
  Scheduler s(e);
  EXPECT_THROW(s.submit(bad), RequestRefused);
}

TEST(Scheduler, AResumedGenerationGoesOnAsIfNeverInterrupted) {
  // A replica failed after 10 tokens: another one is given the prompt and those
  // tokens as `resumed`. The penalties must count them as generated, or the
  // continuation differs.
  EngineOptions o;
  o.kv_tokens = 4096;
  o.compute = cpu::Precision::Exact;
  o.prefix_cache = false;
  Engine e(test_model("tiny"), o);
  const int64_t V = e.config().vocab_size;
  GenerationRequest whole{1, random_tokens(9, V, 77), 24, {}, {}};
  // Negative penalties: tokens said before are favoured, so the history shows.
  whole.adjust.presence_penalty = -2.0f;
  whole.adjust.frequency_penalty = -2.0f;
  Scheduler s(e);
  s.submit(whole);
  const auto all = drain(s)[1];
  ASSERT_EQ(all.size(), 24u);
  GenerationRequest rest = whole;
  rest.id = 2;
  rest.prompt.insert(rest.prompt.end(), all.begin(), all.begin() + 10);
  rest.resumed = 10;
  rest.max_new_tokens = 14;
  s.submit(rest);
  const auto tail = drain(s)[2];
  EXPECT_EQ(tail, std::vector<int32_t>(all.begin() + 10, all.end()));
  // The same without `resumed`: the penalties see a different history (this
  // is what the test could catch going wrong).
  GenerationRequest naive = rest;
  naive.id = 3;
  naive.resumed = 0;
  s.submit(naive);
  EXPECT_NE(drain(s)[3], tail);
  GenerationRequest bad = rest;
  bad.id = 4;
  bad.resumed = static_cast<int64_t>(bad.prompt.size());
  EXPECT_THROW(s.submit(bad), RequestRefused);
}
