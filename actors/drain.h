// Graceful stop (SIGTERM): a role stops taking new work, finishes what it had
// accepted, and says when nothing is left; whoever stops it waits for that up
// to a deadline and then stops it anyway.
#pragma once

#include <chrono>
#include <future>
#include <memory>

#include <caf/all.hpp>

namespace moemesh {

using drain_atom = caf::atom_constant<caf::atom("drain")>;
// Fulfilled by the actor once everything it had accepted is done.
using DrainDone = std::shared_ptr<std::promise<void>>;

// Kept inside a role's actor.
class DrainState {
 public:
  void start(DrainDone done) {
    draining_ = true;
    if (done_) done_->set_value();  // a second request: the first waiter stops waiting
    done_ = std::move(done);
  }
  bool draining() const { return draining_; }
  // Call whenever work finishes: reports once `idle` holds.
  void settle(bool idle) {
    if (done_ && idle) {
      done_->set_value();
      done_.reset();
    }
  }

 private:
  DrainDone done_;
  bool draining_ = false;
};

// Asks `actor` to drain and waits up to `deadline`; true when it finished all
// accepted work in time (or was already gone). The actor is told the deadline
// too (milliseconds), so it can end what is left cleanly when it passes.
bool drain_actor(const caf::actor& actor, std::chrono::milliseconds deadline);

}  // namespace moemesh

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(moemesh::DrainDone)
