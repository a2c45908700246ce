#include "replica_choice.h"

#include <stdexcept>

namespace moemesh {

std::optional<RoutingPolicy> routing_policy_from_name(const std::string& name) {
  if (name == "cache_aware") return RoutingPolicy::CacheAware;
  if (name == "least_load") return RoutingPolicy::LeastLoad;
  if (name == "round_robin") return RoutingPolicy::RoundRobin;
  return std::nullopt;
}

const char* routing_policy_name(RoutingPolicy p) {
  switch (p) {
    case RoutingPolicy::CacheAware: return "cache_aware";
    case RoutingPolicy::LeastLoad: return "least_load";
    case RoutingPolicy::RoundRobin: return "round_robin";
  }
  return "?";
}

namespace {

// The least-loaded candidate; among equals, the first at or after the cursor.
size_t least_loaded(std::span<const ReplicaCandidate> c, size_t& cursor) {
  const size_t n = c.size();
  size_t best = cursor % n;
  for (size_t k = 1; k < n; ++k) {
    const size_t i = (cursor + k) % n;
    if (c[i].load < c[best].load) best = i;
  }
  cursor = best + 1;
  return best;
}

}  // namespace

ReplicaChoice choose_replica(RoutingPolicy policy, std::span<const ReplicaCandidate> c, size_t& cursor,
                             const BalanceOptions& balance) {
  if (c.empty()) throw std::invalid_argument("choose_replica: no candidate");
  switch (policy) {
    case RoutingPolicy::RoundRobin: {
      const size_t i = cursor++ % c.size();
      return {i, false};
    }
    case RoutingPolicy::LeastLoad: return {least_loaded(c, cursor), false};
    case RoutingPolicy::CacheAware: {
      size_t at = cursor;
      const size_t least = least_loaded(c, at);
      // The longest match; among equal matches, the least loaded.
      size_t best = least;
      for (size_t i = 0; i < c.size(); ++i)
        if (c[i].matched > c[best].matched || (c[i].matched == c[best].matched && c[i].load < c[best].load)) best = i;
      if (c[best].matched == 0 || best == least) {
        cursor = at;
        return {least, c[least].matched > 0};
      }
      const int64_t over = c[best].load - c[least].load;
      const bool overloaded = over > balance.abs && static_cast<double>(c[best].load) > balance.rel * static_cast<double>(c[least].load);
      if (overloaded) {
        cursor = at;
        return {least, false};
      }
      return {best, true};
    }
  }
  return {0, false};
}

}  // namespace moemesh
