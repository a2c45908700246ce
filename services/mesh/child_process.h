// A child process with its stdout on a pipe (`moemesh up --processes`, the
// integration tests): stopped with SIGTERM (then SIGKILL) when the object goes
// away, and sent SIGTERM by the kernel if its parent dies first.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

namespace moemesh {

class ChildProcess {
 public:
  explicit ChildProcess(const std::vector<std::string>& argv);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // The next line of its stdout, or "" after `timeout` or at end of output.
  std::string read_line(std::chrono::milliseconds timeout = std::chrono::milliseconds(20000));
  pid_t pid() const { return pid_; }
  // Sends `sig` and waits for the exit (SIGKILL after `grace`); returns the wait status.
  int stop(int sig, std::chrono::milliseconds grace = std::chrono::seconds(10));
  // Sends `sig` without waiting (SIGSTOP, SIGCONT, SIGKILL …).
  void signal(int sig);
  bool running();

 private:
  pid_t pid_ = -1;
  int out_ = -1;
  std::string buffer_;
};

}  // namespace moemesh
