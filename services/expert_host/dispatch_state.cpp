#include "dispatch_state.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>

namespace moemesh::dispatch_internal {

const char* retry_reason_name(RetryReason r) {
  switch (r) {
    case RetryReason::Disconnect: return "disconnect";
    case RetryReason::Deadline: return "deadline";
    case RetryReason::NotHeld: return "not_held";
    case RetryReason::ShuttingDown: return "shutting_down";
    case RetryReason::Error: return "error";
  }
  return "?";
}

// ---- LatencyTracker ----

int LatencyTracker::bucket_of(int64_t rows) {
  int b = 0;
  while (b + 1 < kBuckets && (int64_t{1} << b) < rows) ++b;
  return b;
}

void LatencyTracker::add(int64_t rows, double seconds) {
  Bucket& b = buckets_[bucket_of(rows)];
  b.s[b.next] = static_cast<float>(seconds);
  b.next = (b.next + 1) % kSamples;
  b.n = std::min(b.n + 1, kSamples);
  ++total_;
}

std::optional<double> LatencyTracker::quantile(int64_t rows, double p) const {
  const int want = bucket_of(rows);
  // The nearest bucket with enough samples; a smaller one scaled up by the size ratio.
  for (int d = 0; d < kBuckets; ++d)
    for (int b : {want - d, want + d}) {
      if (b < 0 || b >= kBuckets || buckets_[b].n < kEnough) continue;
      std::vector<float> s(buckets_[b].s.begin(), buckets_[b].s.begin() + buckets_[b].n);
      const size_t k = std::min(s.size() - 1, static_cast<size_t>(std::ceil(p * static_cast<double>(s.size()))) - 1);
      std::nth_element(s.begin(), s.begin() + static_cast<long>(k), s.end());
      const double q = s[k];
      return b < want ? q * static_cast<double>(int64_t{1} << (want - b)) : q;
    }
  return std::nullopt;
}

std::chrono::microseconds LatencyTracker::deadline(int64_t rows, const DeadlineRule& r) const {
  const auto q = quantile(rows, r.percentile);
  if (!q) return r.floor * 4;
  const auto d = std::chrono::microseconds(static_cast<int64_t>(*q * r.factor * 1e6));
  return std::max(d, r.floor);
}

// ---- HostSet ----

bool HostView::holds(int32_t e) const { return std::binary_search(experts.begin(), experts.end(), e); }

double HostView::expected_seconds(int64_t rows) const {
  const int64_t total = static_cast<int64_t>(queued_rows()) + std::max<int64_t>(rows, 1);
  // Ties (both unmeasured, or equal) go to the shorter queue.
  return latency.quantile(total, 0.5).value_or(0.0) + 1e-9 * queued_rows();
}

HostSet::HostSet(int32_t n_experts, std::string zone, int64_t zone_overload_rows)
    : n_experts_(n_experts), zone_(std::move(zone)), zone_overload_rows_(zone_overload_rows) {}

int HostSet::find(const std::string& name) const {
  for (size_t i = 0; i < hosts_.size(); ++i)
    if (hosts_[i].name == name) return static_cast<int>(i);
  return -1;
}

std::optional<HostSet::Change> HostSet::apply(const PlacementTable& t) {
  if (t.version <= version_) return std::nullopt;
  Change c;
  std::vector<bool> seen(hosts_.size(), false);
  for (const TableHost& th : t.hosts) {
    if (th.state == HostState::Dead) continue;
    int i = find(th.name);
    if (i < 0) {
      hosts_.emplace_back();
      i = static_cast<int>(hosts_.size()) - 1;
      hosts_.back().name = th.name;
      seen.push_back(false);
    }
    HostView& h = hosts_[i];
    seen[i] = true;
    if (h.endpoint != th.endpoint) {
      // New, or restarted elsewhere: a fresh connection (the caller dials every
      // listed host without one) and no history.
      if (!h.endpoint.empty()) c.disconnect.push_back(i);
      h.endpoint = th.endpoint;
      h.up = false;
      h.inflight_rows = 0;
      h.latency = LatencyTracker{};
    }
    h.zone = th.zone;
    h.state = th.state;
    h.listed = true;
    h.suspect = th.suspect;
    h.load = th.load;
    h.experts = th.experts;
    std::sort(h.experts.begin(), h.experts.end());
    for (int32_t e : h.experts)
      if (e < 0 || e >= n_experts_) h.experts.clear();  // a table naming experts this model lacks: use none of them
    // The router has seen the suspicion (it published since): its probation flag now speaks for it.
    h.slow_at = 0;
  }
  for (size_t i = 0; i < hosts_.size(); ++i)
    if (!seen[i]) hosts_[i].listed = false;
  version_ = t.version;
  return c;
}

Pick HostSet::choose(int32_t expert, int64_t rows, const std::vector<int>& avoid, int* host) const {
  if (version_ == 0) return Pick::Wait;  // no table yet
  // Candidates by tier: 0 ready and healthy, 1 ready but suspect or slow,
  // 2 draining and healthy, 3 draining and suspect or slow.
  bool any_holder = false;
  int best_tier = 4;
  std::vector<int> cands;
  for (size_t i = 0; i < hosts_.size(); ++i) {
    const HostView& h = hosts_[i];
    if (!h.listed || !h.holds(expert)) continue;
    any_holder = true;
    if (!h.up || std::find(avoid.begin(), avoid.end(), static_cast<int>(i)) != avoid.end()) continue;
    const int tier = (h.state == HostState::Draining ? 2 : 0) + (h.healthy() ? 0 : 1);
    if (tier < best_tier) {
      best_tier = tier;
      cands.clear();
    }
    if (tier == best_tier) cands.push_back(static_cast<int>(i));
  }
  if (!any_holder) return Pick::None;
  if (cands.empty()) return Pick::Wait;
  int in_zone = -1, other = -1;
  for (int i : cands) {
    int& best = hosts_[i].zone == zone_ ? in_zone : other;
    if (best < 0 || hosts_[i].expected_seconds(rows) < hosts_[best].expected_seconds(rows)) best = i;
  }
  if (in_zone >= 0 && other >= 0) {
    const double ci = hosts_[in_zone].queued_rows(), co = hosts_[other].queued_rows();
    *host = ci > static_cast<double>(zone_overload_rows_) && co * 2 < ci ? other : in_zone;
  } else {
    *host = in_zone >= 0 ? in_zone : other;
  }
  return Pick::Chosen;
}

// ---- CallState ----

bool CallState::Group::live() const {
  if (winner >= 0) return true;
  for (const auto& a : alternatives)
    if (!a.dead) return true;
  return false;
}

CallState::CallState(int32_t layer, const Routing& routing, Clock::time_point start, Clock::duration max_wait)
    : layer_(layer), routing_(routing), start_(start), max_wait_(max_wait) {
  // One group of every slot, split by host at the first plan.
  Group g;
  for (size_t s = 0; s < routing_.experts.size(); ++s)
    if (routing_.experts[s] >= 0) g.slots.push_back(static_cast<int32_t>(s));
  if (!g.slots.empty()) groups_.push_back(std::move(g));
}

Pick CallState::assign(const std::vector<int32_t>& slots, const std::vector<int>& avoid, HostSet& hosts,
                       std::vector<std::pair<int, std::vector<int32_t>>>* by_host, int32_t* missing) const {
  // One host per expert (every row of an expert goes to the same replica).
  std::map<int32_t, std::vector<int32_t>> by_expert;
  for (int32_t s : slots) by_expert[routing_.experts[s]].push_back(s);
  std::map<int, std::vector<int32_t>> chosen;
  std::vector<std::pair<int, int64_t>> planned;  // rows counted against hosts while choosing
  Pick result = Pick::Chosen;
  for (const auto& [e, ss] : by_expert) {
    int h = -1;
    const Pick p = hosts.choose(e, static_cast<int64_t>(ss.size()), avoid, &h);
    if (p == Pick::None) {
      *missing = e;
      result = Pick::None;
      break;
    }
    if (p == Pick::Wait) {
      *missing = e;
      result = Pick::Wait;
      continue;
    }
    auto& v = chosen[h];
    v.insert(v.end(), ss.begin(), ss.end());
    // So the next expert's choice sees these rows (undone below).
    hosts.at(h).inflight_rows += static_cast<int64_t>(ss.size());
    planned.emplace_back(h, static_cast<int64_t>(ss.size()));
  }
  for (const auto& [h, n] : planned) hosts.at(h).inflight_rows -= n;
  if (result != Pick::Chosen) return result;
  by_host->assign(chosen.begin(), chosen.end());
  return Pick::Chosen;
}

std::vector<int> CallState::add_alternative(int group, const std::vector<std::pair<int, std::vector<int32_t>>>& by_host,
                                            HostSet& hosts) {
  Group& g = groups_.at(static_cast<size_t>(group));
  const int64_t k = routing_.top_k;
  std::vector<int> out;
  Alternative alt;
  for (const auto& [h, slots] : by_host) {
    Part p;
    p.host = h;
    p.group = group;
    p.alternative = static_cast<int>(g.alternatives.size());
    // The rows with a slot here, and their routing (other slots -1).
    std::map<int32_t, std::vector<int32_t>> rows;
    for (int32_t s : slots) rows[static_cast<int32_t>(s / k)].push_back(s);
    for (const auto& [t, ss] : rows) {
      p.rows.push_back(t);
      for (int64_t j = 0; j < k; ++j) {
        const int32_t slot = static_cast<int32_t>(t * k + j);
        const bool mine = std::find(ss.begin(), ss.end(), slot) != ss.end();
        p.experts.push_back(mine ? routing_.experts[slot] : -1);
        p.weights.push_back(mine ? routing_.weights[slot] : 0.0f);
      }
    }
    hosts.at(h).inflight_rows += static_cast<int64_t>(p.rows.size());
    alt.parts.push_back(static_cast<int>(parts_.size()));
    out.push_back(static_cast<int>(parts_.size()));
    parts_.push_back(std::move(p));
  }
  g.alternatives.push_back(std::move(alt));
  return out;
}

std::vector<int> CallState::plan(HostSet& hosts) {
  std::vector<int> out;
  // The first plan splits the single group of every slot into one per host.
  if (groups_.size() == 1 && groups_[0].alternatives.empty() && parts_.empty()) {
    std::vector<std::pair<int, std::vector<int32_t>>> by_host;
    int32_t missing = -1;
    const Pick p = assign(groups_[0].slots, {}, hosts, &by_host, &missing);
    if (p == Pick::None)
      throw CallFailure{true, "expert " + std::to_string(missing) + " of layer " + std::to_string(layer_) + " has no live expert host"};
    if (p == Pick::Wait) return out;
    std::vector<Group> split;
    for (const auto& [h, slots] : by_host) {
      Group g;
      g.slots = slots;
      split.push_back(std::move(g));
    }
    groups_ = std::move(split);
    for (size_t i = 0; i < by_host.size(); ++i) {
      auto ps = add_alternative(static_cast<int>(i), {by_host[i]}, hosts);
      out.insert(out.end(), ps.begin(), ps.end());
    }
    return out;
  }
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    Group& g = groups_[gi];
    if (g.live()) continue;
    std::vector<std::pair<int, std::vector<int32_t>>> by_host;
    int32_t missing = -1;
    Pick p = assign(g.slots, g.avoid, hosts, &by_host, &missing);
    if (p == Pick::Wait && !g.avoid.empty()) {
      // Every usable holder refused once: ask them again rather than wait for nothing.
      g.avoid.clear();
      p = assign(g.slots, g.avoid, hosts, &by_host, &missing);
    }
    if (p == Pick::None)
      throw CallFailure{true, "expert " + std::to_string(missing) + " of layer " + std::to_string(layer_) + " has no live expert host"};
    if (p == Pick::Wait) continue;
    auto ps = add_alternative(static_cast<int>(gi), by_host, hosts);
    out.insert(out.end(), ps.begin(), ps.end());
  }
  return out;
}

