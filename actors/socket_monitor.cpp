#include "actors/socket_monitor.h"

#include <atomic>
#include <cstring>

namespace moemesh {
namespace {
std::atomic<uint64_t> g_monitors{0};
}  // namespace

SocketMonitor::SocketMonitor(zmq::context_t& ctx, zmq::socket_t& s)
    : watched_(s), address_("inproc://moemesh-monitor-" + std::to_string(++g_monitors)) {
  if (zmq_socket_monitor(static_cast<void*>(s), address_.c_str(),
                         ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED) != 0)
    throw zmq::error_t();
  pair_ = std::make_unique<zmq::socket_t>(ctx, zmq::socket_type::pair);
  pair_->set(zmq::sockopt::linger, 0);
  pair_->connect(address_);
}

SocketMonitor::~SocketMonitor() {
  // Stop monitoring before the PAIR end goes away.
  zmq_socket_monitor(static_cast<void*>(watched_), nullptr, 0);
}

std::optional<PeerEvent> SocketMonitor::next() {
  for (;;) {
    zmq::message_t event;
    if (!pair_->recv(event, zmq::recv_flags::dontwait)) return std::nullopt;
    // Frame 1: u16 event, u32 value; frame 2: the endpoint.
    uint16_t id = 0;
    if (event.size() >= 2) std::memcpy(&id, event.data(), 2);
    while (pair_->get(zmq::sockopt::rcvmore)) {
      zmq::message_t rest;
      if (!pair_->recv(rest, zmq::recv_flags::dontwait)) break;
    }
    if (id == ZMQ_EVENT_DISCONNECTED) return PeerEvent::Down;
    if (id == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) return PeerEvent::Up;
  }
}

void enable_heartbeats(zmq::socket_t& s, int interval_ms, int timeout_ms) {
  s.set(zmq::sockopt::heartbeat_ivl, interval_ms);
  s.set(zmq::sockopt::heartbeat_timeout, timeout_ms);
  s.set(zmq::sockopt::heartbeat_ttl, timeout_ms);
}

}  // namespace moemesh
