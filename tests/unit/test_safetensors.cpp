// safetensors files: round trips, sharded checkpoints, and hostile or broken
// files refused with a clear error (never an out-of-bounds read).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "core/safetensors.h"
#include "tests/support/test_models.h"

using namespace moemesh;
using moemesh::testing::temp_dir;

namespace {

std::vector<uint8_t> bytes_of(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 7);
  return v;
}

// Writes a file with a raw header string and `data` bytes after it.
std::filesystem::path raw_file(const std::string& header, size_t data, const std::string& tag = "raw") {
  const auto p = temp_dir(tag) / "model.safetensors";
  std::ofstream out(p, std::ios::binary);
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>(n >> (8 * i)));
  out << header;
  for (size_t i = 0; i < data; ++i) out.put(0);
  return p;
}

std::string open_error(const std::filesystem::path& p) {
  try {
    SafetensorsFile::open(p);
  } catch (const CheckpointError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Safetensors, RoundTripsEveryDtype) {
  SafetensorsWriter w;
  w.add("a.f32", DType::F32, {3, 5}, bytes_of(60, 1));
  w.add("b.bf16", DType::BF16, {7}, bytes_of(14, 2));
  w.add("c.f16", DType::F16, {2, 2, 2}, bytes_of(16, 3));
  w.add("d.fp8", DType::F8_E4M3, {9, 3}, bytes_of(27, 4));
  w.add("e.i64", DType::I64, {2}, bytes_of(16, 5));
  w.add("f.scalar", DType::F32, {}, bytes_of(4, 6));
  w.set_metadata({{"format", "pt"}});
  const auto dir = temp_dir("rt");
  w.write(dir / "model.safetensors");
  auto f = SafetensorsFile::open(dir / "model.safetensors");
  EXPECT_EQ(f->tensors().size(), 6u);
  EXPECT_EQ(f->metadata().at("format"), "pt");
  for (auto [name, n, seed] : std::vector<std::tuple<std::string, size_t, uint8_t>>{
           {"a.f32", 60, 1}, {"b.bf16", 14, 2}, {"c.f16", 16, 3}, {"d.fp8", 27, 4}, {"e.i64", 16, 5}, {"f.scalar", 4, 6}}) {
    const TensorInfo* t = f->find(name);
    ASSERT_NE(t, nullptr) << name;
    TensorView v = f->view(*t);
    EXPECT_EQ(v.nbytes(), n);
    EXPECT_EQ(std::vector<uint8_t>(v.bytes(), v.bytes() + n), bytes_of(n, seed)) << name;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(v.data) % dtype_size(v.dtype), 0u) << name << " aligned";
  }
  EXPECT_EQ(f->find("nope"), nullptr);
  Checkpoint ck(dir);
  EXPECT_EQ(ck.get("d.fp8", DType::F8_E4M3, {9, 3}).numel(), 27);
  const std::string msg = [&] {
    try { ck.get("d.fp8", DType::F8_E4M3, {3, 9}); } catch (const CheckpointError& e) { return std::string(e.what()); }
    return std::string();
  }();
  EXPECT_NE(msg.find("expected shape [3, 9], found [9, 3]"), std::string::npos) << msg;
  EXPECT_THROW(ck.get("a.f32", DType::BF16, {3, 5}), CheckpointError);
  EXPECT_THROW(ck.get("missing"), CheckpointError);
}

TEST(Safetensors, ShardedCheckpointWithIndex) {
  const auto dir = temp_dir("shards");
  nlohmann::json map;
  for (int s = 0; s < 3; ++s) {
    SafetensorsWriter w;
    for (int t = 0; t < 4; ++t) {
      const std::string name = "layer" + std::to_string(s) + ".t" + std::to_string(t);
      w.add(name, DType::BF16, {4, 4}, bytes_of(32, static_cast<uint8_t>(s * 10 + t)));
      map[name] = "part-" + std::to_string(s) + ".safetensors";
    }
    w.write(dir / ("part-" + std::to_string(s) + ".safetensors"));
  }
  map["ghost"] = "part-0.safetensors";  // listed but absent from its shard
  std::ofstream(dir / "model.safetensors.index.json") << nlohmann::json{{"weight_map", map}}.dump();
  Checkpoint ck(dir);
  EXPECT_EQ(ck.names().size(), 13u);
  TensorView v = ck.get("layer2.t3");
  EXPECT_EQ(std::vector<uint8_t>(v.bytes(), v.bytes() + 32), bytes_of(32, 23));
  try {
    ck.get("ghost");
    FAIL();
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("missing from part-0.safetensors"), std::string::npos) << e.what();
  }
  // An index that points outside the directory is refused.
  const auto bad = temp_dir("badindex");
  std::ofstream(bad / "model.safetensors.index.json") << R"({"weight_map": {"x": "../../etc/passwd"}})";
  EXPECT_THROW(Checkpoint{bad}, CheckpointError);
  std::ofstream(bad / "model.safetensors.index.json") << R"({"weight_map": [1]})";
  EXPECT_THROW(Checkpoint{bad}, CheckpointError);
  EXPECT_THROW(Checkpoint{temp_dir("empty")}, CheckpointError);
}

