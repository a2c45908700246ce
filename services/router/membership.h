// The router's decisions, free of sockets and clocks (time comes in): who is a
// member of the expert tier, what each host should hold, and when the table
// changes. The actor (router_actor.cpp) only carries messages to and from it.
//
// A host is taken out on the router's own evidence only: its control connection
// closing (the process died), or its reports stopping for heartbeat_timeout.
// A dispatcher's suspicion never removes a host by itself: a host that has gone
// silent here too is taken out; one that still reports is put on probation (the
// table marks it suspect, and every dispatcher then uses it only where no other
// replica is usable) until the probation runs out. The router alone readmits.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "placement.h"
#include "services/router/api.h"

namespace moemesh::router_internal {

using Clock = std::chrono::steady_clock;

struct MembershipOptions {
  std::chrono::milliseconds heartbeat_timeout{10000};
  // How long a draining host keeps its place after the table saying so went
  // out, so every dispatcher has it before the host is told to leave.
  std::chrono::milliseconds leave_grace{1000};
  int rebalance_moves = 8;
  // A host a dispatcher suspects while it still reports here is put on
  // probation for this long, doubled for each further suspicion within
  // strike_window (up to probation_max), so a flapping link settles instead of
  // flipping every dispatcher back and forth.
  std::chrono::milliseconds probation{5000}, probation_max{60000}, strike_window{60000};
};

// What the actor carries out after a decision, in this order: connect, send the
// commands, close sockets, publish.
struct Actions {
  struct Command {
    int host = 0;    // by host id (its socket once connected) ...
    int socket = 0;  // ... or this socket, for a host already gone from the table
    HostCommand command;
  };
  std::vector<int> connect;        // open a control socket to these hosts (new or moved)
  std::vector<Command> commands;
  std::vector<int> close_sockets;  // control sockets to close
  bool publish = false;            // the table changed: send it to every dispatcher
  void merge(Actions o);
};

class Membership {
 public:
  Membership(int32_t n_experts, MembershipOptions o, uint64_t first_version);

  Placement& placement() { return placement_; }
  const Placement& placement() const { return placement_; }
  uint64_t version() const { return version_; }
  PlacementTable table() const { return placement_.table(version_); }

  // A Hello or Heartbeat. A report from a host not known (or taken out, or at a
  // new endpoint) registers it; an empty host with capacity is given experts.
  Actions report(const HostReport& r, Clock::time_point now);
  // The answer to a load or unload: the experts the host holds now.
  Actions holds(int host, const std::vector<int32_t>& experts_now, uint64_t generation);
  // The router's control connection to a host closed (or came back).
  Actions connection_down(int host);
  // A dispatcher's suspicion.
  Actions suspect(const Suspicion& s, Clock::time_point now);
  // Operators and hosts: throw std::invalid_argument when no live host has that name.
  Actions drain(const std::string& host, Clock::time_point now, std::vector<int32_t>* reassigned);
  Actions leaving(const std::string& host, Clock::time_point now);
  Actions rebalance(nlohmann::json* moves);
  // Silent hosts out, drained hosts told to leave.
  Actions tick(Clock::time_point now);

  nlohmann::json stats() const;
  uint64_t membership_changes() const { return membership_changes_; }
  uint64_t moves() const { return moves_; }
  uint64_t suspicions(SuspicionReason r) const { return suspicions_[static_cast<int>(r)]; }

 private:
  Actions take_out(int host, const std::string& why);
  HostEntry* live_host(const std::string& name);  // throws std::invalid_argument
  Actions start_draining(HostEntry& h, Clock::time_point now);
  Actions send_load(HostEntry& h, const std::vector<int32_t>& experts, bool load);
  void changed() { ++version_; }

  Placement placement_;
  MembershipOptions o_;
  uint64_t version_;
  std::map<int, Clock::time_point> draining_since_;  // when the table saying so went out
  uint64_t membership_changes_ = 0, moves_ = 0;
  uint64_t suspicions_[2] = {0, 0};
};

}  // namespace moemesh::router_internal
