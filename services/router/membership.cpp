#include "membership.h"

#include <algorithm>
#include <set>
#include <stdexcept>

#include <spdlog/spdlog.h>

namespace moemesh::router_internal {

void Actions::merge(Actions o) {
  commands.insert(commands.end(), o.commands.begin(), o.commands.end());
  connect.insert(connect.end(), o.connect.begin(), o.connect.end());
  close_sockets.insert(close_sockets.end(), o.close_sockets.begin(), o.close_sockets.end());
  publish |= o.publish;
}

Membership::Membership(int32_t n_experts, MembershipOptions o, uint64_t first_version)
    : placement_(n_experts), o_(o), version_(first_version) {}

Actions Membership::report(const HostReport& r, Clock::time_point now) {
  Actions a;
  HostEntry* h = placement_.find(r.name);
  const bool known = h && h->state != HostState::Dead && h->endpoint == r.endpoint;
  if (known) {
    h->last_seen = now;
    // The host's own word on what it holds wins once no command to it is pending.
    // (A report older than the last command answer is not.)
    const std::set<int32_t> held(r.experts.begin(), r.experts.end());
    const bool current = r.generation >= h->generation;
    h->generation = std::max(h->generation, r.generation);
    if (current && h->commands_outstanding == 0 && held != h->experts) {
      spdlog::info("router: expert host {} reports {} experts, the table had {}", h->name, held.size(), h->experts.size());
      h->experts = held;
      changed();
      a.publish = true;
    }
    // Load: rows a second since the previous report, smoothed.
    uint64_t rows = 0;
    for (const auto& [e, n] : r.expert_rows) {
      placement_.count_rows(e, n);
      rows += n;
    }
    const double dt = std::chrono::duration<double>(now - h->last_report).count();
    if (dt > 0) h->load = 0.7 * h->load + 0.3 * (static_cast<double>(rows) / dt);
    h->last_report = now;
    h->rows_served = r.rows;
    h->dispatches = r.dispatches;
    return a;
  }
  if (h && h->socket) a.close_sockets.push_back(h->socket);
  const int id = placement_.upsert(r.name, r.endpoint, r.zone, std::set<int32_t>(r.experts.begin(), r.experts.end()),
                                   r.capacity < 0 ? placement_.n_experts() : r.capacity);
  h = placement_.host(id);
  h->socket = 0;
  h->last_seen = h->last_report = now;
  h->generation = r.generation;
  h->rows_served = r.rows;
  h->dispatches = r.dispatches;
  ++membership_changes_;
  changed();
  a.publish = true;
  a.connect.push_back(id);
  spdlog::info("router: expert host {} at {}{} joined with {} experts", r.name, r.endpoint,
               r.zone.empty() ? "" : " (zone " + r.zone + ")", r.experts.size());
  if (r.experts.empty() && h->capacity > 0) a.merge(send_load(*h, placement_.plan_join(r.zone, h->capacity), true));
  return a;
}

Actions Membership::holds(int host, const std::vector<int32_t>& experts_now, uint64_t generation) {
  Actions a;
  HostEntry* h = placement_.host(host);
  if (!h) return a;
  h->generation = std::max(h->generation, generation);
  const std::set<int32_t> now(experts_now.begin(), experts_now.end());
  if (now != h->experts) {
    h->experts = now;
    changed();
    a.publish = true;
  }
  h->loading.clear();
  h->commands_outstanding = std::max(0, h->commands_outstanding - 1);
  spdlog::info("router: expert host {} now holds {} experts", h->name, now.size());
  return a;
}

Actions Membership::take_out(int host, const std::string& why) {
  Actions a;
  HostEntry* h = placement_.host(host);
  if (!h || h->state == HostState::Dead) return a;
  spdlog::warn("router: taking expert host {} out: {}", h->name, why);
  h->state = HostState::Dead;
  if (h->socket) a.close_sockets.push_back(h->socket);
  h->socket = 0;
  draining_since_.erase(host);
  ++membership_changes_;
  changed();
  a.publish = true;
  return a;
}

Actions Membership::connection_down(int host) { return take_out(host, "its connection closed"); }

Actions Membership::suspect(const Suspicion& s, Clock::time_point now) {
  Actions a;
  ++suspicions_[static_cast<int>(s.reason)];
  HostEntry* h = placement_.find(s.host);
  spdlog::info("router: a dispatcher suspects {} ({}: {})", s.host, suspicion_reason_name(s.reason), s.detail);
  if (!h) return a;
  if (h->state == HostState::Dead) {
    a.publish = true;  // the dispatcher may have missed the table without it
    return a;
  }
  // The router's own evidence decides: silent here too, it goes; still
  // reporting, it is put on probation, longer for each suspicion in a row.
  if (now - h->last_seen > o_.heartbeat_timeout) return take_out(h->id, "silent");
  h->strikes = now - h->last_suspicion > o_.strike_window ? 1 : h->strikes + 1;
  h->last_suspicion = now;
  auto p = o_.probation;
  for (int i = 1; i < h->strikes && p < o_.probation_max; ++i) p *= 2;
  p = std::min(p, o_.probation_max);
  h->probation_until = std::max(h->probation_until, now + p);
  if (!h->on_probation) {  // a longer probation changes nothing dispatchers see
    h->on_probation = true;
    spdlog::warn("router: expert host {} on probation for {} ms", h->name, p.count());
    changed();
    a.publish = true;
  }
  return a;
}

Actions Membership::send_load(HostEntry& h, const std::vector<int32_t>& experts, bool load) {
  Actions a;
  if (experts.empty()) return a;
  if (load) {
    h.loading.insert(experts.begin(), experts.end());
  } else {
    for (int32_t e : experts) h.experts.erase(e);  // stop routing there first
    changed();
    a.publish = true;
  }
  a.commands.push_back({h.id, 0, HostCommand{load ? HostCommandKind::Load : HostCommandKind::Unload, experts}});
  ++h.commands_outstanding;
  moves_ += experts.size();
  spdlog::info("router: asking {} to {} {} experts", h.name, load ? "load" : "unload", experts.size());
  return a;
}

HostEntry* Membership::live_host(const std::string& name) {
  HostEntry* h = placement_.find(name);
  if (!h || h->state == HostState::Dead) throw std::invalid_argument("router: no live expert host named " + name);
  return h;
}

Actions Membership::start_draining(HostEntry& h, Clock::time_point now) {
  Actions a;
  if (h.state == HostState::Draining) return a;
  h.state = HostState::Draining;
  draining_since_[h.id] = now;
  ++membership_changes_;
  changed();
  a.publish = true;
  return a;
}

Actions Membership::drain(const std::string& name, Clock::time_point now, std::vector<int32_t>* reassigned) {
  HostEntry* h = live_host(name);
  Actions a = start_draining(*h, now);
  // Its sole copies go to the least-loaded ready hosts with room first.
  const std::vector<int32_t> sole = placement_.sole_holdings(h->id);
  std::map<int, std::vector<int32_t>> loads;
  for (int32_t e : sole) {
    int best = -1;
    for (const auto& [id, o] : placement_.hosts()) {
      if (id == h->id || o.state != HostState::Ready) continue;
      if (static_cast<int64_t>(o.experts.size() + o.loading.size() + loads[id].size()) >= o.capacity) continue;
      if (best < 0 || o.load + static_cast<double>(loads[id].size()) <
                          placement_.hosts().at(best).load + static_cast<double>(loads[best].size()))
        best = id;
    }
    if (best >= 0) loads[best].push_back(e);
  }
  for (auto& [id, es] : loads) a.merge(send_load(*placement_.host(id), es, true));
  if (reassigned) *reassigned = sole;
  spdlog::info("router: draining expert host {} ({} sole experts moved)", h->name, sole.size());
  return a;
}

Actions Membership::leaving(const std::string& name, Clock::time_point now) {
  HostEntry* h = live_host(name);
  h->leaving = true;
  Actions a = start_draining(*h, now);
  spdlog::info("router: expert host {} is stopping", h->name);
  return a;
}

Actions Membership::rebalance(nlohmann::json* out) {
  Actions a;
  std::map<int, std::pair<std::vector<int32_t>, std::vector<int32_t>>> per_host;
  nlohmann::json moves = nlohmann::json::array();
  for (const Move& m : placement_.plan_rebalance(o_.rebalance_moves)) {
    (m.load ? per_host[m.host].first : per_host[m.host].second).push_back(m.expert);
    moves.push_back({{"host", placement_.host(m.host)->name}, {"expert", m.expert}, {"action", m.load ? "load" : "unload"}});
  }
  for (auto& [id, lu] : per_host) {
    HostEntry* h = placement_.host(id);
    a.merge(send_load(*h, lu.second, false));
    a.merge(send_load(*h, lu.first, true));
  }
  if (out) *out = moves;
  return a;
}

Actions Membership::tick(Clock::time_point now) {
  Actions a;
  std::vector<int> silent, drained;
  for (const auto& [id, h] : placement_.hosts()) {
    if (h.state == HostState::Dead) continue;
    if (now - h.last_seen > o_.heartbeat_timeout) silent.push_back(id);
    else if (h.state == HostState::Draining && (h.leaving || placement_.sole_holdings(id).empty())) {
      auto since = draining_since_.find(id);
      if (since == draining_since_.end() || now - since->second >= o_.leave_grace) drained.push_back(id);
    }
  }
  for (int id : silent) a.merge(take_out(id, "its reports stopped"));
  for (const auto& [id, h] : placement_.hosts()) {
    if (!h.on_probation || now < h.probation_until) continue;
    HostEntry* p = placement_.host(id);
    p->on_probation = false;
    spdlog::info("router: expert host {} off probation", p->name);
    changed();
    a.publish = true;
  }
  for (int id : drained) {
    HostEntry* h = placement_.host(id);
    spdlog::info("router: expert host {} drained; telling it to leave", h->name);
    a.commands.push_back({id, h->socket, HostCommand{HostCommandKind::Leave, {}}});
    if (h->socket) a.close_sockets.push_back(h->socket);  // after the command is sent
    draining_since_.erase(id);
    ++membership_changes_;
    placement_.erase(id);
    changed();
    a.publish = true;
  }
  return a;
}

nlohmann::json Membership::stats() const {
  nlohmann::json j = placement_.to_json();
  j["table_version"] = version_;
  j["membership_changes"] = membership_changes_;
  j["moves"] = moves_;
  j["suspicions"] = {{"disconnect", suspicions_[0]}, {"deadline", suspicions_[1]}};
  return j;
}

}  // namespace moemesh::router_internal
