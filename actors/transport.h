// A transport bridge: the thread that owns a role's ZeroMQ sockets (ZeroMQ
// sockets belong to one thread). It binds one ROUTER socket for clients and
// connects DEALER sockets to peers; every message that arrives is handed to the
// owning actor, and any thread may queue messages to send.
#pragma once

#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "actors/mesh_actor.h"
#include "actors/role_metrics.h"
#include "actors/socket_monitor.h"

namespace moemesh {

// A peer's ROUTER identity frames kept as bytes: a request is answered many
// times (every step's tokens), and a subscriber is sent every new table.
using Identity = std::vector<std::string>;
Identity identity_of(const std::vector<zmq::message_t>& routing);
std::vector<zmq::message_t> routing_of(const Identity& id);

class Transport {
 public:
  explicit Transport(zmq::context_t& ctx);
  ~Transport();
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  // Binds the ROUTER socket (tcp port 0 picks a free port) and starts delivering
  // to `owner`; returns the endpoint actually bound. Empty endpoint: no ROUTER.
  std::string start(const std::string& endpoint, caf::actor owner);
  void stop();

  // Before start(): a handler that runs on the transport's own thread for each
  // message on the ROUTER socket before the owner sees it. Returning true, it
  // took the message and `reply` goes straight back to the sender. For work
  // that needs no actor state, where the hops through the actor's mailbox and
  // a compute thread cost more than the work (the expert host's dispatches).
  using Shortcut = std::function<bool(const Inbound& in, wire::Message& reply)>;
  void set_shortcut(Shortcut s) { shortcut_ = std::move(s); }

  // Thread-safe. Connects a DEALER socket to `endpoint`, a role of `kind`
  // (and `name`: an expert host) whose key CURVE checks (actors/curve.h);
  // returns its socket number. With `monitor`, the owner also hears the
  // connection drop and come back (an Inbound with `event` set and no message).
  int connect(const std::string& endpoint, bool monitor = false, std::string kind = "", std::string name = "");
  void disconnect(int socket);
  // Thread-safe. Sends on a peer's DEALER socket, or back to a client through its
  // ROUTER identity frames.
  void send(int socket, wire::Message m);
  void reply(std::vector<zmq::message_t> routing, wire::Message m);

  uint64_t bytes_sent() const { return bytes_sent_; }
  uint64_t bad_frames() const { return bad_frames_; }
  // Messages to a peer that took none (its queue full: down, or not reading), dropped.
  uint64_t dropped_sends() const { return dropped_; }
  // Thread-safe. From now on every dropped message also counts in the role's
  // moemesh_transport_dropped_sends_total; those dropped before are added now.
  void count_drops_in(RoleMetrics& m);

 private:
  struct Command {
    enum Kind { Send, Connect, Disconnect } kind = Send;
    int socket = 0;
    bool monitor = false;
    std::string endpoint, kind_of_peer, name;  // the peer role, for CURVE
    std::vector<zmq::message_t> routing;
    wire::Message message;
  };
  void push(Command c);
  void loop();
  void drain_commands();
  void deliver(int socket, zmq::socket_t& s);

  zmq::context_t& ctx_;
  caf::actor owner_;
  Shortcut shortcut_;
  std::string wake_endpoint_;
  std::unique_ptr<zmq::socket_t> router_;
  std::map<int, zmq::socket_t> peers_;
  std::map<int, std::unique_ptr<SocketMonitor>> monitors_;  // declared after peers_: destroyed first
  std::unique_ptr<zmq::socket_t> wake_rx_;  // loop side
  std::mutex mu_;                           // guards queue_, wake_tx_, next_socket_
  std::deque<Command> queue_;
  std::unique_ptr<zmq::socket_t> wake_tx_;
  int next_socket_ = 1;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> bytes_sent_{0}, bad_frames_{0};
  std::atomic<uint64_t> dropped_{0};  // messages to peers that took none
  std::mutex drops_mu_;               // guards drops_metric_ against the loop
  prometheus::Counter* drops_metric_ = nullptr;
  std::thread thread_;
};

// A DEALER socket to a role that one thread uses for blocking request/reply
// (the attention's compute thread asking the router or the drafter).
class RequestChannel {
 public:
  // `kind`: the role at `endpoint`, for CURVE (actors/curve.h).
  RequestChannel(zmq::context_t& ctx, const std::string& endpoint, std::string kind = "");
  // Sends `m` and returns the reply with the same request id, skipping late
  // replies to earlier requests; nullopt after `timeout`.
  std::optional<wire::Message> call(wire::Message m, std::chrono::milliseconds timeout);
  // The same in two halves.
  void send(wire::Message m);
  std::optional<wire::Message> wait(uint64_t request_id, std::chrono::milliseconds timeout);
  uint64_t next_id() { return ++last_id_; }
  uint64_t bytes_sent() const { return bytes_sent_; }
  uint64_t bytes_received() const { return bytes_received_; }
  // Drops the socket and connects afresh (after a timeout, so that stale replies
  // and queued requests do not pile up).
  void reconnect();

 private:
  zmq::context_t& ctx_;
  std::string endpoint_, kind_;
  std::unique_ptr<zmq::socket_t> sock_;
  uint64_t last_id_ = 0;
  uint64_t bytes_sent_ = 0, bytes_received_ = 0;
};

uint64_t payload_bytes(const wire::Message& m);

}  // namespace moemesh
