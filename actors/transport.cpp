#include "actors/transport.h"

#include "actors/curve.h"

#include <cerrno>
#include <cstdio>

#include <spdlog/spdlog.h>

namespace moemesh {

namespace {
// How long a closing socket may keep sending what was queued on it.
constexpr int kFlushLingerMs = 1000;
}  // namespace

Identity identity_of(const std::vector<zmq::message_t>& routing) {
  Identity id;
  for (const auto& f : routing) id.emplace_back(static_cast<const char*>(f.data()), f.size());
  return id;
}

std::vector<zmq::message_t> routing_of(const Identity& id) {
  std::vector<zmq::message_t> r;
  for (const auto& s : id) r.emplace_back(s.data(), s.size());
  return r;
}

uint64_t payload_bytes(const wire::Message& m) {
  uint64_t n = wire::kHeaderBytes;
  for (const auto& p : m.payloads) n += p.size();
  return n;
}

Transport::Transport(zmq::context_t& ctx) : ctx_(ctx) {}

Transport::~Transport() { stop(); }

std::string Transport::start(const std::string& endpoint, caf::actor owner) {
  owner_ = std::move(owner);
  char name[64];
  std::snprintf(name, sizeof name, "inproc://moemesh-transport-%p", static_cast<void*>(this));
  wake_endpoint_ = name;
  wake_rx_ = std::make_unique<zmq::socket_t>(ctx_, zmq::socket_type::pair);
  wake_rx_->bind(wake_endpoint_);
  wake_tx_ = std::make_unique<zmq::socket_t>(ctx_, zmq::socket_type::pair);
  wake_tx_->connect(wake_endpoint_);
  std::string bound;
  if (!endpoint.empty()) {
    router_ = std::make_unique<zmq::socket_t>(ctx_, zmq::socket_type::router);
    router_->set(zmq::sockopt::linger, 0);
    router_->set(zmq::sockopt::router_mandatory, false);
    curve::serve(ctx_, *router_, endpoint);
    router_->bind(endpoint);
    bound = router_->get(zmq::sockopt::last_endpoint);
  }
  thread_ = std::thread([this] { loop(); });
  return bound;
}

void Transport::count_drops_in(RoleMetrics& m) {
  prometheus::Counter* c =
      &m.counter("moemesh_transport_dropped_sends_total", "Messages to a peer whose queue was full (down, or not reading), dropped").Add({});
  std::lock_guard<std::mutex> lock(drops_mu_);
  drops_metric_ = c;
  if (dropped_ > 0) c->Increment(static_cast<double>(dropped_.load()));
}

void Transport::stop() {
  if (!thread_.joinable()) return;
  stop_ = true;
  push(Command{});  // wakes the loop
  thread_.join();
  std::lock_guard<std::mutex> lock(mu_);  // senders check wake_tx_ under it
  monitors_.clear();
  peers_.clear();
  router_.reset();
  wake_tx_.reset();
  wake_rx_.reset();
  queue_.clear();
  owner_ = caf::actor{};
  shortcut_ = nullptr;  // it may hold the owner
}

void Transport::push(Command c) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!wake_tx_) return;
  queue_.push_back(std::move(c));
  if (queue_.size() == 1) wake_tx_->send(zmq::message_t(), zmq::send_flags::dontwait);
}

int Transport::connect(const std::string& endpoint, bool monitor, std::string kind, std::string name) {
  Command c;
  c.kind = Command::Connect;
  c.endpoint = endpoint;
  c.monitor = monitor;
  c.kind_of_peer = std::move(kind);
  c.name = std::move(name);
  {
    std::lock_guard<std::mutex> lock(mu_);
    c.socket = next_socket_++;
  }
  const int id = c.socket;
  push(std::move(c));
  return id;
}

void Transport::disconnect(int socket) {
  Command c;
  c.kind = Command::Disconnect;
  c.socket = socket;
  push(std::move(c));
}

