// What every role's actor shares: the CAF atoms, the local message types that
// carry wire messages and continuations between threads and actors, and the
// actor system the roles of one process run in.
#pragma once

#include <functional>
#include <future>
#include <memory>

#include <caf/all.hpp>

#include "actors/socket_monitor.h"
#include "actors/wire_message.h"

namespace moemesh {

// A wire message that arrived on one of a transport's sockets, or (for a peer
// connected with monitoring) its connection going down or coming up.
struct Inbound {
  int socket = 0;                        // 0: the bound ROUTER socket; >0: a peer's DEALER
  std::vector<zmq::message_t> routing;   // ROUTER identity frames (socket 0)
  std::optional<wire::Message> message;  // empty for events
  std::optional<PeerEvent> event;        // set instead of a message
  std::string peer;                      // socket 0 under CURVE: the client's "kind/name" (actors/curve.h)
};
using InboundPtr = std::shared_ptr<Inbound>;

// Work handed back to an actor: runs inside the actor, so it may touch its state.
using Continuation = std::shared_ptr<std::function<void()>>;

using inbound_atom = caf::atom_constant<caf::atom("inbound")>;
using run_atom = caf::atom_constant<caf::atom("run")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;
using deadline_atom = caf::atom_constant<caf::atom("deadline")>;

// ThreadSanitizer cannot see a message pass through CAF's mailbox (libcaf_core
// is not instrumented): the sender marks what it hands over, and the receiving
// actor marks it received before touching it, so that hand-off is ordered.
#if defined(__SANITIZE_THREAD__)
extern "C" void __tsan_release(void* addr);
extern "C" void __tsan_acquire(void* addr);
inline void handed_over(const void* p) { __tsan_release(const_cast<void*>(p)); }
inline void received(const void* p) { __tsan_acquire(const_cast<void*>(p)); }
#else
inline void handed_over(const void*) {}
inline void received(const void*) {}
#endif

// `fn` as a message for a run_atom handler, marked handed over; also for delayed sends.
inline Continuation continuation(std::function<void()> fn) {
  auto f = std::make_shared<std::function<void()>>(std::move(fn));
  handed_over(f.get());
  return f;
}

// Runs `fn` inside `actor` (from any thread).
inline void run_in(const caf::actor& actor, std::function<void()> fn) {
  caf::anon_send(actor, run_atom::value, continuation(std::move(fn)));
}

// One actor system per process, made on first use; roles spawn their actors in it.
caf::actor_system& actor_system();
// Waits for every actor and destroys the system; call before main returns (a
// process that never calls it, like a test binary, leaves it to the OS).
void shutdown_actor_system();

// Asks `actor` to exit, waits until it has, and empties the handle (nothing if empty).
void stop_actor(caf::actor& actor);

}  // namespace moemesh

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(moemesh::InboundPtr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(moemesh::Continuation)
