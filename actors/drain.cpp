#include "actors/drain.h"

namespace moemesh {

bool drain_actor(const caf::actor& actor, std::chrono::milliseconds deadline) {
  if (!actor) return true;
  auto done = std::make_shared<std::promise<void>>();
  auto f = done->get_future();
  caf::anon_send(actor, drain_atom::value, std::move(done), static_cast<int64_t>(deadline.count()));
  // An actor that already exited drops the message and with it the promise:
  // the future is then ready (broken) at once, which is "nothing left" too.
  return f.wait_for(deadline) == std::future_status::ready;
}

}  // namespace moemesh