std::vector<int> CallState::hedge(int part, HostSet& hosts) {
  Part& p = parts_.at(static_cast<size_t>(part));
  Group& g = groups_.at(static_cast<size_t>(p.group));
  if (p.done || p.dead || g.winner >= 0) return {};
  std::vector<int> avoid = g.avoid;
  avoid.push_back(p.host);
  // Hosts of the group's other live parts are avoided too: they are what is slow or pending.
  for (const auto& a : g.alternatives)
    if (!a.dead)
      for (int q : a.parts)
        if (!parts_[q].done && std::find(avoid.begin(), avoid.end(), parts_[q].host) == avoid.end()) avoid.push_back(parts_[q].host);
  std::vector<std::pair<int, std::vector<int32_t>>> by_host;
  int32_t missing = -1;
  if (assign(g.slots, avoid, hosts, &by_host, &missing) != Pick::Chosen) return {};
  p.hedged = true;
  return add_alternative(p.group, by_host, hosts);
}

bool CallState::combined(int part, std::vector<float> result) {
  Part& p = parts_.at(static_cast<size_t>(part));
  if (p.done || p.dead) return false;
  Group& g = groups_.at(static_cast<size_t>(p.group));
  Alternative& a = g.alternatives.at(static_cast<size_t>(p.alternative));
  p.done = true;
  p.result = std::move(result);
  if (g.winner >= 0 || a.dead) return false;
  if (++a.answered == a.parts.size()) {
    g.winner = p.alternative;
    // The others are not needed any more.
    for (auto& other : g.alternatives)
      if (&other != &a) other.dead = true;
  }
  return true;
}

