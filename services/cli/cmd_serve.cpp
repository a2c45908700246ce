// moemesh serve ROLE: one role of the mesh as its own process, configured by the
// cluster config (--config), environment (MOEMESH__*) and --set overrides. The
// first line on stdout is the endpoint it bound, for whoever started it.
#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <iostream>
#include <thread>

#include <spdlog/spdlog.h>

#include "actors/curve.h"
#include "core/model_config.h"
#include "commands.h"
#include "services/mesh/cluster_config.h"

namespace moemesh::cli {
namespace {
std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop = true; }

struct ServeArgs {
  std::string config, model, name, experts, bind, advertise, device, zone;
  std::vector<std::string> sets;
};

ClusterConfig load(const ServeArgs& a) {
  std::vector<std::string> sets = a.sets;
  if (!a.model.empty()) sets.push_back("model=" + nlohmann::json(a.model).dump());
  nlohmann::json j = load_cluster_json(a.config, sets, "tcp");
  ClusterConfig c = ClusterConfig::from_json(j);
  if (c.model.empty()) throw std::invalid_argument("no model: give --model DIR or \"model\" in the cluster config");
  return c;
}

void announce(const std::string& endpoint) { std::cout << endpoint << std::endl; }

// CURVE on this process's mesh connections, as `kind`/`name` (docs/SECURITY.md).
void secure(const ClusterConfig& c, const std::string& kind, const std::string& name) {
  if (c.curve == "on" || (c.curve == "auto" && !c.curve_keys.empty())) {
    if (c.curve_keys.empty()) throw std::invalid_argument("security.curve is on but security.keys names no keyring (moemesh keygen makes one)");
    curve::enable(curve::Keyring::load(c.curve_keys, {{kind, name}}));
    spdlog::info("{}: CURVE on (keys in {})", kind, c.curve_keys);
  } else {
    spdlog::warn("{}: mesh connections are neither authenticated nor encrypted (security.curve: {}); docs/SECURITY.md", kind, c.curve);
  }
}

// After SIGTERM: the role finishes what it had accepted (up to the config's
// drain_timeout_ms) before it is stopped; the process then exits 0.
template <class Service>
void drain(Service& s, const char* role, std::chrono::milliseconds deadline) {
  const auto t0 = std::chrono::steady_clock::now();
  const bool done = s.drain(deadline);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (done) spdlog::info("{}: drained in {:.2f} s; stopping", role, secs);
  else spdlog::warn("{}: work still running after {:.1f} s; stopping anyway", role, secs);
}

// Closing a socket only hands what it still queues (a drained request's last
// tokens, a Leave) to ZeroMQ's I/O thread; terminating the context is what waits
// for it to reach the wire, up to each socket's linger. Declared before the role's
// service, so that it runs once the service is gone. Bounded, so that a socket
// left open somewhere cannot hold the exit.
class FlushOnExit {
 public:
  FlushOnExit(zmq::context_t& ctx, const char* role) : ctx_(ctx), role_(role) {}
  FlushOnExit(const FlushOnExit&) = delete;
  FlushOnExit& operator=(const FlushOnExit&) = delete;
  ~FlushOnExit() {
    auto closed = std::make_shared<std::promise<void>>();
    auto done = closed->get_future();
    std::thread([ctx = &ctx_, closed] {
      ctx->close();
      closed->set_value();
    }).detach();
    if (done.wait_for(std::chrono::seconds(3)) != std::future_status::ready)
      spdlog::warn("{}: mesh sockets still flushing after 3 s; exiting without them", role_);
  }

 private:
  zmq::context_t& ctx_;
  const char* role_;
};

void common_options(CLI::App* cmd, const std::shared_ptr<ServeArgs>& a) {
  cmd->add_option("--config", a->config, "cluster config (JSON)");
  cmd->add_option("--model", a->model, "checkpoint directory (overrides the config's model)");
  cmd->add_option("--set", a->sets, "override a config value, e.g. --set router.heartbeat_timeout_ms=5000 (repeatable)");
  cmd->add_option("--bind", a->bind, "endpoint to bind (overrides the config; tcp port 0: any free port)");
}

void zone_option(CLI::App* cmd, const std::shared_ptr<ServeArgs>& a) {
  cmd->add_option("--zone", a->zone, "this role's zone (overrides the config; Helm passes the node's topology zone)");
}
}  // namespace

std::string self_binary() {
  char* self = realpath("/proc/self/exe", nullptr);
  const std::string bin = self ? self : "moemesh";
  free(self);
  return bin;
}

bool wait_for_signal(const std::function<bool()>& also) {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  while (!g_stop && !(also && also())) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  return g_stop;
}

