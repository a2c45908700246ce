#include "services/router/client.h"

#include <thread>

#include <spdlog/spdlog.h>

#include "actors/curve.h"
#include "actors/control_call.h"
#include "actors/socket_monitor.h"
#include "actors/wire_message.h"

namespace moemesh {

nlohmann::json router_command(zmq::context_t& ctx, const std::string& router, const RouterCommand& c,
                              std::chrono::milliseconds timeout) {
  return control_call(ctx, router, to_json(c), timeout, "router");
}

void wait_for_experts(zmq::context_t& ctx, const std::string& router, std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  std::string last = "no answer from the router";
  while (std::chrono::steady_clock::now() < until) {
    try {
      const auto s = router_command(ctx, router, RouterCommand{RouterCommandKind::Stats, ""}, std::chrono::milliseconds(2000));
      if (!s["hosts"].empty() && s["uncovered"].empty()) return;
      last = std::to_string(s["uncovered"].size()) + " experts have no host yet";
    } catch (const std::exception& e) {
      last = e.what();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  throw std::runtime_error("the mesh did not come up: " + last);
}

struct TableSubscription::Impl {
  zmq::context_t& ctx;
  std::string router;
  DispatcherHello hello;
  zmq::socket_t sock;
  std::unique_ptr<SocketMonitor> monitor;
  std::chrono::steady_clock::time_point last_subscribe{};
  uint64_t next_id = 1;

  Impl(zmq::context_t& c, std::string r, DispatcherHello h)
      : ctx(c), router(std::move(r)), hello(std::move(h)), sock(c, zmq::socket_type::dealer) {
    sock.set(zmq::sockopt::linger, 0);
    monitor = std::make_unique<SocketMonitor>(ctx, sock);
    curve::dial(sock, router, "router");
    sock.connect(router);
    subscribe();
  }
  void subscribe() {
    auto m = wire::json_message(wire::MsgType::Subscribe, next_id++, to_json(hello));
    try {
      wire::send(sock, m);
    } catch (const zmq::error_t& e) {
      spdlog::warn("dispatcher {}: cannot subscribe to {}: {}", hello.name, router, e.what());
    }
    last_subscribe = std::chrono::steady_clock::now();
  }
};

TableSubscription::TableSubscription(zmq::context_t& ctx, const std::string& router, DispatcherHello hello)
    : impl_(std::make_unique<Impl>(ctx, router, std::move(hello))) {}

TableSubscription::~TableSubscription() = default;

std::vector<zmq::socket_t*> TableSubscription::sockets() { return {&impl_->sock, &impl_->monitor->events()}; }

std::optional<PlacementTable> TableSubscription::poll(uint64_t since) {
  Impl& s = *impl_;
  while (auto e = s.monitor->next())
    if (*e == PeerEvent::Up) s.subscribe();  // a router (re)started at that address
  if (std::chrono::steady_clock::now() - s.last_subscribe > std::chrono::seconds(5)) s.subscribe();
  std::optional<PlacementTable> newest;
  for (;;) {
    if (!(s.sock.get(zmq::sockopt::events) & ZMQ_POLLIN)) break;
    std::optional<wire::Message> m;
    try {
      m = wire::receive(s.sock);
    } catch (const wire::WireError& e) {
      spdlog::warn("dispatcher {}: from the router: {}", s.hello.name, e.what());
      continue;
    }
    if (!m || m->header.type != wire::MsgType::Table) continue;
    try {
      PlacementTable t = placement_table_from_json(wire::json_payload(*m));
      if (t.version > since && (!newest || t.version > newest->version)) newest = std::move(t);
    } catch (const std::exception& e) {
      spdlog::warn("dispatcher {}: a bad placement table: {}", s.hello.name, e.what());
    }
  }
  return newest;
}

std::optional<PlacementTable> TableSubscription::wait(uint64_t since, std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (auto t = poll(since)) return t;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    zmq::pollitem_t items[] = {{static_cast<void*>(impl_->sock), 0, ZMQ_POLLIN, 0},
                               {static_cast<void*>(impl_->monitor->events()), 0, ZMQ_POLLIN, 0}};
    zmq::poll(items, 2, std::min(left, std::chrono::milliseconds(500)));
  }
}

void TableSubscription::suspect(const Suspicion& s) {
  auto m = wire::json_message(wire::MsgType::Suspect, impl_->next_id++, to_json(s));
  try {
    wire::send(impl_->sock, m);
  } catch (const zmq::error_t&) {
  }
}

void TableSubscription::refresh() { impl_->subscribe(); }

}  // namespace moemesh
