#include "model/draft_policy.h"

#include <algorithm>

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
constexpr int64_t kRetryAfter = 128;   // a cap not measured for this many steps is tried again
}  // namespace

DraftPolicy::DraftPolicy(int max_k, bool adaptive)
    : max_k_(std::max(0, max_k)),
      adaptive_(adaptive),
      drafted_(max_k_, 0.0),
      accepted_(max_k_, 0.0),
      arms_(static_cast<size_t>(max_k_) + 1),
      cap_(max_k_) {}

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

void DraftPolicy::record_outcome(int64_t tokens, double seconds, bool decode_only) {
  if (!adaptive_ || !decode_only || seconds <= 0) return;
  Arm& arm = arms_[cap_];
  arm.tokens = arm.tokens * kArmDecay + static_cast<double>(tokens);
  arm.seconds = arm.seconds * kArmDecay + seconds;
  arm.last_step = steps_++;
  if (++steps_at_cap_ < kStepsPerCap) return;
  steps_at_cap_ = 0;
  // A cap unmeasured for long (or ever) is tried next, shortest first; else the best.
  for (int c = 0; c <= max_k_; ++c)
    if (arms_[c].last_step < 0 || steps_ - arms_[c].last_step > kRetryAfter) {
      cap_ = c;
      return;
    }
  int best = cap_;
  for (int c = 0; c <= max_k_; ++c)
    if (arms_[c].tokens * arms_[best].seconds > arms_[best].tokens * arms_[c].seconds) best = c;
  cap_ = best;
}

std::vector<int> DraftPolicy::choose(const std::vector<Candidate>& c) {
  const size_t n = c.size();
  std::vector<int> k(n, 0);
  if (!adaptive_) {
    for (size_t i = 0; i < n; ++i) k[i] = std::clamp(c[i].max_k, 0, max_k_);
    return k;
  }
  for (size_t i = 0; i < n; ++i) {
    RequestState& s = *c[i].state;
    // As many drafts as the cap allows while each is likely enough to be kept.
    double keep = 1;
    for (int j = 0; j < std::min(c[i].max_k, cap_); ++j) {
      keep *= request_acceptance(s, j);
      if (keep < kMinKeep) break;
      k[i] = j + 1;
    }
    if (k[i] > 0) {
      s.idle_steps = 0;
      s.probe_every = kProbeMin;
    } else if (c[i].max_k > 0 && cap_ > 0 && ++s.idle_steps >= s.probe_every) {
      // A probe that does not bring drafting back doubles the wait for the next.
      s.idle_steps = 0;
      s.probe_every = std::min(2 * s.probe_every, kProbeMax);
      k[i] = 1;
    }
  }
  return k;
}

}  // namespace moemesh
