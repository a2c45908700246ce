#include "tests/support/shell.h"

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>

namespace moemesh::testing {

namespace {
int status(int st) { return WIFEXITED(st) ? WEXITSTATUS(st) : -1; }

Shell read_all(const std::string& cmd) {
  Shell r{-1, ""};
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf{};
  size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  r.code = status(::pclose(p));
  return r;
}
}  // namespace

int sh(const std::string& cmd) { return status(std::system(cmd.c_str())); }

Shell run(const std::string& cmd) { return read_all(cmd + " 2>&1"); }

std::string capture(const std::string& cmd) {
  std::string out = read_all(cmd).out;
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

}  // namespace moemesh::testing