TEST(Safetensors, HostileHeadersAreRefused) {
  struct Case { std::string header; size_t data; std::string expect; };
  const std::vector<Case> cases = {
      {"{not json", 0, "not valid JSON"},
      {"[1, 2]", 0, "not a JSON object"},
      {R"({"t": 5})", 0, "not an object"},
      {R"({"t": {"shape": [2], "data_offsets": [0, 8]}})", 8, "no dtype"},
      {R"({"t": {"dtype": "F32", "data_offsets": [0, 8]}})", 8, "no shape"},
      {R"({"t": {"dtype": "F32", "shape": [2]}})", 8, "data_offsets"},
      {R"({"t": {"dtype": "Q4", "shape": [2], "data_offsets": [0, 8]}})", 8, "unknown dtype"},
      {R"({"t": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", 8, "negative"},
      {R"({"t": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 8]}})", 8, "non-integer"},
      {R"({"t": {"dtype": "F32", "shape": [4294967296, 4294967296, 4294967296], "data_offsets": [0, 8]}})", 8, "overflow"},
      {R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 800]}})", 8, "past the data section"},
      {R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}})", 8, "ends before it begins"},
      {R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [-8, 0]}})", 8, "non-negative"},
      {R"({"t": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", 12, "do not hold shape"},
      {R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
       16, "overlap"},
      {R"({"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}, "b": {"dtype": "F32", "shape": [1], "data_offsets": [1, 5]}})",
       8, "misaligned"},
      {R"({"__metadata__": {"k": 1}})", 0, "__metadata__"},
  };
  for (const auto& c : cases) {
    // Pad the header to 8 bytes so alignment is only broken where a case means it.
    std::string h = c.header;
    h.append((8 - h.size() % 8) % 8, ' ');
    const std::string msg = open_error(raw_file(h, c.data));
    EXPECT_NE(msg.find(c.expect), std::string::npos) << c.header << " -> '" << msg << "'";
  }
}

TEST(Safetensors, TruncatedAndTinyFilesAreRefused) {
  const auto dir = temp_dir("trunc");
  SafetensorsWriter w;
  w.add("w", DType::F32, {64, 64}, bytes_of(64 * 64 * 4, 9));
  w.write(dir / "model.safetensors");
  const auto full = std::filesystem::file_size(dir / "model.safetensors");
  std::filesystem::resize_file(dir / "model.safetensors", full - 100);
  EXPECT_NE(open_error(dir / "model.safetensors").find("truncated"), std::string::npos);
  std::filesystem::resize_file(dir / "model.safetensors", 20);
  EXPECT_NE(open_error(dir / "model.safetensors").find("past the end"), std::string::npos);
  std::filesystem::resize_file(dir / "model.safetensors", 5);
  EXPECT_NE(open_error(dir / "model.safetensors").find("shorter than"), std::string::npos);
  // A header length claiming gigabytes.
  const auto p = dir / "huge.safetensors";
  {
    std::ofstream out(p, std::ios::binary);
    const uint64_t n = uint64_t{1} << 40;
    for (int i = 0; i < 8; ++i) out.put(static_cast<char>(n >> (8 * i)));
    out << "{}";
  }
  EXPECT_NE(open_error(p).find("implausibly large"), std::string::npos);
  EXPECT_NE(open_error(dir / "absent.safetensors").find("cannot open"), std::string::npos);
}

TEST(Safetensors, ResidentMemoryFollowsTouchedTensors) {
  if (resident_file_bytes() == 0) GTEST_SKIP() << "no RssFile in /proc/self/status";
  const auto dir = temp_dir("rss");
  SafetensorsWriter w;
  constexpr size_t kMiB8 = size_t{8} << 20;
  for (int t = 0; t < 8; ++t) w.add("t" + std::to_string(t), DType::U8, {static_cast<int64_t>(kMiB8)}, std::vector<uint8_t>(kMiB8, 1));
  w.write(dir / "model.safetensors");
  Checkpoint ck(dir);
  const size_t before = resident_file_bytes();
  uint64_t sum = 0;
  for (const char* n : {"t2", "t5"}) {
    TensorView v = ck.get(n);
    for (size_t i = 0; i < v.nbytes(); i += 64) sum += v.bytes()[i];
  }
  const double grew = static_cast<double>(resident_file_bytes() - before);
  EXPECT_EQ(sum, 2 * kMiB8 / 64);
  EXPECT_GE(grew, 14.0 * (1 << 20));
  EXPECT_LT(grew, 32.0 * (1 << 20));
}
