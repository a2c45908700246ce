#include "model/draft_policy.h"

#include <algorithm>

namespace moemesh {
namespace {
constexpr double kRequestDecay = 0.9;   // a request's text can change character
constexpr double kModelDecay = 0.995;
constexpr double kPrior = 0.6, kPriorWeight = 2.0;  // before anything is measured: worth trying
constexpr double kShrink = 4.0;         // a request's counts weigh against the model-wide rate
constexpr int kProbeMin = 4, kProbeMax = 64;
}  // namespace

void StepCostFit::add(double u, double v, double seconds) {
  for (double* s : {&n_, &uu_, &uv_, &vv_, &ut_, &vt_, &t_, &v_, &u_}) *s *= decay_;
  n_ += 1;
  uu_ += u * u;
  uv_ += u * v;
  vv_ += v * v;
  ut_ += u * seconds;
  vt_ += v * seconds;
  t_ += seconds;
  v_ += v;
  u_ += u;
  solve();
}

void StepCostFit::solve() {
  const double det = uu_ * vv_ - uv_ * uv_;
  if (det > 1e-6 * uu_ * vv_) {
    a_ = (ut_ * vv_ - vt_ * uv_) / det;
    b_ = (vt_ * uu_ - ut_ * uv_) / det;
    if (b_ < 0) {
      b_ = 0;
      a_ = ut_ / uu_;
    } else if (a_ < 0) {
      a_ = 0;
      b_ = vt_ / vv_;
    }
    return;
  }
  // u and v moved together so far: split the cost evenly between them.
  b_ = v_ > 0 ? 0.5 * t_ / v_ : 0;
  a_ = u_ > 0 ? std::max(0.0, (t_ - b_ * v_) / u_) : 0;
}

double StepCostFit::predict(double u, double v) const { return a_ * u + b_ * v; }

DraftPolicy::DraftPolicy(int max_k, bool adaptive)
    : max_k_(std::max(0, max_k)), adaptive_(adaptive), drafted_(max_k_, 0.0), accepted_(max_k_, 0.0) {}

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
  s.probe_every = accepted > 0 ? kProbeMin : std::min(2 * s.probe_every, kProbeMax);
}

std::vector<int> DraftPolicy::choose(const std::vector<Candidate>& c, int64_t decodes, int64_t other_tokens) {
  const size_t n = c.size();
  std::vector<int> k(n, 0);
  if (!adaptive_ || !main_.known() || !draft_.known()) {
    // Fixed length, or nothing measured yet: draft as much as allowed, which measures.
    for (size_t i = 0; i < n; ++i) k[i] = std::clamp(c[i].max_k, 0, max_k_);
    return k;
  }
  // gain[i][j]: expected extra tokens from request i's (j+1)-th draft.
  std::vector<std::vector<double>> gain(n);
  for (size_t i = 0; i < n; ++i) {
    double p = 1;
    for (int j = 0; j < std::min(c[i].max_k, max_k_); ++j) {
      p *= request_acceptance(*c[i].state, j);
      gain[i].push_back(p);
    }
  }
  double tokens = static_cast<double>(decodes);
  int64_t drafts = 0, forwards = 0, rows = 0;
  auto seconds = [&](int64_t d, int64_t f, int64_t r) {
    const double main = main_.predict(1.0, static_cast<double>(decodes + other_tokens + d));
    return main + (f > 0 ? draft_.predict(static_cast<double>(f), static_cast<double>(r)) : 0.0);
  };
  double best_rate = tokens / std::max(1e-12, seconds(0, 0, 0));
  // Greedy: the single change (one request's drafts raised to some length) that
  // raises tokens per second the most, until none does.
  while (true) {
    size_t bi = n;
    int bk = 0;
    double b_rate = best_rate, b_tokens = 0;
    for (size_t i = 0; i < n; ++i) {
      double t = tokens;
      for (int kk = k[i] + 1; kk <= static_cast<int>(gain[i].size()); ++kk) {
        t += gain[i][kk - 1];
        const int64_t r = rows + (k[i] == 0 ? c[i].pending_rows + kk - 1 : kk - k[i]);
        const double rate = t / std::max(1e-12, seconds(drafts + kk - k[i], std::max<int64_t>(forwards, kk), r));
        if (rate > b_rate * (1 + 1e-9)) {
          b_rate = rate;
          bi = i;
          bk = kk;
          b_tokens = t;
        }
      }
    }
    if (bi == n) break;
    rows += k[bi] == 0 ? c[bi].pending_rows + bk - 1 : bk - k[bi];
    drafts += bk - k[bi];
    forwards = std::max<int64_t>(forwards, bk);
    k[bi] = bk;
    tokens = b_tokens;
    best_rate = b_rate;
  }
  // Requests left without drafts probe with one now and then.
  for (size_t i = 0; i < n; ++i) {
    RequestState& s = *c[i].state;
    if (k[i] > 0) {
      s.idle_steps = 0;
    } else if (c[i].max_k > 0 && max_k_ > 0 && ++s.idle_steps >= s.probe_every) {
      s.idle_steps = 0;
      k[i] = 1;
    }
  }
  return k;
}

}  // namespace moemesh
