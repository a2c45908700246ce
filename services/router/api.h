// The router role's public contract: its options and service, and the control-
// plane protocol the other roles speak with it (docs/MESH.md, docs/WIRE.md).
// The router is the expert tier's control plane, never on the per-token data
// path: it admits expert hosts (Hello, heartbeats with load), keeps the
// versioned placement table with replicas and zones, publishes it to every
// dispatcher (the attention and mtp-draft roles) on each change, decides
// membership (alone readmits a host), rebalances from the load the hosts report,
// and drains. Generation goes on while it is down: dispatchers keep the last table.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>
#include <zmq.hpp>

namespace moemesh {

struct RouterOptions {
  std::string model;  // read for the number of experts
  std::string bind = "tcp://127.0.0.1:0";
  // A host whose reports stop this long is taken out: the only decision on
  // silence (a dropped connection takes it out at once).
  std::chrono::milliseconds heartbeat_timeout{10000};
  std::chrono::milliseconds rebalance_interval{0};  // 0: only on command
  // An attention replica whose reports stop this long leaves the list gateways
  // get (gateways notice a dropped connection or a hung replica themselves, sooner).
  std::chrono::milliseconds replica_timeout{3000};
  int rebalance_moves = 8;
  std::string metrics;  // Prometheus endpoint, e.g. 127.0.0.1:9101 (port 0: any); empty: none
};

class RouterService {
 public:
  RouterService(RouterOptions opts, zmq::context_t& ctx);
  ~RouterService();
  // Binds and starts serving; returns the bound endpoint.
  std::string start();
  // Graceful stop (SIGTERM): nothing is in flight at a control plane, so it stops at once.
  bool drain(std::chrono::milliseconds deadline);
  void stop();
  const std::string& endpoint() const { return endpoint_; }
  const std::string& metrics_url() const { return metrics_url_; }

 private:
  RouterOptions opts_;
  zmq::context_t& ctx_;
  caf::actor actor_;
  std::string endpoint_, metrics_url_;
};

// ---- Expert hosts → router: Hello, then Heartbeat every 250 ms ----

struct HostReport {
  std::string name, endpoint, zone;
  std::vector<int32_t> experts;  // held (the same ids on every MoE layer)
  uint64_t generation = 0;       // counts the changes of what it holds (orders reports against command answers)
  int64_t capacity = -1;         // experts it may hold (-1: all)
  uint64_t dispatches = 0, rows = 0;  // totals since it started
  // Rows computed per expert since its previous report (experts without rows left out).
  std::vector<std::pair<int32_t, uint64_t>> expert_rows;
};
nlohmann::json to_json(const HostReport& r);
// Throws std::invalid_argument naming the field; expert ids must lie in 0..n_experts-1.
HostReport host_report_from_json(const nlohmann::json& j, int64_t n_experts);

// ---- Router → expert host: Control commands ----
// Load and unload are answered {"cmd", "experts": held now, "generation"}; leave {"cmd", "ok"}.

enum class HostCommandKind { Load, Unload, Leave };
struct HostCommand {
  HostCommandKind kind = HostCommandKind::Load;
  std::vector<int32_t> experts;
};
nlohmann::json to_json(const HostCommand& c);
HostCommand host_command_from_json(const nlohmann::json& j);  // throws std::invalid_argument

// ---- The placement table: router → dispatchers ----

enum class HostState { Ready, Draining, Dead };
const char* host_state_name(HostState s);

struct TableHost {
  std::string name, endpoint, zone;
  HostState state = HostState::Ready;
  std::vector<int32_t> experts;  // routable (loaded and confirmed)
  double load = 0;               // rows a second it computed lately (from its reports)
  // On probation: a dispatcher found it slow or unreachable while it still
  // reports to the router. Every dispatcher uses it only where no other
  // replica is usable, until the router lifts the probation (docs/MESH.md).
  bool suspect = false;
};

struct PlacementTable {
  // Increases with every change, across router restarts (it starts from the
  // clock), so a dispatcher never takes an older table for a newer one.
  uint64_t version = 0;
  std::vector<TableHost> hosts;
};
nlohmann::json to_json(const PlacementTable& t);
PlacementTable placement_table_from_json(const nlohmann::json& j);  // throws std::invalid_argument

// ---- Dispatchers → router ----

struct DispatcherHello {
  std::string name, zone;
};
nlohmann::json to_json(const DispatcherHello& h);
DispatcherHello dispatcher_hello_from_json(const nlohmann::json& j);

enum class SuspicionReason { Disconnect, Deadline };
const char* suspicion_reason_name(SuspicionReason r);
struct Suspicion {
  std::string host;
  SuspicionReason reason = SuspicionReason::Disconnect;
  std::string detail;
};
nlohmann::json to_json(const Suspicion& s);
Suspicion suspicion_from_json(const nlohmann::json& j);

// ---- Attention replicas → router: a Replica report every 250 ms ----
// The router keeps the live replicas for the gateways (the Replicas command);
// it never sits between a gateway and a replica.

struct ReplicaReport {
  std::string name, endpoint, zone;  // endpoint: where gateways reach it
  int64_t running = 0, waiting = 0;  // requests in its batch and queued
  int64_t kv_pages_free = 0, kv_pages_total = 0;
  bool draining = false;             // takes no new requests (SIGTERM)
};
nlohmann::json to_json(const ReplicaReport& r);
ReplicaReport replica_report_from_json(const nlohmann::json& j);  // throws std::invalid_argument

// What the Replicas command answers: every replica heard from lately.
struct ReplicaList {
  std::vector<ReplicaReport> replicas;
};
nlohmann::json to_json(const ReplicaList& l);
ReplicaList replica_list_from_json(const nlohmann::json& j);  // throws std::invalid_argument

// ---- Control commands to the router (operators, hosts stopping, gateways) ----

enum class RouterCommandKind { Stats, Rebalance, Drain, Leaving, Replicas };
struct RouterCommand {
  RouterCommandKind kind = RouterCommandKind::Stats;
  std::string host;  // Drain, Leaving
};
nlohmann::json to_json(const RouterCommand& c);
RouterCommand router_command_from_json(const nlohmann::json& j);  // throws std::invalid_argument

}  // namespace moemesh
