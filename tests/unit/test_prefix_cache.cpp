// The prefix cache: pages shared between requests by reference count, the
// radix tree's matching and branching, LRU eviction that never blocks a new
// request, and requests served from the cache computing what they compute
// without it (logits, greedy tokens, speculation, cancellation, every dtype).
#include <gtest/gtest.h>

#include <map>
#include <numeric>

#include "model/drafter.h"
#include "model/prefix_cache.h"
#include "model/scheduler.h"
#include "tests/support/test_models.h"

using namespace moemesh;
using namespace moemesh::testing;

namespace {

std::vector<int32_t> iota_tokens(int n, int32_t from) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  std::iota(t.begin(), t.end(), from);
  return t;
}

std::vector<int32_t> concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// Fills `s` positions [0, n) of a reserved sequence so that pages can be cached.
void fill(LatentKvCache& c, SeqId s, int64_t n) {
  ASSERT_TRUE(c.reserve(s, n));
  c.set_length(s, n);
}

struct Outcome {
  std::map<uint64_t, std::vector<int32_t>> tokens;
  std::map<uint64_t, int64_t> cached;
  std::map<uint64_t, FinishReason> why;
};

Outcome drain(Scheduler& s, int max_steps = 10000) {
  Outcome r;
  for (int i = 0; i < max_steps && !s.idle(); ++i)
    for (const auto& e : s.step()) {
      if (e.token >= 0) r.tokens[e.id].push_back(e.token);
      if (e.finish != FinishReason::None) {
        r.why[e.id] = e.finish;
        r.cached[e.id] = e.cached_tokens;
      }
    }
  EXPECT_TRUE(s.idle());
  return r;
}

// No request holds a page: every used page is the prefix cache's alone.
void expect_only_cached_pages(const Engine& e) {
  const int64_t cached = e.prefix_cache() ? e.prefix_cache()->stats().pages : 0;
  EXPECT_EQ(e.cache().used_pages(), cached) << "pages leaked by finished requests";
  if (e.prefix_cache()) EXPECT_EQ(e.prefix_cache()->idle_pages(), cached) << "a cached page still has another holder";
}

EngineOptions small_pages(int64_t kv_tokens, bool prefix = true) {
  EngineOptions o;
  o.page_tokens = 4;
  o.kv_tokens = kv_tokens;
  o.prefix_cache = prefix;
  return o;
}

}  // namespace

TEST(PrefixCache, MatchesWholePagesOfTheLongestKnownPrefixAndBranches) {
  LatentKvCache c(1, 8, 4, 16);
  PrefixCache pc(c);
  const auto a = iota_tokens(13, 100);  // 3 full pages and one token
  fill(c, 1, 13);
  pc.insert(a.data(), std::vector<int32_t>(c.pages(1).begin(), c.pages(1).begin() + 3));
  EXPECT_EQ(pc.stats().pages, 3);
  EXPECT_EQ(c.page_refs(c.pages(1)[0]), 2) << "held by the sequence and the tree";

  // The same tokens: every full page, but never past max_tokens.
  EXPECT_EQ(pc.match(a.data(), 13, 12).size(), 3u);
  EXPECT_EQ(pc.match(a.data(), 13, 11).size(), 2u);
  // A prompt that differs inside page 2 shares pages 0 and 1 only.
  auto b = a;
  b[9] = 7;
  const auto mb = pc.match(b.data(), 13, 13);
  ASSERT_EQ(mb.size(), 2u);
  EXPECT_EQ(mb[0], c.pages(1)[0]);
  EXPECT_EQ(mb[1], c.pages(1)[1]);
  // Differing in the first token: nothing.
  auto d = a;
  d[0] = 5;
  EXPECT_TRUE(pc.match(d.data(), 13, 13).empty());

  // The branch: b's sequence adopts the shared pages and computes its own third.
  c.adopt(2, mb);
  EXPECT_EQ(c.length(2), 8);
  ASSERT_TRUE(c.reserve(2, 13));
  c.set_length(2, 13);
  pc.insert(b.data(), std::vector<int32_t>(c.pages(2).begin(), c.pages(2).begin() + 3));
  EXPECT_EQ(pc.stats().pages, 4) << "two shared pages, then one page per branch";
  EXPECT_EQ(c.page_refs(mb[0]), 3);
  EXPECT_EQ(pc.match(b.data(), 13, 13).size(), 3u);
  EXPECT_EQ(pc.match(a.data(), 13, 13).size(), 3u);

  // A write into a shared page is refused; the sequence's own pages take writes.
  std::vector<float> v(8, 1.0f);
  EXPECT_THROW(c.store(2, 0, 3, v.data()), std::logic_error);
  EXPECT_NO_THROW(c.store(2, 0, 12, v.data()));

  // Once no sequence runs, the tree alone holds its pages, and clearing it frees them all.
  c.release(1);
  c.release(2);
  EXPECT_EQ(c.used_pages(), 4);
  pc.clear();
  EXPECT_EQ(c.used_pages(), 0);
  EXPECT_EQ(pc.stats().pages, 0);
}

