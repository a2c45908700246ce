// The router's placement table: which expert hosts hold which routed experts
// (the same expert ids on every MoE layer), their health and load, the tokens
// routed to each expert, and the EPLB-style plan that replicates hot experts
// and drops cold replicas.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace moemesh {

enum class HostState { Ready, Draining, Dead };
const char* host_state_name(HostState s);

struct HostEntry {
  int id = 0;
  std::string name, endpoint;
  std::set<int32_t> experts;  // loaded and routable
  std::set<int32_t> loading;  // asked to load, not yet confirmed
  int64_t capacity = 0;       // experts it may hold
  HostState state = HostState::Ready;
  int socket = 0;             // the router's DEALER socket to it
  int64_t inflight_rows = 0;  // dispatched, not yet answered
  bool leaving = false;       // stopping on its own (SIGTERM): goes once idle, sole experts or not
  uint64_t rows_served = 0, dispatches = 0, failures = 0;
  std::chrono::steady_clock::time_point last_seen;
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
  // Adds a host (or refreshes one with the same name) and returns its id.
  int upsert(const std::string& name, const std::string& endpoint, const std::set<int32_t>& experts, int64_t capacity);
  HostEntry* host(int id);
  HostEntry* find(const std::string& name);
  const std::map<int, HostEntry>& hosts() const { return hosts_; }
  void set_state(int id, HostState s);
  void erase(int id) { hosts_.erase(id); }

  // Ready hosts holding `e`; draining ones only when no ready host holds it.
  std::vector<int> holders(int32_t e, const std::set<int>& exclude = {}) const;
  // For each expert with tokens in `counts`, the holder with the least work,
  // counting what this assignment already gave it. -1: no live holder.
  std::vector<int> assign(const std::vector<int64_t>& counts, const std::set<int>& exclude = {});

  void count_tokens(int32_t e, int64_t n);
  const std::vector<uint64_t>& tokens_per_expert() const { return tokens_; }

  // Experts that would have no ready holder without `host`.
  std::vector<int32_t> sole_holdings(int host) const;
  // Experts with no live holder at all.
  std::vector<int32_t> uncovered() const;

  // EPLB-style greedy plan of at most `max_moves` moves from the load counted
  // since the last plan: add replicas of the experts with the highest load per
  // replica on the least-loaded hosts with room, evicting cold replicas (never
  // an expert's last one) when a host is full. Decays the counted load.
  std::vector<Move> plan_rebalance(int max_moves);
  // Experts a joining host with room for `capacity` should load: fewest replicas
  // first, then the highest load per replica.
  std::vector<int32_t> plan_join(int64_t capacity) const;

  nlohmann::json to_json() const;

 private:
  double per_replica_load(int32_t e) const;
  int32_t n_experts_;
  std::map<int, HostEntry> hosts_;
  std::vector<double> load_;      // tokens since the last rebalance (decayed)
  std::vector<uint64_t> tokens_;  // tokens ever routed, per expert
  int next_id_ = 1;
};

}  // namespace moemesh
