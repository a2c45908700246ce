#include "actors/mesh_actor.h"

#include <mutex>

namespace moemesh {
namespace {
std::mutex g_mu;
caf::actor_system_config* g_cfg = nullptr;
caf::actor_system* g_sys = nullptr;
}  // namespace

caf::actor_system& actor_system() {
  std::lock_guard<std::mutex> lock(g_mu);
  if (!g_sys) {
    // Actor threads only route messages and keep state; compute runs on the
    // compute queues, so two scheduler threads are plenty.
    g_cfg = new caf::actor_system_config;
    g_cfg->set("scheduler.max-threads", 2);
    // Workers that wait on a condition variable wake as soon as a message comes;
    // work stealing's idle workers poll and can sleep for milliseconds, which
    // would sit on every hop of every MoE layer.
    g_cfg->set("scheduler.policy", caf::atom("sharing"));
    g_sys = new caf::actor_system(*g_cfg);
  }
  return *g_sys;
}

void shutdown_actor_system() {
  std::lock_guard<std::mutex> lock(g_mu);
  // CAF's own globals must still exist when the system goes: destroy it before
  // main returns, never from a static destructor.
  delete g_sys;
  delete g_cfg;
  g_sys = nullptr;
  g_cfg = nullptr;
}

void stop_actor(caf::actor& actor) {
  if (!actor) return;
  caf::scoped_actor self{actor_system()};
  self->send_exit(actor, caf::exit_reason::user_shutdown);
  self->wait_for(actor);
  actor = caf::actor{};
}

}  // namespace moemesh