TEST(PrefixCache, EvictsLeastRecentlyUsedPagesOnlyTheTreeHoldsAndNeverBlocksAdmission) {
  LatentKvCache c(1, 8, 4, 6);  // 6 pages
  PrefixCache pc(c);
  const auto a = iota_tokens(8, 0), b = iota_tokens(8, 50), d = iota_tokens(8, 90);
  fill(c, 1, 8);
  pc.insert(a.data(), c.pages(1));
  c.release(1);
  fill(c, 2, 8);
  pc.insert(b.data(), c.pages(2));
  c.release(2);
  pc.match(a.data(), 8, 8);  // a is now the more recently used
  fill(c, 3, 8);             // two free pages left: no eviction yet
  EXPECT_EQ(pc.stats().evicted_pages, 0u);
  // d holds its pages; a new request needing 4 pages must evict 4: b's first (older), then a's.
  pc.insert(d.data(), c.pages(3));
  ASSERT_TRUE(c.reserve(4, 8)) << "cached pages never keep a request out";
  EXPECT_EQ(pc.stats().evicted_pages, 2u);
  EXPECT_TRUE(pc.match(b.data(), 8, 8).empty()) << "the least recently used prefix went first";
  EXPECT_EQ(pc.match(a.data(), 8, 8).size(), 2u);
  ASSERT_TRUE(c.reserve(5, 8));
  EXPECT_EQ(pc.stats().evicted_pages, 4u);
  EXPECT_EQ(pc.match(d.data(), 8, 8).size(), 2u) << "pages a sequence still holds are never evicted";
  EXPECT_FALSE(c.reserve(6, 4)) << "nothing evictable left: refused, as without a cache";
  for (SeqId s : {3, 4, 5}) c.release(s);
  EXPECT_EQ(c.used_pages(), pc.stats().pages);
  pc.clear();
  EXPECT_EQ(c.free_pages(), 6);
}

// A request that hits the cache gives the logits of the same request computed
// whole, for every cache dtype (exact products; the cached pages hold what the
// request would have stored itself).
class PrefixCacheDtypes : public ::testing::TestWithParam<KvCacheDtype> {};

