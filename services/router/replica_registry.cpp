#include "replica_registry.h"

namespace moemesh::router_internal {

bool ReplicaRegistry::report(const ReplicaReport& r, Clock::time_point now) {
  auto it = entries_.find(r.name);
  // Another endpoint under a name that reported a moment ago: two live replicas
  // share a name (a restart takes longer than this). The first keeps it.
  if (it != entries_.end() && it->second.report.endpoint != r.endpoint && now - it->second.last_seen < kSameNameWindow) {
    ++conflicts_;
    return false;
  }
  const bool fresh = it == entries_.end() || it->second.report.endpoint != r.endpoint;
  entries_[r.name] = {r, now};
  if (fresh) ++joins_;
  return fresh;
}

size_t ReplicaRegistry::expire(Clock::time_point now) {
  size_t gone = 0;
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (now - it->second.last_seen > timeout_) {
      it = entries_.erase(it);
      ++gone;
    } else {
      ++it;
    }
  }
  return gone;
}

ReplicaList ReplicaRegistry::list() const {
  ReplicaList l;
  for (const auto& [name, e] : entries_) l.replicas.push_back(e.report);
  return l;
}

}  // namespace moemesh::router_internal
