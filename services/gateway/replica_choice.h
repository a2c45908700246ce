// Which attention replica a new request goes to (docs/MESH.md, "Attention
// replicas"): the policy alone, over the replicas usable now.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>

namespace moemesh {

enum class RoutingPolicy { CacheAware, LeastLoad, RoundRobin };
std::optional<RoutingPolicy> routing_policy_from_name(const std::string& name);
const char* routing_policy_name(RoutingPolicy p);

struct ReplicaCandidate {
  int64_t load = 0;     // requests it runs and queues (the gateway's count or its report, the larger)
  int64_t matched = 0;  // tokens of the request's prefix it is known to hold
};

// cache_aware passes over the replica holding the longest prefix only when it
// is overloaded: its load above the least-loaded's by more than `abs` and
// more than `rel` times (SGLang's router's two thresholds).
struct BalanceOptions {
  int64_t abs = 16;
  double rel = 1.5;
};

struct ReplicaChoice {
  size_t index = 0;    // into the candidates
  bool cached = false;  // chosen for the prefix it holds
};

// `cursor` turns round robin and breaks ties between equally loaded replicas.
// Needs at least one candidate.
ReplicaChoice choose_replica(RoutingPolicy policy, std::span<const ReplicaCandidate> candidates, size_t& cursor,
                             const BalanceOptions& balance = {});

}  // namespace moemesh
