// The attention replicas the router has heard from: each Replica report
// refreshes its entry (a replica restarted on a new endpoint replaces its old
// one; two live ones under one name are refused, the first keeps it), entries
// silent for the timeout leave. Gateways get the list; they
// judge a replica's health on their own connection (docs/MESH.md).
#pragma once

#include <chrono>
#include <map>
#include <string>

#include "services/router/api.h"

namespace moemesh::router_internal {

class ReplicaRegistry {
 public:
  using Clock = std::chrono::steady_clock;
  explicit ReplicaRegistry(std::chrono::milliseconds timeout) : timeout_(timeout) {}

  // True when the replica is new (or came back on another endpoint).
  bool report(const ReplicaReport& r, Clock::time_point now);
  // Drops the silent ones; returns how many left.
  size_t expire(Clock::time_point now);
  ReplicaList list() const;
  size_t size() const { return entries_.size(); }
  uint64_t joins() const { return joins_; }
  // Reports refused because a live replica already has that name at another endpoint.
  uint64_t conflicts() const { return conflicts_; }
  static constexpr std::chrono::milliseconds kSameNameWindow{600};  // over two report periods

 private:
  struct Entry {
    ReplicaReport report;
    Clock::time_point last_seen;
  };
  std::chrono::milliseconds timeout_;
  std::map<std::string, Entry> entries_;  // by name
  uint64_t joins_ = 0, conflicts_ = 0;
};

}  // namespace moemesh::router_internal