void CallState::failed(int part, bool avoid_host) {
  Part& p = parts_.at(static_cast<size_t>(part));
  if (p.done || p.dead) return;
  p.dead = true;
  Group& g = groups_.at(static_cast<size_t>(p.group));
  if (g.winner >= 0) return;
  g.alternatives.at(static_cast<size_t>(p.alternative)).dead = true;
  if (avoid_host && std::find(g.avoid.begin(), g.avoid.end(), p.host) == g.avoid.end()) g.avoid.push_back(p.host);
}

std::vector<int> CallState::live_parts_on(int host) const {
  std::vector<int> out;
  for (size_t i = 0; i < parts_.size(); ++i) {
    const Part& p = parts_[i];
    if (p.host != host || p.done || p.dead) continue;
    const Group& g = groups_[static_cast<size_t>(p.group)];
    if (g.winner < 0 && !g.alternatives[static_cast<size_t>(p.alternative)].dead) out.push_back(static_cast<int>(i));
  }
  return out;
}

std::vector<int> CallState::overdue(Clock::time_point now) const {
  std::vector<int> out;
  for (size_t i = 0; i < parts_.size(); ++i) {
    const Part& p = parts_[i];
    if (p.done || p.dead || p.hedged || p.deadline > now) continue;
    const Group& g = groups_[static_cast<size_t>(p.group)];
    if (g.winner < 0 && !g.alternatives[static_cast<size_t>(p.alternative)].dead) out.push_back(static_cast<int>(i));
  }
  return out;
}

