#include "tests/support/test_models.h"

#include <cmath>
#include <map>
#include <mutex>
#include <random>

#include <unistd.h>

#include "model/checkpoint_maker.h"

namespace moemesh::testing {
namespace {
struct TempRoot {
  std::filesystem::path path;
  TempRoot() {
    path = std::filesystem::temp_directory_path() / ("moemesh-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(path);
  }
  ~TempRoot() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};
TempRoot& root() {
  static TempRoot r;
  return r;
}
}  // namespace

std::filesystem::path temp_dir(const std::string& tag) {
  static std::mutex mu;
  static int counter = 0;
  std::lock_guard lock(mu);
  auto p = root().path / (tag + "-" + std::to_string(counter++));
  std::filesystem::create_directories(p);
  return p;
}

const std::filesystem::path& test_model(const std::string& preset, bool fp8, uint64_t seed) {
  static std::mutex mu;
  static std::map<std::string, std::filesystem::path> made;
  std::lock_guard lock(mu);
  const std::string key = preset + (fp8 ? "-fp8-" : "-bf16-") + std::to_string(seed);
  auto it = made.find(key);
  if (it != made.end()) return it->second;
  MakeModelOptions o;
  o.preset = preset;
  o.fp8 = fp8;
  o.seed = seed;
  o.shard_bytes = 2 << 20;  // several shards, so the index path is always exercised
  auto dir = root().path / key;
  make_model(o, dir);
  return made.emplace(key, dir).first->second;
}

std::filesystem::path trained_model(bool fp8) {
  return std::filesystem::path(MOEMESH_SOURCE_DIR) / "assets" / "moemesh-kjv" / (fp8 ? "fp8" : "bf16");
}

std::vector<int32_t> random_tokens(int64_t n, int64_t vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = static_cast<int32_t>(rng() % static_cast<uint64_t>(vocab));
  return t;
}

Diff compare(const std::vector<float>& a, const std::vector<float>& b) {
  Diff d;
  if (a.size() != b.size()) {
    d.max_abs = INFINITY;
    return d;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    d.max_abs = std::max(d.max_abs, static_cast<double>(std::fabs(a[i] - b[i])));
    d.max_ref = std::max(d.max_ref, static_cast<double>(std::fabs(a[i])));
  }
  return d;
}

}  // namespace moemesh::testing
