// The dispatcher's decisions, free of sockets and clocks (time comes in): what
// it knows of each expert host (the router's table plus its own evidence), which
// replica gets an expert's rows, the deadline a dispatch may take, and the state
// of one MoE call in flight with its retries and hedges. The I/O around it is
// ExpertDispatcher (client.cpp).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/moe_gate.h"
#include "services/router/api.h"

namespace moemesh::dispatch_internal {

using Clock = std::chrono::steady_clock;

enum class RetryReason { Disconnect, Deadline, NotHeld, ShuttingDown, Error };
constexpr int kRetryReasons = 5;
const char* retry_reason_name(RetryReason r);

struct DeadlineRule {
  double percentile = 0.99;
  double factor = 4.0;
  std::chrono::microseconds floor{500000};
};

// Dispatch latencies of one host, kept by size (rows rounded up to a power of two).
class LatencyTracker {
 public:
  void add(int64_t rows, double seconds);
  // The p-quantile for a dispatch of `rows` rows from the nearest size measured
  // often enough (a smaller size's scaled up by the ratio of rows); nullopt when none is.
  std::optional<double> quantile(int64_t rows, double p) const;
  // factor × quantile, never below the floor; four floors while nothing is measured.
  std::chrono::microseconds deadline(int64_t rows, const DeadlineRule& r) const;
  uint64_t samples() const { return total_; }

 private:
  static constexpr int kBuckets = 24, kSamples = 64, kEnough = 8;
  struct Bucket {
    std::array<float, kSamples> s{};
    int n = 0, next = 0;
  };
  static int bucket_of(int64_t rows);
  std::array<Bucket, kBuckets> buckets_{};
  uint64_t total_ = 0;
};

// What the dispatcher knows of one expert host.
struct HostView {
  std::string name, endpoint, zone;
  HostState state = HostState::Ready;
  bool listed = false;           // in the newest table and not dead
  bool suspect = false;          // on the router's probation
  std::vector<int32_t> experts;  // sorted
  double load = 0;               // rows a second, as the router published
  // The dispatcher's own evidence.
  bool up = false;               // its connection completed a handshake and has not dropped since
  uint64_t slow_at = 0;          // missed a deadline while the table had this version (0: not slow)
  int64_t inflight_rows = 0;     // rows this dispatcher has outstanding there
  LatencyTracker latency;
  bool holds(int32_t e) const;
  bool healthy() const { return !suspect && slow_at == 0; }
  // Its queue: rows outstanding here plus ~50 ms of what others send it.
  double queued_rows() const { return static_cast<double>(inflight_rows) + load * 0.05; }
  // What choosing it for `rows` more costs: the time it measured for a dispatch
  // as big as its queue plus these (a slow link or a busy host costs more than
  // an idle near one); 0 while unmeasured, so a new host is tried and measured.
  double expected_seconds(int64_t rows) const;
};

enum class Pick { Chosen, Wait, None };

class HostSet {
 public:
  HostSet(int32_t n_experts, std::string zone, int64_t zone_overload_rows);

  struct Change {
    std::vector<int> disconnect;  // host indices whose link goes (restarted at a new endpoint)
  };
  // Takes a table newer than the one held (nullopt for an older or equal one).
  std::optional<Change> apply(const PlacementTable& t);
  uint64_t version() const { return version_; }

  size_t size() const { return hosts_.size(); }
  HostView& at(int i) { return hosts_.at(static_cast<size_t>(i)); }
  const HostView& at(int i) const { return hosts_.at(static_cast<size_t>(i)); }
  int find(const std::string& name) const;
  const std::string& zone() const { return zone_; }

  // The replica for `expert`, none of `avoid`: listed, connected and ready
  // (draining only where no ready holder is usable); healthy before suspect or
  // slow; the own zone first, another only when the own zone has none or its
  // best is overloaded (more than zone_overload_rows queued and twice the
  // other's queue). Within a zone, the least expected time wins. Wait: holders exist but none is usable now (or no table yet).
  // None: the table has no live holder at all.
  Pick choose(int32_t expert, int64_t rows, const std::vector<int>& avoid, int* host) const;
  bool cross_zone(int host) const { return at(host).zone != zone_; }