void Transport::send(int socket, wire::Message m) {
  Command c;
  c.socket = socket;
  c.message = std::move(m);
  push(std::move(c));
}

void Transport::reply(std::vector<zmq::message_t> routing, wire::Message m) {
  Command c;
  c.socket = 0;
  c.routing = std::move(routing);
  c.message = std::move(m);
  push(std::move(c));
}

void Transport::drain_commands() {
  std::deque<Command> q;
  {
    std::lock_guard<std::mutex> lock(mu_);
    q.swap(queue_);
    zmq::message_t m;
    while (wake_rx_->recv(m, zmq::recv_flags::dontwait)) {
    }
  }
  for (auto& c : q) {
    try {
      if (c.kind == Command::Connect) {
        zmq::socket_t s(ctx_, zmq::socket_type::dealer);
        s.set(zmq::sockopt::linger, 0);
        auto& placed = peers_.emplace(c.socket, std::move(s)).first->second;
        if (c.monitor) monitors_[c.socket] = std::make_unique<SocketMonitor>(ctx_, placed);
        curve::dial(placed, c.endpoint, c.kind_of_peer, c.name);
        placed.connect(c.endpoint);
      } else if (c.kind == Command::Disconnect) {
        monitors_.erase(c.socket);
        auto it = peers_.find(c.socket);
        if (it != peers_.end()) {
          it->second.set(zmq::sockopt::linger, kFlushLingerMs);  // what was sent last (a Leave) still goes out
          peers_.erase(it);
        }
      } else if (c.socket == 0) {
        if (!router_ || c.routing.empty()) continue;
        bytes_sent_ += payload_bytes(c.message);
        wire::send(*router_, c.message, &c.routing);
      } else {
        auto it = peers_.find(c.socket);
        if (it == peers_.end()) continue;  // disconnected meanwhile
        // A peer that takes nothing (down while its queue filled up to the
        // high-water mark) must not block this thread, which every socket of
        // the role shares: what would block is dropped, and counted.
        if (!(it->second.get(zmq::sockopt::events) & ZMQ_POLLOUT)) {
          uint64_t n = 0;
          {
            std::lock_guard<std::mutex> lock(drops_mu_);
            n = ++dropped_;
            if (drops_metric_) drops_metric_->Increment();
          }
          if (n % 1000 == 1) spdlog::warn("transport: a peer ({}) takes no messages; {} dropped so far", c.socket, n);
          continue;
        }
        bytes_sent_ += payload_bytes(c.message);
        wire::send(it->second, c.message);
      }
    } catch (const zmq::error_t& e) {
      spdlog::warn("transport: {}", e.what());
    } catch (const std::runtime_error& e) {
      spdlog::error("transport: {}", e.what());  // a peer CURVE has no key for: never connected
    }
  }
}

void Transport::deliver(int socket, zmq::socket_t& s) {
  auto in = std::make_shared<Inbound>();
  in->socket = socket;
  try {
    auto m = wire::receive(s, socket == 0 ? &in->routing : nullptr, &in->peer);
    if (!m) return;
    in->message = std::move(m);
  } catch (const wire::WireError& e) {
    // Answered here for every role: the sender hears what was wrong, the role
    // never sees the frame.
    ++bad_frames_;
    spdlog::warn("transport: {}", e.what());
    if (socket == 0 && !in->routing.empty()) {
      wire::Message err = wire::error_message(e.request_id(), e.code(), e.what());
      wire::send(s, err, &in->routing);
    }
    return;
  }
  if (socket == 0 && shortcut_) {
    wire::Message reply;
    if (shortcut_(*in, reply)) {
      bytes_sent_ += payload_bytes(reply);
      wire::send(s, reply, &in->routing);
      return;
    }
  }
  handed_over(in.get());
  caf::anon_send(owner_, inbound_atom::value, std::move(in));
}