TEST_P(PrefixCacheDtypes, AHitGivesTheLogitsOfTheWholePrefill) {
  EngineOptions o = small_pages(512);
  o.kv_dtype = GetParam();
  o.compute = cpu::Precision::Exact;
  Engine cached(test_model("tiny"), o);
  o.prefix_cache = false;
  Engine whole(test_model("tiny"), o);
  const int64_t V = cached.config().vocab_size;
  const auto system = random_tokens(22, V, 3);
  const auto first = concat(system, random_tokens(5, V, 4)), second = concat(system, random_tokens(7, V, 5));

  auto last_logits = [&](Engine& e, SeqId s, const std::vector<int32_t>& prompt) {
    const int64_t hit = e.start(s, prompt, static_cast<int64_t>(prompt.size()) + 1);
    EXPECT_GE(hit, 0);
    StepOutput out = e.step({{s, std::vector<int32_t>(prompt.begin() + hit, prompt.end()), false}});
    e.cache_prefix(s, prompt);
    e.release(s);
    return std::make_pair(hit, std::vector<float>(out.logits.begin(), out.logits.begin() + V));
  };
  EXPECT_EQ(last_logits(cached, 1, first).first, 0);
  const auto [hit, got] = last_logits(cached, 2, second);
  EXPECT_EQ(hit, 20) << "the system prompt's whole pages";
  const auto want = last_logits(whole, 2, second).second;
  const Diff d = compare(got, want);
  EXPECT_LE(d.max_abs, 1e-4 * std::max(1.0, d.max_ref));
  EXPECT_EQ(std::max_element(got.begin(), got.end()) - got.begin(), std::max_element(want.begin(), want.end()) - want.begin());
}

INSTANTIATE_TEST_SUITE_P(EveryDtype, PrefixCacheDtypes, ::testing::Values(KvCacheDtype::F32, KvCacheDtype::BF16, KvCacheDtype::FP8),
                         [](const auto& info) { return std::string(kv_cache_dtype_name(info.param)); });

TEST(PrefixCache, ConversationsAndSharedSystemPromptsHitAndGenerateWhatTheyWouldWithout) {
  Engine cached(test_model("tiny"), small_pages(2048));
  Engine plain(test_model("tiny"), small_pages(2048, false));
  const int64_t V = cached.config().vocab_size;
  const auto system = random_tokens(30, V, 11);
  // Two conversations of three turns over the same system prompt; each turn
  // sends the whole history (the answer's tokens, then the user's next words).
  auto run = [&](Engine& e) {
    Scheduler s(e, {.step_tokens = 16, .max_running = 8});
    std::map<uint64_t, std::vector<int32_t>> history;
    for (uint64_t conv : {1, 2}) history[conv] = concat(system, random_tokens(6, V, 20 + conv));
    Outcome all;
    for (int turn = 0; turn < 3; ++turn)
      for (auto& [conv, h] : history) {
        const uint64_t id = conv * 10 + turn;
        s.submit({id, h, 6, {}, {}});
        Outcome r = drain(s);
        h = concat(concat(h, r.tokens[id]), random_tokens(4, V, 40 + id));
        all.tokens[id] = r.tokens[id];
        all.cached[id] = r.cached[id];
      }
    expect_only_cached_pages(e);
    return all;
  };
  const Outcome with = run(cached), without = run(plain);
  EXPECT_EQ(with.tokens, without.tokens) << "greedy tokens are the same with the cache";
  for (const auto& [id, n] : without.cached) EXPECT_EQ(n, 0) << id;
  EXPECT_EQ(with.cached.at(10), 0);
  EXPECT_EQ(with.cached.at(20), 28) << "another conversation hits the system prompt's whole pages";
  // A later turn hits the whole earlier turn's full pages: its prompt and all
  // but the last answer token (which was never fed back).
  EXPECT_EQ(with.cached.at(11), 40);
  EXPECT_EQ(with.cached.at(21), 40);
  EXPECT_EQ(with.cached.at(12), 48);
  const auto& st = cached.prefix_cache()->stats();
  EXPECT_EQ(st.hit_tokens, 28u + 40 + 40 + 48 + 48);
  EXPECT_EQ(st.lookups, 6u);
}

