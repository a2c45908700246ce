#include "services/router/placement.h"

#include <algorithm>
#include <numeric>

namespace moemesh {

const char* host_state_name(HostState s) {
  switch (s) {
    case HostState::Ready: return "ready";
    case HostState::Draining: return "draining";
    case HostState::Dead: return "dead";
  }
  return "?";
}

int Placement::upsert(const std::string& name, const std::string& endpoint, const std::set<int32_t>& experts,
                      int64_t capacity) {
  HostEntry* h = find(name);
  if (!h) {
    const int id = next_id_++;
    h = &hosts_[id];
    h->id = id;
    h->name = name;
  }
  h->endpoint = endpoint;
  h->leaving = false;
  h->experts.clear();
  for (int32_t e : experts)
    if (e >= 0 && e < n_experts_) h->experts.insert(e);
  for (int32_t e : h->experts) h->loading.erase(e);
  h->capacity = std::max<int64_t>(capacity, static_cast<int64_t>(h->experts.size()));
  h->state = HostState::Ready;
  h->last_seen = std::chrono::steady_clock::now();
  return h->id;
}

HostEntry* Placement::host(int id) {
  auto it = hosts_.find(id);
  return it == hosts_.end() ? nullptr : &it->second;
}

HostEntry* Placement::find(const std::string& name) {
  for (auto& [id, h] : hosts_)
    if (h.name == name) return &h;
  return nullptr;
}

void Placement::set_state(int id, HostState s) {
  if (HostEntry* h = host(id)) h->state = s;
}

std::vector<int> Placement::holders(int32_t e, const std::set<int>& exclude) const {
  std::vector<int> ready, draining;
  for (const auto& [id, h] : hosts_) {
    if (exclude.count(id) || !h.experts.count(e)) continue;
    if (h.state == HostState::Ready) ready.push_back(id);
    else if (h.state == HostState::Draining) draining.push_back(id);
  }
  return ready.empty() ? draining : ready;
}

std::vector<int> Placement::assign(const std::vector<int64_t>& counts, const std::set<int>& exclude) {
  std::vector<int> out(counts.size(), -1);
  std::map<int, int64_t> work;
  for (const auto& [id, h] : hosts_) work[id] = h.inflight_rows;
  // Busiest experts first, so the big ones spread before the small ones fill gaps.
  std::vector<int32_t> order(counts.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return counts[a] > counts[b]; });
  for (int32_t e : order) {
    if (counts[e] == 0) continue;
    int best = -1;
    for (int id : holders(e, exclude))
      if (best < 0 || work[id] < work[best]) best = id;
    out[e] = best;
    if (best >= 0) work[best] += counts[e];
  }
  return out;
}

void Placement::count_tokens(int32_t e, int64_t n) {
  load_[e] += static_cast<double>(n);
  tokens_[e] += static_cast<uint64_t>(n);
}

std::vector<int32_t> Placement::sole_holdings(int host) const {
  std::vector<int32_t> out;
  auto it = hosts_.find(host);
  if (it == hosts_.end()) return out;
  for (int32_t e : it->second.experts) {
    bool other = false;
    for (const auto& [id, h] : hosts_)
      other |= id != host && h.state == HostState::Ready && h.experts.count(e);
    if (!other) out.push_back(e);
  }
  return out;
}

std::vector<int32_t> Placement::uncovered() const {
  std::vector<int32_t> out;
  for (int32_t e = 0; e < n_experts_; ++e)
    if (holders(e).empty()) out.push_back(e);
  return out;
}

double Placement::per_replica_load(int32_t e) const {
  const size_t r = holders(e).size();
  return r ? load_[e] / static_cast<double>(r) : load_[e];
}

std::vector<Move> Placement::plan_rebalance(int max_moves) {
  std::vector<Move> moves;
  // Work on a copy of who holds what, so the plan sees its own moves.
  std::map<int, std::set<int32_t>> held;
  std::map<int, double> host_load;
  for (const auto& [id, h] : hosts_) {
    if (h.state != HostState::Ready) continue;
    std::set<int32_t> s = h.experts;
    s.insert(h.loading.begin(), h.loading.end());
    held[id] = s;
  }
  auto replicas = [&](int32_t e) {
    int n = 0;
    for (const auto& [id, s] : held) n += s.count(e) ? 1 : 0;
    return n;
  };
  auto prl = [&](int32_t e) { return load_[e] / std::max(1, replicas(e)); };
  auto recompute_host_load = [&] {
    for (const auto& [id, s] : held) {
      double l = 0;
      for (int32_t e : s) l += prl(e);
      host_load[id] = l;
    }
  };
  for (int m = 0; m < max_moves && held.size() > 1; ++m) {
    recompute_host_load();
    // The hottest expert per replica that some host does not hold yet.
    int32_t hot = -1;
    for (int32_t e = 0; e < n_experts_; ++e) {
      if (load_[e] <= 0 || replicas(e) >= static_cast<int>(held.size())) continue;
      if (hot < 0 || prl(e) > prl(hot)) hot = e;
    }
    if (hot < 0) break;
    int target = -1;
    int32_t evict = -1;
    for (const auto& [id, s] : held) {
      if (s.count(hot)) continue;
      const int64_t cap = hosts_.at(id).capacity;
      int32_t victim = -1;
      if (static_cast<int64_t>(s.size()) >= cap) {
        // Full: evict its coldest expert that has another replica, if clearly colder.
        for (int32_t e : s)
          if (replicas(e) > 1 && (victim < 0 || prl(e) < prl(victim))) victim = e;
        if (victim < 0 || prl(victim) * 2 > prl(hot)) continue;
      }
      if (target < 0 || host_load[id] < host_load[target]) {
        target = id;
        evict = victim;
      }
    }
    if (target < 0) break;
    if (evict >= 0) {
      moves.push_back({target, evict, false});
      held[target].erase(evict);
    }
    moves.push_back({target, hot, true});
    held[target].insert(hot);
  }
  for (double& l : load_) l *= 0.5;  // recent load counts most
  return moves;
}

std::vector<int32_t> Placement::plan_join(int64_t capacity) const {
  std::vector<int32_t> order(n_experts_);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    const size_t ra = holders(a).size(), rb = holders(b).size();
    if (ra != rb) return ra < rb;
    return per_replica_load(a) > per_replica_load(b);
  });
  order.resize(std::min<size_t>(order.size(), static_cast<size_t>(std::max<int64_t>(capacity, 0))));
  std::sort(order.begin(), order.end());
  return order;
}

nlohmann::json Placement::to_json() const {
  nlohmann::json j;
  j["hosts"] = nlohmann::json::array();
  for (const auto& [id, h] : hosts_) {
    j["hosts"].push_back({{"name", h.name},
                          {"endpoint", h.endpoint},
                          {"state", host_state_name(h.state)},
                          {"experts", std::vector<int32_t>(h.experts.begin(), h.experts.end())},
                          {"loading", std::vector<int32_t>(h.loading.begin(), h.loading.end())},
                          {"capacity", h.capacity},
                          {"inflight_rows", h.inflight_rows},
                          {"rows_served", h.rows_served},
                          {"dispatches", h.dispatches},
                          {"failures", h.failures}});
  }
  j["tokens_per_expert"] = tokens_;
  j["uncovered"] = uncovered();
  return j;
}

}  // namespace moemesh
