#include "tests/support/delay_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <stdexcept>
#include <string>

namespace moemesh::testing {
namespace {

sockaddr_in loopback(uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

uint16_t bound_port(int fd) {
  sockaddr_in a{};
  socklen_t n = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &n);
  return ntohs(a.sin_port);
}

}  // namespace

uint16_t free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a = loopback(0);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) throw std::runtime_error("free_port: bind failed");
  const uint16_t p = bound_port(fd);
  close(fd);
  return p;
}

DelayProxy::DelayProxy(uint16_t target_port, std::chrono::milliseconds delay) : target_(target_port), delay_ms_(delay.count()) {
  listener_ = socket(AF_INET, SOCK_STREAM, 0);
  const int one = 1;
  setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a = loopback(0);
  if (bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(listener_, 16) != 0)
    throw std::runtime_error("DelayProxy: cannot listen on 127.0.0.1");
  port_ = bound_port(listener_);
  acceptor_ = std::thread([this] { accept_loop(); });
}

DelayProxy::~DelayProxy() {
  stop_ = true;
  acceptor_.join();  // no more pumps start after this
  for (int fd : fds_) shutdown(fd, SHUT_RDWR);
  for (auto& t : pumps_) t.join();
  close(listener_);
  for (int fd : fds_) close(fd);
}

void DelayProxy::accept_loop() {
  while (!stop_) {
    pollfd p{listener_, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    const int client = accept(listener_, nullptr, nullptr);
    if (client < 0) continue;
    const int server = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a = loopback(target_);
    if (connect(server, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      close(client);
      close(server);
      continue;
    }
    const int one = 1;
    setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(server, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::lock_guard<std::mutex> lock(mu_);
    fds_.push_back(client);
    fds_.push_back(server);
    pumps_.emplace_back([this, client, server] { pump(client, server); });
    pumps_.emplace_back([this, server, client] { pump(server, client); });
  }
}

// Reads `from` as bytes arrive and writes each chunk to `to` once it is `delay` old.
void DelayProxy::pump(int from, int to) {
  using clock = std::chrono::steady_clock;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::pair<clock::time_point, std::string>> q;
  bool eof = false;
  std::thread writer([&] {
    std::unique_lock<std::mutex> lock(mu);
    for (;;) {
      cv.wait(lock, [&] { return eof || !q.empty(); });
      if (q.empty()) break;
      auto [due, bytes] = std::move(q.front());
      q.pop_front();
      lock.unlock();
      std::this_thread::sleep_until(due);
      for (size_t at = 0; at < bytes.size();) {
        const ssize_t n = send(to, bytes.data() + at, bytes.size() - at, MSG_NOSIGNAL);
        if (n <= 0) break;
        at += static_cast<size_t>(n);
      }
      lock.lock();
    }
    shutdown(to, SHUT_WR);
  });
  char buf[65536];
  while (!stop_) {
    pollfd p{from, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    const ssize_t n = recv(from, buf, sizeof buf, 0);
    if (n <= 0) break;
    if (swallow_) continue;
    std::lock_guard<std::mutex> lock(mu);
    q.emplace_back(clock::now() + std::chrono::milliseconds(delay_ms_.load()), std::string(buf, static_cast<size_t>(n)));
    cv.notify_one();
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    eof = true;
    if (stop_) q.clear();
    cv.notify_one();
  }
  writer.join();
}

}  // namespace moemesh::testing
