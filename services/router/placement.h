// The router's placement table: which expert hosts hold which routed experts
// (the same expert ids on every MoE layer), in which zone, their state and the
// load they report, and the EPLB-style plans that replicate hot experts, drop
// cold replicas and aim for a replica of every expert in every zone.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "services/router/api.h"

namespace moemesh::router_internal {

struct HostEntry {
  int id = 0;
  std::string name, endpoint, zone;
  std::set<int32_t> experts;  // loaded and routable
  std::set<int32_t> loading;  // asked to load, not yet confirmed
  int64_t capacity = 0;       // experts it may hold
  HostState state = HostState::Ready;
  bool leaving = false;       // stopping on its own (SIGTERM): goes once idle, sole experts or not
  int socket = 0;             // the router's DEALER socket to it (control commands)
  uint64_t rows_served = 0, dispatches = 0;
  double load = 0;            // rows a second, smoothed over its reports
  int commands_outstanding = 0;  // loads and unloads sent, not yet answered
  uint64_t generation = 0;       // of the newest holdings heard from it (report or answer)
  // Probation after a dispatcher's suspicion (membership.h): until when, and
  // how many suspicions in a row made it (each doubles the next probation).
  bool on_probation = false;
  std::chrono::steady_clock::time_point probation_until, last_suspicion;
  int strikes = 0;
  std::chrono::steady_clock::time_point last_seen, last_report;
};

// One load or unload the rebalancer wants.
struct Move {
  int host = 0;
  int32_t expert = 0;
  bool load = true;
};

class Placement {
 public:
  explicit Placement(int32_t n_experts) : n_experts_(n_experts), load_(n_experts, 0.0), tokens_(n_experts, 0) {}

  int32_t n_experts() const { return n_experts_; }
  // Adds a host (or refreshes one with the same name, alive again) and returns its id.
  int upsert(const std::string& name, const std::string& endpoint, const std::string& zone,
             const std::set<int32_t>& experts, int64_t capacity);
  HostEntry* host(int id);
  const HostEntry* host(int id) const;
  HostEntry* find(const std::string& name);
  const std::map<int, HostEntry>& hosts() const { return hosts_; }
  void set_state(int id, HostState s);
  void erase(int id) { hosts_.erase(id); }

  // Ready hosts holding `e`; draining ones only when no ready host holds it.
  std::vector<int> holders(int32_t e) const;
  // Rows computed per expert, from the hosts' reports: the rebalancer's load.
  void count_rows(int32_t e, uint64_t n);
  const std::vector<uint64_t>& rows_per_expert() const { return tokens_; }

  // Experts that would have no ready holder without `host`.
  std::vector<int32_t> sole_holdings(int host) const;
  // Experts with no live holder at all.
  std::vector<int32_t> uncovered() const;
  // Every zone seen (of hosts, and of dispatchers noted here), so a zone whose
  // hosts all died still shows every expert uncovered; and the experts without
  // a live holder in `zone`.
  void note_zone(const std::string& zone) { zones_.insert(zone); }
  const std::set<std::string>& zones() const { return zones_; }
  std::vector<int32_t> uncovered_in_zone(const std::string& zone) const;

  // EPLB-style greedy plan of at most `max_moves` moves from the load counted
  // since the last plan: first a replica in each zone that lacks one (of the
  // experts with the most load, on the zone's least-loaded host with room),
  // then replicas of the experts with the highest load per replica on the
  // least-loaded hosts with room, evicting cold replicas (never an expert's
  // last one, nor its zone's last) when a host is full. Decays the counted load.
  std::vector<Move> plan_rebalance(int max_moves);
  // Experts a joining host in `zone` with room for `capacity` should load: those
  // without a replica in its zone first, then the fewest replicas, then the
  // highest load per replica.
  std::vector<int32_t> plan_join(const std::string& zone, int64_t capacity) const;

  // The table dispatchers route by.
  PlacementTable table(uint64_t version) const;
  // For `stats`: every host with its state, experts, loading, load; uncovered experts.
  nlohmann::json to_json() const;

 private:
  double per_replica_load(int32_t e) const;
  int32_t n_experts_;
  std::map<int, HostEntry> hosts_;
  std::vector<double> load_;      // rows since the last rebalance (decayed)
  std::vector<uint64_t> tokens_;  // rows ever computed, per expert
  std::set<std::string> zones_;
  int next_id_ = 1;
};

}  // namespace moemesh::router_internal
