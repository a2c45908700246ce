#include "model/draft_policy.h"

#include <algorithm>
#include <bit>

namespace moemesh {
namespace {
constexpr double kRequestDecay = 0.9;  // a request's text can change character
constexpr double kModelDecay = 0.995;
constexpr double kPrior = 0.6, kPriorWeight = 2.0;  // before anything is measured: worth trying
constexpr double kShrink = 4.0;        // a request's counts weigh against the model-wide rate
constexpr double kMinKeep = 0.3;       // a draft less likely than this to be kept is not made
constexpr int kProbeMin = 4, kProbeMax = 64;
constexpr double kArmDecay = 0.9;      // a cap's rate is that of its last ten steps or so
constexpr int kStepsPerCap = 8;        // steps measured under a cap before the cap is chosen again
constexpr double kMargin = 1.03;       // a trial must beat the best by this much to replace it
// A losing cap is tried again after this many steps, then twice as many after
// each trial it loses: exploring costs a per cent or so of the steps after a
// few rounds, and a change (the text, the load) is still noticed.
constexpr int64_t kRetryMin = 64, kRetryMax = 4096;
constexpr size_t kClasses = 8;         // batch 1, 2–3, 4–7, …, 128 and more
}  // namespace

DraftPolicy::DraftPolicy(int max_k, bool adaptive)
    : max_k_(std::max(0, max_k)), adaptive_(adaptive), drafted_(max_k_, 0.0), accepted_(max_k_, 0.0) {
  Arms a;
  a.arm.assign(static_cast<size_t>(max_k_) + 1, Arm{0, 0, -1, kRetryMin});
  // Before anything is measured one draft is worth trying: it is the cheapest
  // way to learn acceptance, and its neighbours (none, two) are tried next.
  a.cap = a.best = std::min(1, max_k_);
  classes_.assign(kClasses, a);
}

size_t DraftPolicy::batch_class(int64_t batch) {
  return std::min<size_t>(std::bit_width(static_cast<uint64_t>(std::max<int64_t>(batch, 1))) - 1, kClasses - 1);
}

int DraftPolicy::cap(int64_t batch) const { return adaptive_ ? classes_[batch_class(batch)].cap : max_k_; }

double DraftPolicy::acceptance(int pos) const {
  return (accepted_[pos] + kPrior * kPriorWeight) / (drafted_[pos] + kPriorWeight);
}

double DraftPolicy::request_acceptance(const RequestState& s, int pos) const {
  const double d = pos < static_cast<int>(s.drafted.size()) ? s.drafted[pos] : 0.0;
  const double a = pos < static_cast<int>(s.accepted.size()) ? s.accepted[pos] : 0.0;
  return (a + kShrink * acceptance(pos)) / (d + kShrink);
}

void DraftPolicy::record_verdict(RequestState& s, int drafted, int accepted) {
  s.drafted.resize(max_k_, 0.0);
  s.accepted.resize(max_k_, 0.0);
  for (int j = 0; j < max_k_; ++j) {
    s.drafted[j] *= kRequestDecay;
    s.accepted[j] *= kRequestDecay;
    drafted_[j] *= kModelDecay;
    accepted_[j] *= kModelDecay;
  }
  // Position j was tried only when every draft before it was accepted.
  for (int j = 0; j < std::min(drafted, max_k_) && j <= accepted; ++j) {
    s.drafted[j] += 1;
    drafted_[j] += 1;
    if (j < accepted) {
      s.accepted[j] += 1;
      accepted_[j] += 1;
    }
  }
}

void DraftPolicy::record_outcome(int64_t tokens, double seconds, bool decode_only, int64_t batch) {
  const bool chose = chose_;
  chose_ = false;
  if (!adaptive_ || !decode_only || seconds <= 0) return;
  Arms& a = classes_[batch_class(batch)];
  // A step in which no request could draft (none was asked) ran as under no cap:
  // it measures cap 0 and is no step of a trial.
  const bool as_cap = chose || a.cap == 0;
  if (as_cap && a.switched) {
    // The first step under a new cap pays for the switch (the drafter catching
    // up on the tokens decoded without it): a one-off, not the cap's rate.
    a.switched = false;
    return;
  }
  Arm& arm = a.arm[as_cap ? a.cap : 0];
  if (as_cap && a.steps_at_cap == 0 && (a.trial || a.tried >= 0)) {
    // Trials and the best's measurement after one start afresh: what a cap did
    // long ago (shorter contexts, another load) is no evidence about now.
    arm.tokens = 0;
    arm.seconds = 0;
  }
  arm.tokens = arm.tokens * kArmDecay + static_cast<double>(tokens);
  arm.seconds = arm.seconds * kArmDecay + seconds;
  arm.last_step = a.steps++;
  if (as_cap && ++a.steps_at_cap >= kStepsPerCap) next_cap(a);
}

double DraftPolicy::Arm::rate() const { return seconds > 0 ? tokens / seconds : 0.0; }

void DraftPolicy::next_cap(Arms& a) {
  a.steps_at_cap = 0;
  const int was = a.cap;
  if (a.trial) {
    // A trial ended: the best is measured again before the trial is judged.
    a.trial = false;
    a.tried = a.cap;
    a.cap = a.best;
  } else {
    if (a.tried >= 0) {
      // The trial against the best just before and just after it (every cap's
      // rate drifts as contexts grow and the load changes), by a margin: a
      // close call is noise, and keeping the best costs nothing.
      Arm& tried = a.arm[a.tried];
      const double best_then = 0.5 * (a.best_before + a.arm[a.best].rate());
      if (tried.rate() > kMargin * best_then) {
        a.arm[a.best].retry_every = kRetryMin;
        a.best = a.tried;
        tried.retry_every = kRetryMin;
      } else {
        tried.retry_every = std::min(2 * tried.retry_every, kRetryMax);
      }
      a.tried = -1;
    }
    // A neighbour of the best never measured, or not for its retry interval, is
    // tried next (the shorter first); else the best goes on. Only neighbours:
    // tokens per second rise with the cap up to the best and fall after it, so a
    // cap past a losing neighbour would lose too, and trying it would cost most.
    a.cap = a.best;
    for (int c : {a.best - 1, a.best + 1})
      if (c >= 0 && c <= max_k_ && (a.arm[c].last_step < 0 || a.steps - a.arm[c].last_step > a.arm[c].retry_every)) {
        a.best_before = a.arm[a.best].rate();
        a.cap = c;
        a.trial = true;
        break;
      }
  }
  if (a.cap != was) a.switched = true;
}

std::vector<int> DraftPolicy::choose(const std::vector<Candidate>& c, int64_t batch) {
  const size_t n = c.size();
  std::vector<int> k(n, 0);
  if (!adaptive_) {
    for (size_t i = 0; i < n; ++i) k[i] = std::clamp(c[i].max_k, 0, max_k_);
    return k;
  }
  chose_ = true;
  const int cap = classes_[batch_class(batch)].cap;
  for (size_t i = 0; i < n; ++i) {
    RequestState& s = *c[i].state;
    // As many drafts as the cap allows while each is likely enough to be kept.
    double keep = 1;
    for (int j = 0; j < std::min(c[i].max_k, cap); ++j) {
      keep *= request_acceptance(s, j);
      if (keep < kMinKeep) break;
      k[i] = j + 1;
    }
    if (k[i] > 0) {
      s.idle_steps = 0;
      s.probe_every = kProbeMin;
    } else if (c[i].max_k > 0 && cap > 0 && ++s.idle_steps >= s.probe_every) {
      // A probe that does not bring drafting back doubles the wait for the next.
      s.idle_steps = 0;
      s.probe_every = std::min(2 * s.probe_every, kProbeMax);
      k[i] = 1;
    }
  }
  return k;
}

}  // namespace moemesh