 private:
  int32_t n_experts_;
  std::string zone_;
  int64_t zone_overload_rows_;
  uint64_t version_ = 0;
  std::vector<HostView> hosts_;  // indices stay valid: hosts are never erased, only unlisted
};

// One part of a call: rows of some slots, sent to one host.
struct Part {
  int host = 0;
  int group = 0;
  int alternative = 0;
  std::vector<int32_t> rows;     // token rows sent, in order
  std::vector<int32_t> experts;  // [rows, top_k]; -1 for slots not sent here
  std::vector<float> weights;
  uint64_t request_id = 0;
  Clock::time_point sent{}, deadline = Clock::time_point::max();
  bool done = false, dead = false, hedged = false;
  std::vector<float> result;     // [rows, hidden] once done
};

// A MoE call that cannot complete: no host holds an expert (NoReplica) or the
// work waited past the cap (Timeout).
struct CallFailure {
  bool no_replica = false;
  std::string what;
};

// One MoE call in flight: its slots in groups (each covered by alternatives,
// sets of parts on different hosts), what was sent, answered and failed.
class CallState {
 public:
  CallState(int32_t layer, const Routing& routing, Clock::time_point start, Clock::duration max_wait);

  // Plans every group that has no live alternative (at first: one group per
  // host chosen). Returns the parts to send. Throws CallFailure when an expert
  // has no live holder. Groups with holders but none usable wait for the next plan.
  std::vector<int> plan(HostSet& hosts);
  // A second alternative for the group of an overdue part, avoiding its host;
  // returns the hedge's parts (none when no other replica is usable).
  std::vector<int> hedge(int part, HostSet& hosts);

  Part& part(int i) { return parts_.at(static_cast<size_t>(i)); }
  const Part& part(int i) const { return parts_.at(static_cast<size_t>(i)); }
  size_t parts() const { return parts_.size(); }

  // An answer: true when it was used (its alternative still counted).
  bool combined(int part, std::vector<float> result);
  // A part that will not be answered: its alternative is given up; the group
  // is planned again, `avoid_host` avoided (NotHeld, ShuttingDown, Error).
  void failed(int part, bool avoid_host);
  // Every live part on `host` failed (its connection dropped).
  std::vector<int> live_parts_on(int host) const;

  // Parts past their deadline, still live and not hedged.
  std::vector<int> overdue(Clock::time_point now) const;
  bool waiting() const;  // a group has no live alternative
  bool done() const;
  Clock::time_point give_up_at() const { return start_ + max_wait_; }
  // The earliest deadline of a live part (max when none).
  Clock::time_point next_deadline() const;
  // Why it is not done, for the error at give_up_at.
  std::string pending_summary(const HostSet& hosts) const;

  // Σ of the winning alternatives' partial sums, in group and part order (the
  // first contribution to a row is copied, so one host holding every expert
  // gives its answer bit for bit). out: [tokens, hidden].
  void sum(float* out, int64_t hidden) const;

 private:
  struct Alternative {
    std::vector<int> parts;
    bool dead = false;
    size_t answered = 0;
  };
  struct Group {
    std::vector<int32_t> slots;  // into the routing's [tokens, top_k]
    std::vector<Alternative> alternatives;
    int winner = -1;
    std::vector<int> avoid;
    bool live() const;
  };
  // Assigns `slots` to hosts (none of `avoid`); Chosen with `by_host` filled, or Wait/None.
  Pick assign(const std::vector<int32_t>& slots, const std::vector<int>& avoid, HostSet& hosts,
              std::vector<std::pair<int, std::vector<int32_t>>>* by_host, int32_t* missing) const;
  std::vector<int> add_alternative(int group, const std::vector<std::pair<int, std::vector<int32_t>>>& by_host, HostSet& hosts);

  int32_t layer_;
  Routing routing_;
  Clock::time_point start_;
  Clock::duration max_wait_;
  std::vector<Group> groups_;
  std::vector<Part> parts_;
};

}  // namespace moemesh::dispatch_internal
