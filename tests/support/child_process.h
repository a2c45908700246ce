// A child process for integration tests: started with its stdout on a pipe,
// stopped with SIGTERM (then SIGKILL) when the object goes away.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

namespace moemesh::testing {

class ChildProcess {
 public:
  explicit ChildProcess(const std::vector<std::string>& argv);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // The next line of its stdout, or "" after `timeout` or at end of output.
  std::string read_line(std::chrono::milliseconds timeout = std::chrono::milliseconds(20000));
  pid_t pid() const { return pid_; }
  // Sends `sig` and waits for the exit; returns the wait status.
  int stop(int sig);

 private:
  pid_t pid_ = -1;
  int out_ = -1;
  std::string buffer_;
};

}  // namespace moemesh::testing
