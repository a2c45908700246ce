#include "placement.h"

#include <algorithm>
#include <numeric>

namespace moemesh::router_internal {

int Placement::upsert(const std::string& name, const std::string& endpoint, const std::string& zone,
                      const std::set<int32_t>& experts, int64_t capacity) {
  HostEntry* h = find(name);
  if (!h) {
    const int id = next_id_++;
    h = &hosts_[id];
    h->id = id;
    h->name = name;
  }
  h->endpoint = endpoint;
  h->zone = zone;
  zones_.insert(zone);
  h->leaving = false;
  h->experts.clear();
  for (int32_t e : experts)
    if (e >= 0 && e < n_experts_) h->experts.insert(e);
  for (int32_t e : h->experts) h->loading.erase(e);
  h->capacity = std::max<int64_t>(capacity, static_cast<int64_t>(h->experts.size()));
  h->state = HostState::Ready;
  h->commands_outstanding = 0;
  h->generation = 0;
  h->on_probation = false;
  h->strikes = 0;
  h->last_seen = h->last_report = std::chrono::steady_clock::now();
  return h->id;
}

HostEntry* Placement::host(int id) {
  auto it = hosts_.find(id);
  return it == hosts_.end() ? nullptr : &it->second;
}

const HostEntry* Placement::host(int id) const {
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

std::vector<int> Placement::holders(int32_t e) const {
  std::vector<int> ready, draining;
  for (const auto& [id, h] : hosts_) {
    if (!h.experts.count(e)) continue;
    if (h.state == HostState::Ready) ready.push_back(id);
    else if (h.state == HostState::Draining) draining.push_back(id);
  }
  return ready.empty() ? draining : ready;
}

void Placement::count_rows(int32_t e, uint64_t n) {
  if (e < 0 || e >= n_experts_) return;
  load_[e] += static_cast<double>(n);
  tokens_[e] += n;
}

std::vector<int32_t> Placement::sole_holdings(int host) const {
  std::vector<int32_t> out;
  auto it = hosts_.find(host);
  if (it == hosts_.end()) return out;
  for (int32_t e : it->second.experts) {
    bool other = false;
    for (const auto& [id, h] : hosts_) other |= id != host && h.state == HostState::Ready && h.experts.count(e);
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

std::vector<int32_t> Placement::uncovered_in_zone(const std::string& zone) const {
  std::vector<int32_t> out;
  for (int32_t e = 0; e < n_experts_; ++e) {
    bool in_zone = false;
    for (int id : holders(e)) in_zone |= hosts_.at(id).zone == zone;
    if (!in_zone) out.push_back(e);
  }
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
  auto zone_replicas = [&](int32_t e, const std::string& zone) {
    int n = 0;
    for (const auto& [id, s] : held) n += s.count(e) && hosts_.at(id).zone == zone ? 1 : 0;
    return n;
  };
  auto prl = [&](int32_t e) { return load_[e] / std::max(1, replicas(e)); };
  auto host_load = [&](int id) {
    double l = 0;
    for (int32_t e : held.at(id)) l += prl(e);
    return l;
  };
  // Can `id` take `e`, evicting (victim, or -1) if full? Never an expert's last
  // replica nor the last in its zone, and only when clearly colder than `e`.
  auto room = [&](int id, int32_t e, int32_t* victim) {
    const auto& s = held.at(id);
    *victim = -1;
    if (static_cast<int64_t>(s.size()) < hosts_.at(id).capacity) return true;
    const std::string& zone = hosts_.at(id).zone;
    for (int32_t v : s)
      if (replicas(v) > 1 && zone_replicas(v, zone) > 1 && (*victim < 0 || prl(v) < prl(*victim))) *victim = v;
    return *victim >= 0 && prl(*victim) * 2 <= std::max(prl(e), 1e-9);
  };
  auto apply = [&](int target, int32_t victim, int32_t e) {
    if (victim >= 0) {
      moves.push_back({target, victim, false});
      held[target].erase(victim);
    }
    moves.push_back({target, e, true});
    held[target].insert(e);
  };
  const std::set<std::string> zs = zones();
  // 1. Zones without a replica of an expert, most loaded experts first.
  if (zs.size() > 1) {
    std::vector<int32_t> order(n_experts_);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return load_[a] > load_[b]; });
    for (const std::string& zone : zs)
      for (int32_t e : order) {
        if (static_cast<int>(moves.size()) >= max_moves) break;
        if (zone_replicas(e, zone) > 0 || replicas(e) == 0) continue;
        int target = -1;
        int32_t evict = -1;
        for (const auto& [id, s] : held) {
          int32_t victim;
          if (hosts_.at(id).zone != zone || !room(id, e, &victim)) continue;
          if (victim >= 0 && load_[e] <= 0) continue;  // no reason to evict for an idle expert
          if (target < 0 || host_load(id) < host_load(target)) {
            target = id;
            evict = victim;
          }
        }
        if (target >= 0) apply(target, evict, e);
      }
  }
  // 2. More replicas of the hottest experts per replica.
  while (static_cast<int>(moves.size()) < max_moves && held.size() > 1) {
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
      int32_t victim;
      if (!room(id, hot, &victim)) continue;
      if (target < 0 || host_load(id) < host_load(target)) {
        target = id;
        evict = victim;
      }
    }
    if (target < 0) break;
    apply(target, evict, hot);
  }
  for (double& l : load_) l *= 0.5;  // recent load counts most
  return moves;
}

std::vector<int32_t> Placement::plan_join(const std::string& zone, int64_t capacity) const {
  std::vector<int32_t> order(n_experts_);
  std::iota(order.begin(), order.end(), 0);
  std::vector<int> in_zone(n_experts_, 0);
  for (const auto& [id, h] : hosts_)
    if (h.state == HostState::Ready && h.zone == zone)
      for (int32_t e : h.experts) ++in_zone[e];
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    if ((in_zone[a] > 0) != (in_zone[b] > 0)) return in_zone[a] == 0;
    const size_t ra = holders(a).size(), rb = holders(b).size();
    if (ra != rb) return ra < rb;
    return per_replica_load(a) > per_replica_load(b);
  });
  order.resize(std::min<size_t>(order.size(), static_cast<size_t>(std::max<int64_t>(capacity, 0))));
  std::sort(order.begin(), order.end());
  return order;
}

