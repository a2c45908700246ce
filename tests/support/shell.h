// Commands through /bin/sh for tests that drive other programs (docker, helm,
// node, promtool, curl).
#pragma once

#include <string>

namespace moemesh::testing {

// Its exit status (-1 when a signal ended it).
int sh(const std::string& cmd);

struct Shell {
  int code;         // as sh()
  std::string out;  // stdout and stderr together
};
Shell run(const std::string& cmd);

// Its stdout, trailing newlines dropped (a value to use: an id, a number).
std::string capture(const std::string& cmd);

}  // namespace moemesh::testing
