// How many tokens to draft for each decoding request of a step. Two measured
// things decide: each request's acceptance per draft position (shrunk towards the
// model-wide rate), which sets how far its drafts are likely to be kept, and the
// tokens per second that whole steps delivered under each cap on draft length
// (0 .. max_k), which sets how far drafting pays on this machine, model and
// batch: the best cap lately is used, every other cap is tried for a few steps
// now and then. Measuring outcomes rather than predicting them from a cost model
// means that no cost (caches, the thread pool, the wire to a remote drafter) can
// make drafting slower than not drafting for long; a random model's drafts are
// never kept, so it stops drafting within a few steps. A request left at zero
// drafts probes with one now and then, backing off while probes fail, so that a
// change of text is noticed.
#pragma once

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

  // Drafts per candidate, in order.
  std::vector<int> choose(const std::vector<Candidate>& c);
  // A verification: `drafted` drafts of which the first `accepted` were kept.
  void record_verdict(RequestState& s, int drafted, int accepted);
  // What a whole step delivered: tokens emitted in `seconds` (drafting, main
  // step and verification together); `decode_only`: no prompt tokens in it
  // (only those steps compare caps).
  void record_outcome(int64_t tokens, double seconds, bool decode_only);
  // The model-wide acceptance estimate at a draft position (conditional on reaching it).
  double acceptance(int pos) const;

 private:
  double request_acceptance(const RequestState& s, int pos) const;
  int max_k_;
  bool adaptive_;
  std::vector<double> drafted_, accepted_;  // model-wide, decayed
  // Delivered tokens and seconds per cap, decayed per step measured under it.
  struct Arm {
    double tokens = 0, seconds = 0;
    int64_t last_step = -1;  // the last decode-only step measured under it
  };
  std::vector<Arm> arms_;
  int cap_;
  int steps_at_cap_ = 0;
  int64_t steps_ = 0;
};

}  // namespace moemesh