void Transport::loop() {
  while (!stop_) {
    std::vector<zmq::pollitem_t> items;
    std::vector<int> which;
    items.push_back({static_cast<void*>(*wake_rx_), 0, ZMQ_POLLIN, 0});
    which.push_back(-1);
    if (router_) {
      items.push_back({static_cast<void*>(*router_), 0, ZMQ_POLLIN, 0});
      which.push_back(0);
    }
    for (auto& [id, s] : peers_) {
      items.push_back({static_cast<void*>(s), 0, ZMQ_POLLIN, 0});
      which.push_back(id);
    }
    const size_t first_monitor = items.size();
    std::vector<int> monitored;
    for (auto& [id, mon] : monitors_) {
      items.push_back({static_cast<void*>(mon->events()), 0, ZMQ_POLLIN, 0});
      monitored.push_back(id);
    }
    try {
      zmq::poll(items, std::chrono::milliseconds(500));
      for (size_t i = first_monitor; i < items.size(); ++i) {
        if (!(items[i].revents & ZMQ_POLLIN)) continue;
        auto mon = monitors_.find(monitored[i - first_monitor]);
        if (mon == monitors_.end()) continue;
        while (auto e = mon->second->next()) {
          auto in = std::make_shared<Inbound>();
          in->socket = mon->first;
          in->event = *e;
          handed_over(in.get());
          caf::anon_send(owner_, inbound_atom::value, std::move(in));
        }
      }
      for (size_t i = 0; i < first_monitor; ++i) {
        if (!(items[i].revents & ZMQ_POLLIN)) continue;
        if (which[i] == -1) continue;
        zmq::socket_t& s = which[i] == 0 ? *router_ : peers_.at(which[i]);
        // Up to a few messages per socket per round, so no peer starves the others.
        for (int n = 0; n < 16 && (s.get(zmq::sockopt::events) & ZMQ_POLLIN); ++n) deliver(which[i], s);
      }
      drain_commands();
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      if (e.num() == ETERM) return;
      spdlog::error("transport: {}", e.what());
    }
  }
  // Stopping: what the role queued last (the final tokens of a drained
  // request, a Leave) is sent, and the sockets get a moment to flush it.
  try {
    drain_commands();
    if (router_) router_->set(zmq::sockopt::linger, kFlushLingerMs);
    for (auto& [id, s] : peers_) s.set(zmq::sockopt::linger, kFlushLingerMs);
  } catch (const zmq::error_t& e) {
    spdlog::warn("transport: while stopping: {}", e.what());
  }
}

RequestChannel::RequestChannel(zmq::context_t& ctx, const std::string& endpoint, std::string kind)
    : ctx_(ctx), endpoint_(endpoint), kind_(std::move(kind)) {
  reconnect();
}

void RequestChannel::reconnect() {
  sock_ = std::make_unique<zmq::socket_t>(ctx_, zmq::socket_type::dealer);
  sock_->set(zmq::sockopt::linger, 0);
  curve::dial(*sock_, endpoint_, kind_);
  sock_->connect(endpoint_);
}

std::optional<wire::Message> RequestChannel::call(wire::Message m, std::chrono::milliseconds timeout) {
  const uint64_t id = m.header.request_id;
  send(std::move(m));
  return wait(id, timeout);
}

void RequestChannel::send(wire::Message m) {
  bytes_sent_ += payload_bytes(m);
  wire::send(*sock_, m);
}

std::optional<wire::Message> RequestChannel::wait(uint64_t id, std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    zmq::pollitem_t item{static_cast<void*>(*sock_), 0, ZMQ_POLLIN, 0};
    try {
      if (zmq::poll(&item, 1, left) == 0) return std::nullopt;
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      throw;
    }
    auto r = wire::receive(*sock_);
    if (!r) continue;
    bytes_received_ += payload_bytes(*r);
    if (r->header.request_id == id) return r;
  }
}

}  // namespace moemesh
