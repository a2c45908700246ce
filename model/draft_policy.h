// How many tokens to draft for each decoding request of a step. Two measured
// things decide: each request's acceptance per draft position (shrunk towards the
// model-wide rate), which sets how far its drafts are likely to be kept, and the
// tokens per second that whole steps delivered under each cap on draft length
// (0 .. max_k), which sets how far drafting pays on this machine, model and
// batch. Caps are compared within a batch size class (1, 2–3, 4–7, …): a step of
// 32 requests delivers more tokens per second than a step of one whatever the
// cap. The best cap lately is used; the caps next to it are tried for a few
// steps now and then, and a cap that loses its trial waits twice as long for the
// next, so that exploring costs a per cent or so once the best is known.
// Measuring outcomes rather than predicting them from a cost model means that no
// cost (caches, the thread pool, the wire to a remote drafter) can make drafting
// slower than not drafting for long; a random model's drafts are never kept, so
// it stops drafting within a few steps. A request left at zero drafts probes
// with one now and then, backing off while probes fail, so that a change of text
// is noticed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace moemesh {

class DraftPolicy {
 public:
  // What is known of one request's drafts (decayed counts per position).
  struct RequestState {
    std::vector<double> drafted, accepted;
    int idle_steps = 0;   // decode steps without drafts since the last
    int probe_every = 4;  // steps at zero drafts before a probe of one (doubles per failed probe)
  };
  struct Candidate {
    RequestState* state;
    int max_k;  // at most this many drafts (length left, step budget)
  };

  // max_k: the most drafts per step; adaptive false: always max_k (as capped).
  DraftPolicy(int max_k, bool adaptive);
  int max_k() const { return max_k_; }
  bool adaptive() const { return adaptive_; }

  // Drafts per candidate, in order, in a step decoding `batch` requests.
  std::vector<int> choose(const std::vector<Candidate>& c, int64_t batch);
  // A verification: `drafted` drafts of which the first `accepted` were kept.
  void record_verdict(RequestState& s, int drafted, int accepted);
  // What a step decoding `batch` requests delivered: tokens emitted in `seconds`
  // (drafting, main step and verification together); `decode_only`: no prompt
  // tokens in it (only those steps compare caps). A step without a choose()
  // (no request could draft) measures no drafts.
  void record_outcome(int64_t tokens, double seconds, bool decode_only, int64_t batch);
  // The model-wide acceptance estimate at a draft position (conditional on reaching it).
  double acceptance(int pos) const;
  // The cap on draft length now used for steps of `batch` requests.
  int cap(int64_t batch) const;

 private:
  // Delivered tokens and seconds under one cap, decayed per step measured under it.
  struct Arm {
    double tokens = 0, seconds = 0;
    int64_t last_step = -1;   // the last decode-only step measured under it
    int64_t retry_every;      // steps before it is tried again; doubles per lost trial
    double rate() const;      // tokens per second
  };
  // The caps' measurements for one batch size class.
  struct Arms {
    std::vector<Arm> arm;
    int cap = 0;              // in use now
    int best = 0;             // in use but for trials
    bool trial = false;       // cap is being tried
    int tried = -1;           // the cap whose trial waits for the best's measurement after it
    double best_before = 0;   // the best's rate just before the trial
    bool switched = true;     // the next step is the first under cap: not measured
    int steps_at_cap = 0;
    int64_t steps = 0;
  };
  static size_t batch_class(int64_t batch);
  double request_acceptance(const RequestState& s, int pos) const;
  void next_cap(Arms& a);

  int max_k_;
  bool adaptive_;
  std::vector<double> drafted_, accepted_;  // model-wide, decayed
  std::vector<Arms> classes_;
  bool chose_ = false;  // choose() was called for this step (until its outcome comes)
};

}  // namespace moemesh
