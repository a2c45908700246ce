// Whether a DEALER socket's peer is there: ZeroMQ's socket monitor reports a
// connection that dropped (a process killed closes its TCP connection at once;
// with ZMTP heartbeats on, a peer that went silent is dropped after their
// timeout too) and one that completed its handshake (the peer is back).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <zmq.hpp>

namespace moemesh {

enum class PeerEvent { Up, Down };

class SocketMonitor {
 public:
  // Watches `s` (which must outlive the monitor) through an inproc PAIR socket.
  SocketMonitor(zmq::context_t& ctx, zmq::socket_t& s);
  ~SocketMonitor();
  SocketMonitor(const SocketMonitor&) = delete;
  SocketMonitor& operator=(const SocketMonitor&) = delete;

  // The socket to poll for events.
  zmq::socket_t& events() { return *pair_; }
  // The next event that arrived, without waiting; nullopt when none is left.
  std::optional<PeerEvent> next();

 private:
  zmq::socket_t& watched_;
  std::string address_;
  std::unique_ptr<zmq::socket_t> pair_;
};

// ZMTP heartbeats on a DEALER socket: a ping every `interval`; a peer that does
// not answer within `timeout` is dropped (and reconnected when it answers again).
void enable_heartbeats(zmq::socket_t& s, int interval_ms, int timeout_ms);

}  // namespace moemesh