bool CallState::waiting() const {
  for (const auto& g : groups_)
    if (!g.live()) return true;
  return false;
}

bool CallState::done() const {
  if (parts_.empty() && !groups_.empty()) return false;
  for (const auto& g : groups_)
    if (g.winner < 0) return false;
  return true;
}

Clock::time_point CallState::next_deadline() const {
  auto t = Clock::time_point::max();
  for (int i : overdue(Clock::time_point::max())) t = std::min(t, parts_[static_cast<size_t>(i)].deadline);
  return t;
}

std::string CallState::pending_summary(const HostSet& hosts) const {
  std::string s;
  for (const auto& g : groups_) {
    if (g.winner >= 0) continue;
    std::vector<int32_t> es;
    for (int32_t slot : g.slots) es.push_back(routing_.experts[slot]);
    std::sort(es.begin(), es.end());
    es.erase(std::unique(es.begin(), es.end()), es.end());
    std::string where;
    for (const auto& a : g.alternatives)
      if (!a.dead)
        for (int q : a.parts)
          if (!parts_[q].done) where += (where.empty() ? "" : ", ") + hosts.at(parts_[q].host).name;
    s += (s.empty() ? "" : "; ") + std::string("experts");
    for (size_t i = 0; i < es.size() && i < 8; ++i) s += " " + std::to_string(es[i]);
    if (es.size() > 8) s += " ...";
    s += where.empty() ? " (no usable host)" : " (waiting on " + where + ")";
  }
  return s;
}

void CallState::sum(float* out, int64_t hidden) const {
  const int64_t tokens = routing_.tokens;
  std::vector<bool> written(static_cast<size_t>(tokens), false);
  for (const auto& g : groups_) {
    if (g.winner < 0) continue;
    for (int q : g.alternatives[static_cast<size_t>(g.winner)].parts) {
      const Part& p = parts_[static_cast<size_t>(q)];
      for (size_t i = 0; i < p.rows.size(); ++i) {
        float* o = out + static_cast<int64_t>(p.rows[i]) * hidden;
        const float* y = p.result.data() + static_cast<int64_t>(i) * hidden;
        if (!written[p.rows[i]]) {
          std::memcpy(o, y, static_cast<size_t>(hidden) * sizeof(float));
          written[p.rows[i]] = true;
        } else {
          for (int64_t d = 0; d < hidden; ++d) o[d] += y[d];
        }
      }
    }
  }
  for (int64_t t = 0; t < tokens; ++t)
    if (!written[t]) std::fill(out + t * hidden, out + (t + 1) * hidden, 0.0f);
}

}  // namespace moemesh::dispatch_internal
