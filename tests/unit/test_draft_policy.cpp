// The adaptive draft policy against synthetic machines: each cap on draft
// length delivers a known rate (tokens per step, seconds per step), so which cap
// it settles on and what its exploring costs are exact consequences of the
// policy, not of this machine's timing.
#include <gtest/gtest.h>

#include <deque>
#include <random>

#include "model/draft_policy.h"

using namespace moemesh;

namespace {
// A machine: under cap c a decode step of the batch takes seconds[c] and
// delivers tokens[c] (per 100 steps of one request: tokens are whole); drafts
// are kept with probability `accept`.
struct Machine {
  std::vector<double> seconds, tokens;
  double accept = 0.85;
};

struct Outcome {
  std::vector<int64_t> steps_at;  // steps spent under each cap
  double seconds = 0, tokens = 0;
  double rate() const { return tokens / seconds; }
};

// `steps` decode steps of `batch` requests that may each draft up to max_k.
Outcome simulate(DraftPolicy& p, const Machine& m, int64_t batch, int steps, uint32_t seed = 1) {
  std::mt19937 rng(seed);
  std::bernoulli_distribution keep(m.accept);
  std::deque<DraftPolicy::RequestState> states(static_cast<size_t>(batch));
  Outcome r;
  r.steps_at.assign(m.seconds.size(), 0);
  for (int s = 0; s < steps; ++s) {
    std::vector<DraftPolicy::Candidate> c;
    for (auto& st : states) c.push_back({&st, p.max_k()});
    const int cap = p.cap(batch);
    const std::vector<int> k = p.choose(c, batch);
    for (size_t i = 0; i < k.size(); ++i) {
      int kept = 0;
      while (kept < k[i] && keep(rng)) ++kept;
      if (k[i] > 0) p.record_verdict(states[i], k[i], kept);
    }
    r.steps_at[cap] += 1;
    r.seconds += m.seconds[cap];
    r.tokens += m.tokens[cap];
    p.record_outcome(static_cast<int64_t>(100 * m.tokens[cap]), 100 * m.seconds[cap], true, batch);
  }
  return r;
}

// Always cap c: what the policy is measured against.
double fixed_rate(const Machine& m, int c) { return m.tokens[c] / m.seconds[c]; }
}  // namespace

// Drafting loses by a lot (a remote drafter's round trip): the policy keeps to
// no drafts, and its trials of the other caps cost under 3 % of the rate.
TEST(DraftPolicy, WhereDraftingLosesExploringCostsUnderThreePercent) {
  const Machine m{{1.0, 2.8, 3.6, 4.4}, {1, 1.85, 2.6, 3.2}};
  DraftPolicy p(3, true);
  simulate(p, m, 1, 400);  // learns
  const Outcome r = simulate(p, m, 1, 4000);
  std::printf("no drafts %lld of 4000 steps, rate %.3f of off\n", static_cast<long long>(r.steps_at[0]), r.rate() / fixed_rate(m, 0));
  EXPECT_GT(r.rate(), 0.97 * fixed_rate(m, 0));
  EXPECT_GT(r.steps_at[1] + r.steps_at[2] + r.steps_at[3], 0) << "the other caps are still tried now and then";
}

// Drafting one token pays, longer drafts do not: the policy settles on one.
TEST(DraftPolicy, SettlesOnTheCapThatDeliversMost) {
  const Machine m{{1.0, 1.4, 2.2, 3.0}, {1, 1.85, 2.6, 3.2}};
  DraftPolicy p(3, true);
  simulate(p, m, 4, 400);
  const Outcome r = simulate(p, m, 4, 4000);
  EXPECT_GT(r.steps_at[1], 3600);
  EXPECT_GT(r.rate(), 0.97 * fixed_rate(m, 1));
}

// Batch size classes are measured apart: at batch 1 drafting pays, at 32 it
// does not, and one's measurements do not decide for the other.
TEST(DraftPolicy, EachBatchSizeClassFindsItsOwnCap) {
  const Machine small{{1.0, 1.2, 1.9, 2.6}, {1, 1.85, 2.6, 3.2}};
  const Machine large{{32.0, 70.0, 100.0, 130.0}, {32, 59, 83, 102}};
  DraftPolicy p(3, true);
  for (int round = 0; round < 10; ++round) {
    simulate(p, small, 1, 100, round);
    simulate(p, large, 32, 100, round);
  }
  EXPECT_GT(simulate(p, small, 1, 1000).steps_at[1], 900);
  EXPECT_GT(simulate(p, large, 32, 1000).steps_at[0], 900);
}

// A losing cap that starts to win (the text or the load changed) is taken
// up again after its next trial.
TEST(DraftPolicy, ACapThatStartsToWinIsTakenUp) {
  const Machine loses{{1.0, 2.0, 3.0, 4.0}, {1, 1.85, 2.6, 3.2}};
  const Machine wins{{1.0, 1.2, 2.0, 3.0}, {1, 1.85, 2.6, 3.2}};
  DraftPolicy p(3, true);
  EXPECT_GT(simulate(p, loses, 1, 2000).steps_at[0], 1800);
  EXPECT_GT(simulate(p, wins, 1, 8000).steps_at[1], 4000);
}

// Under a cap, a request drafts as far as its own acceptance makes it likely
// to be kept: one whose drafts keep failing stops (but for rare probes), one
// whose drafts are kept goes on.
TEST(DraftPolicy, ARequestDraftsAsFarAsItsDraftsAreKept) {
  const Machine pays{{1.0, 1.1, 1.3, 1.5}, {1, 1.9, 2.8, 3.7}};
  DraftPolicy p(3, true);
  simulate(p, pays, 2, 400);
  ASSERT_GT(p.cap(2), 0) << "the premise: drafting pays";
  DraftPolicy::RequestState good, bad;
  int good_drafts = 0, bad_drafts = 0;
  for (int s = 0; s < 200; ++s) {
    const std::vector<int> k = p.choose({{&good, 3}, {&bad, 3}}, 2);
    if (k[0] > 0) p.record_verdict(good, k[0], k[0]);
    if (k[1] > 0) p.record_verdict(bad, k[1], 0);
    good_drafts += k[0];
    bad_drafts += k[1];
    p.record_outcome(2, 1.0, false, 2);  // not decode-only: the cap stays
  }
  EXPECT_GT(good_drafts, 200 * p.cap(2) * 9 / 10);
  EXPECT_LT(bad_drafts, good_drafts / 10);
  EXPECT_GT(bad_drafts, 0) << "it still probes";
}

// Fixed drafting is no policy: every request drafts max_k whatever is measured.
TEST(DraftPolicy, FixedAlwaysDraftsTheMost) {
  DraftPolicy p(2, false);
  DraftPolicy::RequestState a, b;
  EXPECT_EQ(p.choose({{&a, 2}, {&b, 1}}, 2), (std::vector<int>{2, 1}));
  p.record_outcome(1, 100.0, true, 2);
  EXPECT_EQ(p.cap(2), 2);
}