void add_serve_command(CLI::App& app) {
  auto* serve = app.add_subcommand("serve", "run one role of the mesh");
  serve->require_subcommand(1);
  // Terminated only after the role has stopped (FlushOnExit); held by a
  // static so that leak checkers see it as reachable.
  static zmq::context_t* const process_ctx = new zmq::context_t(1);
  zmq::context_t* ctx = process_ctx;

  auto r = std::make_shared<ServeArgs>();
  auto* router = serve->add_subcommand("router", "the expert tier's control plane: membership, the placement table, rebalancing");
  common_options(router, r);
  router->callback([r, ctx] {
    ClusterConfig c = load(*r);
    if (!r->bind.empty()) c.router.bind = r->bind;
    secure(c, "router", "router");
    FlushOnExit flush(*ctx, "router");
    RouterService s(c.router, *ctx);
    announce(s.start());
    if (!s.metrics_url().empty()) spdlog::info("router: metrics at {}", s.metrics_url());
    wait_for_signal();
    drain(s, "router", c.drain_timeout);
  });

  auto e = std::make_shared<ServeArgs>();
  auto* eh = serve->add_subcommand("expert-host", "serve a subset of routed experts");
  common_options(eh, e);
  eh->add_option("--name", e->name, "this host's entry in the config's expert_hosts (and its name in the mesh)");
  eh->add_option("--experts", e->experts, "expert ids held: all, none (the router assigns), or ranges like 0-127,200");
  eh->add_option("--advertise", e->advertise, "endpoint dispatchers and the router dial, when not the bound one (tcp://pod.service:7420)");
  zone_option(eh, e);
  eh->add_option("--device", e->device, "where the experts compute: cpu (default) or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  eh->callback([e, ctx] {
    ClusterConfig c = load(*e);
    ExpertHostConfig h;
    for (const auto& x : c.expert_hosts)
      if (x.options.name == e->name) h = x;
    if (h.options.model.empty()) {
      // Not in the config: a host joining with its own name.
      h.options.model = c.model;
      h.options.name = e->name;
      h.options.router = c.router_connect;
      h.options.bind = "tcp://127.0.0.1:0";
      h.options.compute = c.compute;
    }
    if (!e->experts.empty()) h.experts = e->experts;
    if (!e->bind.empty()) h.options.bind = e->bind;
    if (!e->advertise.empty()) h.options.advertise = e->advertise;
    if (!e->device.empty()) h.options.device = e->device;
    if (!e->zone.empty()) h.options.zone = e->zone;
    // Standalone (no config, no router named): dispatched to directly.
    if (e->config.empty() && std::none_of(e->sets.begin(), e->sets.end(), [](const std::string& s) { return s.rfind("router", 0) == 0; }))
      h.options.router.clear();
    const ModelConfig mc = ModelConfig::load(c.model);
    h.options.experts = resolve_experts(h.experts, static_cast<int32_t>(mc.n_routed_experts));
    secure(c, "expert-host", h.options.name);
    FlushOnExit flush(*ctx, "expert host");
    ExpertHostService s(h.options, *ctx);
    announce(s.start());
    if (!s.metrics_url().empty()) spdlog::info("expert host: metrics at {}", s.metrics_url());
    auto left = s.left();
    if (wait_for_signal([&] { return left.wait_for(std::chrono::seconds(0)) == std::future_status::ready; }))
      drain(s, "expert host", c.drain_timeout);
  });

  auto m = std::make_shared<ServeArgs>();
  auto* mtp = serve->add_subcommand("mtp-draft", "the MTP layer: drafts tokens for speculative decoding");
  common_options(mtp, m);
  zone_option(mtp, m);
  mtp->callback([m, ctx] {
    ClusterConfig c = load(*m);
    if (!m->bind.empty()) c.mtp.bind = m->bind;
    if (!m->zone.empty()) c.mtp.dispatch.zone = m->zone;
    secure(c, "mtp-draft", "mtp-draft");
    FlushOnExit flush(*ctx, "mtp-draft");
    MtpDraftService s(c.mtp, *ctx);
    announce(s.start());
    if (!s.metrics_url().empty()) spdlog::info("mtp-draft: metrics at {}", s.metrics_url());
    wait_for_signal();
    drain(s, "mtp-draft", c.drain_timeout);
  });

  auto gw = std::make_shared<ServeArgs>();
  auto* gateway = serve->add_subcommand("gateway", "the OpenAI-compatible HTTP API, WebSocket chat and web page, in front of attention");
  common_options(gateway, gw);
  gateway->callback([gw, ctx] {
    ClusterConfig c = load(*gw);
    secure(c, "gateway", "gateway");
    FlushOnExit flush(*ctx, "gateway");
    GatewayService g(c.gateway, c.model, c.gateway_upstream(), *ctx);
    const uint16_t port = g.start();
    announce((c.gateway.tls_cert.empty() ? "http://" : "https://") + c.gateway.host + ":" + std::to_string(port));
    wait_for_signal();
    drain(g, "gateway", c.drain_timeout);  // 503 for new generations meanwhile
    g.stop();
  });

  auto a = std::make_shared<ServeArgs>();
  auto* attn = serve->add_subcommand("attention", "embeddings, MLA layers, KV cache, LM head, sampler and scheduler");
  common_options(attn, a);
  zone_option(attn, a);
  attn->add_option("--name", a->name, "its name among the attention replicas (config: attention.name)");
  attn->add_option("--advertise", a->advertise, "endpoint gateways dial, when not the bound one (tcp://pod.service:7430)");
  attn->callback([a, ctx] {
    ClusterConfig c = load(*a);
    if (!a->bind.empty()) c.attention.bind = a->bind;
    if (!a->name.empty()) c.attention.name = a->name;
    if (!a->advertise.empty()) c.attention.advertise = a->advertise;
    if (!a->zone.empty()) c.attention.dispatch.zone = a->zone;
    secure(c, "attention", "attention");
    FlushOnExit flush(*ctx, "attention");
    AttentionService s(c.attention, *ctx);
    announce(s.start());
    if (!s.metrics_url().empty()) spdlog::info("attention: metrics at {}", s.metrics_url());
    wait_for_signal();
    drain(s, "attention", c.drain_timeout);
  });
}

}  // namespace moemesh::cli
