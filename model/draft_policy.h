// How many tokens to draft for each decoding request of a step, chosen from
// what speculation has measured: each request's acceptance per draft position
// (shrunk towards the model-wide rate) and the step costs (main-model seconds
// per token, MTP seconds per forward and per row, fitted online). The choice
// maximizes expected tokens per second of the whole step, so drafting stops
// where it does not pay (a random model: within a few steps) and grows where it
// does, at any batch size. A request left at zero drafts probes with one now and
// then, backing off while probes fail, so a change of text is noticed.
#pragma once

#include <cstdint>
#include <vector>

namespace moemesh {

// Least squares of seconds = a·u + b·v with exponential forgetting; a and b are
// kept non-negative. Until u and v have varied independently, b is taken to be
// half of the mean cost per unit of v.
class StepCostFit {
 public:
  explicit StepCostFit(double decay = 0.97) : decay_(decay) {}
  void add(double u, double v, double seconds);
  bool known() const { return n_ > 0; }
  double predict(double u, double v) const;

 private:
  void solve();
  double decay_;
  double n_ = 0, uu_ = 0, uv_ = 0, vv_ = 0, ut_ = 0, vt_ = 0, t_ = 0, v_ = 0, u_ = 0;
  double a_ = 0, b_ = 0;
};

class DraftPolicy {
 public:
  // What is known of one request's drafts (decayed counts per position).
  struct RequestState {
    std::vector<double> drafted, accepted;
    int idle_steps = 0;   // decode steps without drafts since the last
    int probe_every = 4;  // steps at zero drafts before a probe of one
  };
  struct Candidate {
    RequestState* state;
    int max_k;             // at most this many drafts (length left, step budget)
    int64_t pending_rows;  // rows the drafter must be fed before it drafts
  };

  // max_k: the most drafts per step; adaptive false: always max_k (as capped).
  DraftPolicy(int max_k, bool adaptive);
  int max_k() const { return max_k_; }
  bool adaptive() const { return adaptive_; }

  // Drafts per candidate, in order. `decodes`: requests decoding this step (with
  // or without drafts); `other_tokens`: the step's prompt tokens.
  std::vector<int> choose(const std::vector<Candidate>& c, int64_t decodes, int64_t other_tokens);
  // Measurements: a main-model step of `tokens` tokens; a draft call of
  // `forwards` MTP forwards over `rows` rows in all.
  void record_step(int64_t tokens, double seconds) { main_.add(1.0, static_cast<double>(tokens), seconds); }
  void record_draft(int64_t forwards, int64_t rows, double seconds) {
    draft_.add(static_cast<double>(forwards), static_cast<double>(rows), seconds);
  }
  // A verification: `drafted` drafts of which the first `accepted` were kept.
  void record_verdict(RequestState& s, int drafted, int accepted);
  // The model-wide acceptance estimate at a draft position (conditional on reaching it).
  double acceptance(int pos) const;

 private:
  double request_acceptance(const RequestState& s, int pos) const;
  int max_k_;
  bool adaptive_;
  StepCostFit main_, draft_;
  std::vector<double> drafted_, accepted_;  // model-wide, decayed
};

}  // namespace moemesh
