// A TCP relay on 127.0.0.1 that delays every byte by a fixed time in each
// direction: a slow link between two roles, where `tc netem` is not available
// (it needs the sch_netem kernel module and a network namespace). Told to
// swallow, it keeps every connection open and forwards nothing: a link that
// silently drops (no FIN, no RST), as when a machine or a switch vanishes.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace moemesh::testing {

class DelayProxy {
 public:
  // Relays connections to 127.0.0.1:`target_port`, each direction `delay` late.
  DelayProxy(uint16_t target_port, std::chrono::milliseconds delay);
  ~DelayProxy();
  DelayProxy(const DelayProxy&) = delete;
  DelayProxy& operator=(const DelayProxy&) = delete;

  uint16_t port() const { return port_; }
  void set_delay(std::chrono::milliseconds d) { delay_ms_ = d.count(); }
  // While on, bytes in either direction are read and dropped.
  void set_swallow(bool on) { swallow_ = on; }

 private:
  void accept_loop();
  void pump(int from, int to);

  uint16_t target_, port_ = 0;
  int listener_ = -1;
  std::atomic<int64_t> delay_ms_;
  std::atomic<bool> stop_{false}, swallow_{false};
  std::mutex mu_;
  std::vector<int> fds_;
  std::vector<std::thread> pumps_;
  std::thread acceptor_;
};

// A port that was free a moment ago (for a role that must bind a known port).
uint16_t free_port();

}  // namespace moemesh::testing