PlacementTable Placement::table(uint64_t version) const {
  PlacementTable t;
  t.version = version;
  for (const auto& [id, h] : hosts_) {
    if (h.state == HostState::Dead) continue;
    t.hosts.push_back({h.name, h.endpoint, h.zone, h.state, std::vector<int32_t>(h.experts.begin(), h.experts.end()), h.load,
                       h.on_probation});
  }
  return t;
}

nlohmann::json Placement::to_json() const {
  nlohmann::json j;
  j["hosts"] = nlohmann::json::array();
  for (const auto& [id, h] : hosts_) {
    j["hosts"].push_back({{"name", h.name},
                          {"endpoint", h.endpoint},
                          {"zone", h.zone},
                          {"state", host_state_name(h.state)},
                          {"suspect", h.on_probation},
                          {"experts", std::vector<int32_t>(h.experts.begin(), h.experts.end())},
                          {"loading", std::vector<int32_t>(h.loading.begin(), h.loading.end())},
                          {"capacity", h.capacity},
                          {"load_rows_per_s", h.load},
                          {"rows_served", h.rows_served},
                          {"dispatches", h.dispatches}});
  }
  j["rows_per_expert"] = tokens_;
  j["uncovered"] = uncovered();
  nlohmann::json zones = nlohmann::json::object();
  for (const std::string& z : this->zones()) zones[z] = {{"uncovered", uncovered_in_zone(z)}};
  j["zones"] = zones;
  return j;
}

}  // namespace moemesh::router_internal