TEST(PrefixCache, ACacheFarSmallerThanTheWorkingSetKeepsServingAndLeaksNoPage) {
  Engine e(test_model("tiny"), small_pages(64));  // 16 pages of 4 tokens
  const int64_t V = e.config().vocab_size;
  Scheduler s(e, {.step_tokens = 32, .max_running = 4});
  for (uint64_t i = 0; i < 24; ++i) {
    const auto base = random_tokens(22, V, 300 + i % 3);  // three prefixes, cut at five lengths
    s.submit({i + 1, std::vector<int32_t>(base.begin(), base.begin() + 10 + (i % 5) * 3), 4, {}, {}});
  }
  const Outcome r = drain(s);
  ASSERT_EQ(r.why.size(), 24u);
  for (const auto& [id, why] : r.why) EXPECT_EQ(why, FinishReason::Length) << id;
  EXPECT_GT(e.prefix_cache()->stats().evicted_pages, 0u) << "the working set did not fit: pages were evicted";
  EXPECT_GT(e.prefix_cache()->stats().hit_tokens, 0u) << "repeated prompts hit";
  expect_only_cached_pages(e);
}

TEST(PrefixCache, CancellingAHitMidPrefillLeavesTheOthersIntact) {
  Engine e(test_model("tiny"), small_pages(1024));
  Engine plain(test_model("tiny"), small_pages(1024, false));
  const int64_t V = e.config().vocab_size;
  const auto system = random_tokens(24, V, 8);
  const GenerationRequest warm{1, concat(system, random_tokens(3, V, 1)), 2, {}, {}};
  const GenerationRequest b{2, concat(system, random_tokens(40, V, 2)), 5, {}, {}};
  const GenerationRequest c{3, concat(system, random_tokens(9, V, 3)), 5, {}, {}};
  Scheduler s(e, {.step_tokens = 8, .max_running = 4});  // b's prefill takes several steps
  s.submit(warm);
  drain(s);
  s.submit(b);
  s.submit(c);
  Outcome r;
  for (int i = 0; i < 2; ++i)
    for (const auto& ev : s.step())
      if (ev.token >= 0) r.tokens[ev.id].push_back(ev.token);
  EXPECT_TRUE(r.tokens[2].empty()) << "b is still prefilling";
  s.cancel(2);
  const Outcome rest = drain(s);
  EXPECT_EQ(rest.why.at(2), FinishReason::Cancelled);
  EXPECT_EQ(rest.cached.at(3), 24);
  auto cr = r.tokens[3];
  cr.insert(cr.end(), rest.tokens.at(3).begin(), rest.tokens.at(3).end());
  Scheduler ps(plain);
  ps.submit(c);
  EXPECT_EQ(cr, drain(ps).tokens.at(3));
  expect_only_cached_pages(e);
}

TEST(PrefixCache, SpeculationWithHitsEqualsPlainGreedy) {
  Engine e(test_model("tiny"), small_pages(2048));
  Engine plain(test_model("tiny"), small_pages(2048, false));
  const int64_t V = e.config().vocab_size;
  const auto system = random_tokens(20, V, 13);
  std::vector<GenerationRequest> reqs;
  for (uint64_t i = 0; i < 4; ++i) reqs.push_back({50 + i, concat(system, random_tokens(3 + 2 * i, V, 60 + i)), 8, {}, {}});
  auto run = [&](Engine& en, int k) {
    Scheduler s(en, {16, 64, 1024, 64});
    LocalDrafter d(en);
    if (k > 0) s.set_drafter(&d, k);
    Outcome all;
    for (const auto& r : reqs) {  // one after another: each later one hits the system prompt
      s.submit(r);
      Outcome one = drain(s);
      all.tokens[r.id] = one.tokens[r.id];
      all.cached[r.id] = one.cached[r.id];
    }
    expect_only_cached_pages(en);
    return std::make_pair(all, s.speculation());
  };
  const auto greedy = run(plain, 0).first;
  const auto [spec, stats] = run(e, 2);
  EXPECT_EQ(spec.tokens, greedy.tokens);
  ASSERT_EQ(stats.drafted.size(), 2u);
  EXPECT_GT(stats.drafted[0], 0u) << "the request without a hit speculated";
  for (uint64_t i = 1; i < 4; ++i) EXPECT_EQ(spec.cached.at(50 + i), 20);
}
