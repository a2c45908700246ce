// The client of the expert hosts: ExpertDispatcher, the MoE executor of the
// attention and mtp-draft roles. It runs the gates of its MoE layers, sends each
// expert host the rows for the experts it chose it for, and sums their partial
// results: two hops per MoE layer, with no role in between (docs/MESH.md).
//
// It learns the placement from the router's table (or a fixed list) and acts
// on its own evidence at once: a connection that drops (ZeroMQ's socket
// monitor, with ZMTP heartbeats so a silent peer drops too) sends that host's
// work to a replica; a dispatch past its deadline (a high quantile of measured
// latency times a factor, with a floor) is hedged on a replica and reported
// to the router. Slowness never fails a call: work without a usable replica
// waits (up to max_wait); only an expert no live host holds fails it at once.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "actors/role_metrics.h"
#include "core/activations.h"
#include "model/moe_executor.h"

namespace moemesh {

struct DispatcherOptions {
  std::string name;  // in logs and at the router (the role sets it)
  std::string zone;  // prefers expert hosts of this zone
  WireActivations activations = WireActivations::BF16;  // hidden states to the hosts
  // A dispatch's deadline: deadline_factor × the deadline_percentile of the
  // host's latency for that size, never below deadline_floor.
  double deadline_percentile = 0.99;
  double deadline_factor = 4.0;
  std::chrono::milliseconds deadline_floor{500};
  // Work whose every holder is unreachable or slow waits this long, then fails.
  std::chrono::milliseconds max_wait{30000};
  // ZMTP heartbeats on each host connection: a peer silent for link_timeout is dropped.
  std::chrono::milliseconds link_heartbeat{300};
  std::chrono::milliseconds link_timeout{1500};
  // Another zone's replica is used when the own zone's best has more rows
  // outstanding than this and twice the other's.
  int64_t zone_overload_rows = 1024;
  bool count_layers = false;  // count rows per expert of every MoE layer (DispatcherStats::layer_rows)
};

// A host of a fixed placement (no router: eval --expert-host).
struct StaticExpertHost {
  std::string name, endpoint, zone;
  std::vector<int32_t> experts;
};

struct DispatcherStats {
  uint64_t calls = 0, failed_calls = 0, dispatches = 0, hedges = 0, cross_zone = 0, suspicions = 0;
  uint64_t bytes_sent = 0, bytes_received = 0, table_version = 0;
  std::map<std::string, uint64_t> retries;  // by reason: disconnect, deadline, not_held, shutting_down, error
  struct Host {
    uint64_t dispatches = 0, rows = 0, bytes = 0, late_answers = 0;
    double latency_p50_ms = 0, latency_p99_ms = 0, deadline_ms = 0;  // for one row
    bool up = false, listed = false, suspect = false, slow = false;
    std::string zone;
  };
  std::map<std::string, Host> hosts;
  std::map<int64_t, std::vector<uint64_t>> layer_rows;  // with count_layers: rows per expert, by layer
  // Where the MoE calls' time went (seconds, summed over calls): the gate;
  // taking in what arrived, planning, packing and sending; waiting in end() for
  // the answers, and of that the slowest answer's compute as its host reported
  // it (the rest of the wait is transport and queueing); summing the answers.
  struct Phases {
    uint64_t calls = 0;
    double gate = 0, send = 0, wait = 0, host_compute = 0, sum = 0;
  } phases;
  // Latency samples since the previous take (seconds, per host): for histograms.
  std::map<std::string, std::vector<double>> latencies;
  DispatcherStats& operator+=(const DispatcherStats& o);
};
nlohmann::json to_json(const DispatcherStats& s);

// A role's Prometheus families for its dispatchers: moemesh_moe_requests_total
// {status}, moemesh_dispatches_total{host}, moemesh_dispatch_bytes_total{host},
// moemesh_dispatch_seconds{host}, moemesh_dispatch_retries_total{reason},
// moemesh_dispatch_hedges_total, moemesh_cross_zone_dispatches_total,
// moemesh_dispatch_suspicions_total, moemesh_moe_call_phase_seconds_total{phase}
// (gate, send, wait, host_compute, sum: DispatcherStats::Phases), and with per_layer
// moemesh_tokens_routed_by_layer_total{layer, expert}.
class DispatcherMetrics {
 public:
  DispatcherMetrics(RoleMetrics& m, bool per_layer);
  // Adds what changed since the last update; `now` is cumulative (latencies: new samples only).
  void update(const DispatcherStats& now);

 private:
  prometheus::Family<prometheus::Counter>*calls_, *retries_, *dispatches_, *bytes_;
  prometheus::Family<prometheus::Histogram>* seconds_;
  prometheus::Counter *hedges_, *cross_zone_, *suspicions_;
  prometheus::Family<prometheus::Counter>* phases_;
  prometheus::Family<prometheus::Counter>* by_layer_;
  DispatcherStats seen_;
};

class ExpertDispatcher : public MoeExecutor {
 public:
  // Follows the router's placement table.
  ExpertDispatcher(zmq::context_t& ctx, const ModelConfig& cfg, const Checkpoint& ckpt, const std::vector<int64_t>& layers,
                   const std::string& router, DispatcherOptions opts);
  // A fixed placement, no router.
  ExpertDispatcher(zmq::context_t& ctx, const ModelConfig& cfg, const Checkpoint& ckpt, const std::vector<int64_t>& layers,
                   std::vector<StaticExpertHost> hosts, DispatcherOptions opts);
  ~ExpertDispatcher() override;

  void routed(int64_t layer, const float* x, int64_t tokens, float* out) override;
  void begin(int64_t layer, const float* x, int64_t tokens) override;
  // Throws ExpertsUnavailable when an expert has no live host or the work
  // waited past max_wait.
  void end(float* out) override;

  // Between calls, on the thread that makes them: takes in what arrived (tables,
  // connections coming and going, late answers) and says Subscribe again where
  // due, so an idle dispatcher is as current as a busy one. Does not block.
  void maintain();

  // Thread-safe. With `take_latencies`, the latency samples are handed over (and cleared).
  DispatcherStats stats(bool take_latencies = false) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace moemesh
