// safetensors files: round trips, sharded checkpoints, and hostile or broken
// files refused with a clear error (never an out-of-bounds read).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/vfs.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "core/safetensors.h"

using namespace moemesh;
namespace fs = std::filesystem;

namespace {

// A directory of its own for every call, removed when the test binary exits.
struct TempRoot {
  fs::path path;
  TempRoot() {
    path = fs::temp_directory_path() / ("moemesh-safetensors-" + std::to_string(::getpid()));
    fs::create_directories(path);
  }
  ~TempRoot() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

fs::path fresh_dir(const std::string& tag) {
  static TempRoot root;
  static std::mutex mu;
  static int counter = 0;
  std::lock_guard lock(mu);
  const auto p = root.path / (tag + "-" + std::to_string(counter++));
  fs::create_directories(p);
  return p;
}

std::vector<uint8_t> bytes_of(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 7);
  return v;
}

void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << p;
}

// The 8-byte little-endian length, the header as given, then `data` zero bytes.
std::string raw_bytes(const std::string& header, size_t data, uint64_t claimed_length) {
  std::string s;
  for (int i = 0; i < 8; ++i) s.push_back(static_cast<char>(static_cast<uint8_t>(claimed_length >> (8 * i))));
  s += header;
  s.append(data, '\0');
  return s;
}

fs::path raw_file(const std::string& header, size_t data, const std::string& tag = "raw") {
  const auto p = fresh_dir(tag) / "model.safetensors";
  write_bytes(p, raw_bytes(header, data, header.size()));
  return p;
}

std::string pad8(std::string h) {
  h.append((8 - h.size() % 8) % 8, ' ');
  return h;
}

std::string open_error(const fs::path& p) {
  try {
    SafetensorsFile::open(p);
  } catch (const CheckpointError& e) {
    return e.what();
  }
  return "(no error)";
}

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const CheckpointError& e) {
    return e.what();
  }
  return "(no error)";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// "s<shard>.t<tensor>"
std::string tensor_name(int shard, int tensor) {
  std::string n = "s";
  n += std::to_string(shard);
  n += ".t";
  n += std::to_string(tensor);
  return n;
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
  w.add("g.empty", DType::BF16, {0, 4}, {});
  w.set_metadata({{"format", "pt"}});
  EXPECT_EQ(w.bytes(), 60u + 14 + 16 + 27 + 16 + 4);
  EXPECT_EQ(w.names().size(), 7u);
  const auto dir = fresh_dir("rt");
  const auto path = dir / "model.safetensors";
  w.write(path);
  EXPECT_FALSE(fs::exists(path.string() + ".tmp"));

  // The header is padded with spaces so the data section starts on 8 bytes.
  {
    std::ifstream in(path, std::ios::binary);
    uint8_t len[8];
    in.read(reinterpret_cast<char*>(len), 8);
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | len[i];
    EXPECT_EQ(n % 8, 0u);
    std::string header(n, '\0');
    in.read(header.data(), static_cast<std::streamsize>(n));
    const auto j = nlohmann::json::parse(header);
    EXPECT_EQ(j["__metadata__"]["format"], "pt");
    EXPECT_EQ(j["a.f32"]["dtype"], "F32");
    EXPECT_EQ(j["d.fp8"]["shape"], nlohmann::json::array({9, 3}));
    // Largest elements first: the I64 tensor sits at the start of the data section.
    EXPECT_EQ(j["e.i64"]["data_offsets"], nlohmann::json::array({0, 16}));
    EXPECT_EQ(fs::file_size(path), 8 + n + w.bytes());
  }

  auto f = SafetensorsFile::open(path);
  EXPECT_EQ(f->path(), path);
  EXPECT_EQ(f->tensors().size(), 7u);
  EXPECT_EQ(f->metadata().at("format"), "pt");
  const std::vector<std::tuple<std::string, DType, Shape, size_t, uint8_t>> want = {
      {"a.f32", DType::F32, {3, 5}, 60, 1},     {"b.bf16", DType::BF16, {7}, 14, 2},
      {"c.f16", DType::F16, {2, 2, 2}, 16, 3},  {"d.fp8", DType::F8_E4M3, {9, 3}, 27, 4},
      {"e.i64", DType::I64, {2}, 16, 5},        {"f.scalar", DType::F32, {}, 4, 6},
      {"g.empty", DType::BF16, {0, 4}, 0, 0}};
  for (const auto& [name, dtype, shape, n, seed] : want) {
    const TensorInfo* t = f->find(name);
    ASSERT_NE(t, nullptr) << name;
    EXPECT_EQ(t->dtype, dtype) << name;
    EXPECT_EQ(t->shape, shape) << name;
    EXPECT_EQ(t->end - t->begin, n) << name;
    TensorView v = f->view(*t);
    EXPECT_EQ(v.nbytes(), n);
    EXPECT_EQ(std::vector<uint8_t>(v.bytes(), v.bytes() + n), bytes_of(n, seed)) << name;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(v.data) % dtype_size(v.dtype), 0u) << name << " aligned";
  }
  EXPECT_EQ(f->find("nope"), nullptr);

  Checkpoint ck(dir);
  EXPECT_EQ(ck.names().size(), 7u);
  EXPECT_TRUE(ck.has("c.f16"));
  EXPECT_FALSE(ck.has("nope"));
  EXPECT_EQ(ck.get("d.fp8", DType::F8_E4M3, {9, 3}).numel(), 27);
  EXPECT_EQ(ck.get_float("b.bf16", {7}).dtype, DType::BF16);
}

TEST(Safetensors, RewritingReplacesTheFile) {
  const auto dir = fresh_dir("rewrite");
  SafetensorsWriter a;
  a.add("x", DType::F32, {4}, bytes_of(16, 1));
  a.write(dir / "model.safetensors");
  SafetensorsWriter b;
  b.add("y", DType::U8, {3}, bytes_of(3, 2));
  b.write(dir / "model.safetensors");
  auto f = SafetensorsFile::open(dir / "model.safetensors");
  EXPECT_EQ(f->find("x"), nullptr);
  ASSERT_NE(f->find("y"), nullptr);
  EXPECT_TRUE(f->metadata().empty());
  // Writing into a directory that does not exist fails cleanly.
  EXPECT_THROW(b.write(dir / "no" / "such" / "model.safetensors"), CheckpointError);
}

TEST(Safetensors, WriterRefusesInconsistentInput) {
  SafetensorsWriter w;
  EXPECT_THROW(w.add("short", DType::F32, {4}, bytes_of(15, 0)), std::invalid_argument);
  EXPECT_THROW(w.add("neg", DType::U8, {-1}, {}), std::invalid_argument);
  EXPECT_TRUE(w.empty());
  w.add("t", DType::U8, {1}, bytes_of(1, 0));
  w.add("t", DType::U8, {1}, bytes_of(1, 0));
  EXPECT_THROW(w.write(fresh_dir("dup") / "model.safetensors"), std::invalid_argument);
}

TEST(Safetensors, ShardedCheckpointWithIndex) {
  const auto dir = fresh_dir("shards");
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
  map["lost"] = "part-9.safetensors";   // its shard does not exist
  std::ofstream(dir / "model.safetensors.index.json")
      << nlohmann::json{{"metadata", {{"total_size", 384}}}, {"weight_map", map}}.dump();

  Checkpoint ck(dir);
  EXPECT_EQ(ck.dir(), dir);
  EXPECT_EQ(ck.names().size(), 14u);
  for (int s = 0; s < 3; ++s)
    for (int t = 0; t < 4; ++t) {
      TensorView v = ck.get("layer" + std::to_string(s) + ".t" + std::to_string(t), DType::BF16, {4, 4});
      EXPECT_EQ(std::vector<uint8_t>(v.bytes(), v.bytes() + 32), bytes_of(32, static_cast<uint8_t>(s * 10 + t)));
    }
  // Views stay valid while the checkpoint lives.
  TensorView first = ck.get("layer0.t0");
  ck.get("layer2.t3");
  EXPECT_EQ(std::vector<uint8_t>(first.bytes(), first.bytes() + 32), bytes_of(32, 0));

  std::string msg = error_of([&] { ck.get("ghost"); });
  EXPECT_TRUE(contains(msg, "'ghost'") && contains(msg, "missing from part-0.safetensors")) << msg;
  msg = error_of([&] { ck.get("lost"); });
  EXPECT_TRUE(contains(msg, "'lost'") && contains(msg, "part-9.safetensors") && contains(msg, "cannot open")) << msg;
  msg = error_of([&] { ck.get("layer7.t0"); });
  EXPECT_EQ(msg, "missing tensor 'layer7.t0' in " + dir.string());
  EXPECT_FALSE(ck.has("layer7.t0"));
}

TEST(Safetensors, ShardsOpenOnceFromManyThreads) {
  const auto dir = fresh_dir("threads");
  nlohmann::json map;
  for (int s = 0; s < 3; ++s) {
    SafetensorsWriter w;
    for (int t = 0; t < 8; ++t) {
      const std::string name = tensor_name(s, t);
      w.add(name, DType::F32, {16}, bytes_of(64, static_cast<uint8_t>(s * 8 + t)));
      map[name] = "shard-" + std::to_string(s) + ".safetensors";
    }
    w.write(dir / ("shard-" + std::to_string(s) + ".safetensors"));
  }
  std::ofstream(dir / "model.safetensors.index.json") << nlohmann::json{{"weight_map", map}}.dump();
  Checkpoint ck(dir);
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int k = 0; k < 8; ++k)
    threads.emplace_back([&, k] {
      for (int i = 0; i < 200; ++i) {
        const int s = (k + i) % 3, t = (k * 7 + i) % 8;
        TensorView v = ck.get(tensor_name(s, t));
        if (std::vector<uint8_t>(v.bytes(), v.bytes() + 64) != bytes_of(64, static_cast<uint8_t>(s * 8 + t))) ++bad;
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
}

TEST(Safetensors, IndexIsValidated) {
  struct Case { std::string index; std::string expect; };
  const std::vector<Case> cases = {
      {R"({"weight_map": {"x": "../../etc/passwd"}})", "not a plain file name"},
      {R"({"weight_map": {"x": "/etc/passwd"}})", "not a plain file name"},
      {R"({"weight_map": {"x": "sub/model.safetensors"}})", "not a plain file name"},
      {R"({"weight_map": {"x": ".."}})", "not a plain file name"},
      {R"({"weight_map": {"x": ""}})", "not a plain file name"},
      {R"({"weight_map": {"x": 3}})", "weight_map['x'] is not a file name"},
      {R"({"weight_map": [1]})", "weight_map"},
      {R"({"metadata": {}})", "weight_map"},
      {R"([1, 2])", "not a JSON object"},
      {R"({"weight_map": )", "invalid JSON"},
  };
  for (const auto& c : cases) {
    const auto dir = fresh_dir("index");
    std::ofstream(dir / "model.safetensors.index.json") << c.index;
    const std::string msg = error_of([&] { Checkpoint ck(dir); });
    EXPECT_TRUE(contains(msg, c.expect) && contains(msg, "model.safetensors.index.json")) << c.index << " -> " << msg;
  }
  const auto empty = fresh_dir("empty");
  const std::string msg = error_of([&] { Checkpoint ck(empty); });
  EXPECT_TRUE(contains(msg, empty.string()) && contains(msg, "neither")) << msg;
  // A single file that is broken is reported when the checkpoint opens.
  const auto broken = fresh_dir("broken");
  write_bytes(broken / "model.safetensors", "abc");
  EXPECT_TRUE(contains(error_of([&] { Checkpoint ck(broken); }), "shorter than"));
}

TEST(Safetensors, WrongShapeOrDtypeIsNamed) {
  const auto dir = fresh_dir("shape");
  SafetensorsWriter w;
  const std::string q = "model.layers.0.self_attn.q_a_proj.weight";
  w.add(q, DType::F8_E4M3, {24, 16}, bytes_of(24 * 16, 1));
  w.add("ids", DType::I64, {3}, bytes_of(24, 2));
  w.write(dir / "model.safetensors");
  Checkpoint ck(dir);
  EXPECT_EQ(ck.get(q, DType::F8_E4M3, {24, 16}).numel(), 24 * 16);
  EXPECT_EQ(error_of([&] { ck.get(q, DType::F8_E4M3, {16, 24}); }),
            "tensor '" + q + "': expected shape [16, 24], found [24, 16]");
  EXPECT_EQ(error_of([&] { ck.get(q, DType::F8_E4M3, {24, 16, 1}); }),
            "tensor '" + q + "': expected shape [24, 16, 1], found [24, 16]");
  EXPECT_EQ(error_of([&] { ck.get(q, DType::BF16, {24, 16}); }),
            "tensor '" + q + "': expected dtype BF16, found F8_E4M3");
  EXPECT_EQ(error_of([&] { ck.get_float(q, {24}); }), "tensor '" + q + "': expected shape [24], found [24, 16]");
  EXPECT_EQ(ck.get_float(q, {24, 16}).dtype, DType::F8_E4M3);
  EXPECT_TRUE(contains(error_of([&] { ck.get_float("ids", {3}); }), "not a float type"));
  EXPECT_EQ(error_of([&] { ck.get("absent", DType::F32, {1}); }), "missing tensor 'absent' in " + dir.string());
}

TEST(Safetensors, HostileHeadersAreRefused) {
  struct Case { std::string header; size_t data; std::string expect; std::string names; };
  const std::string big = "18446744073709551615";  // 2^64 - 1
  const std::vector<Case> cases = {
      {"{not json", 0, "not valid JSON", ""},
      {"", 0, "not valid JSON", ""},
      {"[1, 2]", 0, "not a JSON object", ""},
      {R"("text")", 0, "not a JSON object", ""},
      {R"({"t": 5})", 0, "not an object", "'t'"},
      {R"({"t": {"shape": [2], "data_offsets": [0, 8]}})", 8, "no dtype", "'t'"},
      {R"({"t": {"dtype": 7, "shape": [2], "data_offsets": [0, 8]}})", 8, "no dtype string", "'t'"},
      {R"({"t": {"dtype": "F32", "data_offsets": [0, 8]}})", 8, "no shape", "'t'"},
      {R"({"t": {"dtype": "F32", "shape": 2, "data_offsets": [0, 8]}})", 8, "no shape array", "'t'"},
      {R"({"t": {"dtype": "F32", "shape": [2]}})", 8, "data_offsets", "'t'"},
      {R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0]}})", 8, "data_offsets", "'t'"},
      {R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8, 16]}})", 16, "data_offsets", "'t'"},
      {R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": "0,8"}})", 8, "data_offsets", "'t'"},
      {R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0.0, 8]}})", 8, "non-negative integer", "'t'"},
      {R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": ["0", 8]}})", 8, "non-negative integer", "'t'"},
      {R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [-8, 0]}})", 8, "non-negative integer", "'t'"},
      {R"({"t": {"dtype": "Q4", "shape": [2], "data_offsets": [0, 8]}})", 8, "unknown dtype 'Q4'", "'t'"},
      {R"({"t": {"dtype": "f32", "shape": [2], "data_offsets": [0, 8]}})", 8, "unknown dtype", "'t'"},
      {R"({"t": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", 8, "negative", "'t'"},
      {R"({"t": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 8]}})", 8, "non-integer", "'t'"},
      {R"({"t": {"dtype": "F32", "shape": ["2"], "data_offsets": [0, 8]}})", 8, "non-integer", "'t'"},
      {R"({"t": {"dtype": "F32", "shape": [[2]], "data_offsets": [0, 8]}})", 8, "non-integer", "'t'"},
      {R"({"t": {"dtype": "F32", "shape": [4294967296, 4294967296, 4294967296], "data_offsets": [0, 8]}})", 8,
       "overflow", "'t'"},
      {R"({"t": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 8]}})", 8, "overflow", "'t'"},
      {R"({"t": {"dtype": "F32", "shape": [)" + big + R"(], "data_offsets": [0, 8]}})", 8, "overflow", "'t'"},
      // numel 2^62 fits, the byte count 2^64 does not.
      {R"({"t": {"dtype": "F32", "shape": [4611686018427387904], "data_offsets": [0, 8]}})", 8, "do not hold", "'t'"},
      {R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 800]}})", 8, "past the data section", "'t'"},
      {R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, )" + big + "]}}", 8, "past the data section", "'t'"},
      {R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}})", 8, "ends before it begins", "'t'"},
      {R"({"t": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", 12, "do not hold shape [3]", "'t'"},
      {R"({"t": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [0, 16]}})", 16, "do not hold shape", "'t'"},
      {R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
       16, "overlap", "'a' and 'b'"},
      {R"({"a": {"dtype": "U8", "shape": [16], "data_offsets": [0, 16]}, "b": {"dtype": "U8", "shape": [4], "data_offsets": [4, 8]}})",
       16, "overlap", "'a' and 'b'"},
      // An empty tensor between two overlapping ones does not hide the overlap.
      {R"({"a": {"dtype": "U8", "shape": [8], "data_offsets": [0, 8]}, "e": {"dtype": "U8", "shape": [0], "data_offsets": [4, 4]}, "z": {"dtype": "U8", "shape": [4], "data_offsets": [4, 8]}})",
       16, "overlap", "'a' and 'z'"},
      {R"({"a": {"dtype": "U8", "shape": [12], "data_offsets": [0, 12]}, "b": {"dtype": "U8", "shape": [2], "data_offsets": [2, 4]}, "c": {"dtype": "U8", "shape": [2], "data_offsets": [8, 10]}})",
       16, "overlap", "'a' and"},
      {R"({"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}, "b": {"dtype": "F32", "shape": [1], "data_offsets": [1, 5]}})",
       8, "misaligned", "'b'"},
      {R"({"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}, "b": {"dtype": "I64", "shape": [1], "data_offsets": [4, 12]}})",
       16, "misaligned", "'b'"},
      {R"({"__metadata__": {"k": 1}})", 0, "__metadata__ value 'k' is not a string", ""},
      {R"({"__metadata__": ["k"]})", 0, "__metadata__ is not an object", ""},
      {R"({"__metadata__": "k"})", 0, "__metadata__ is not an object", ""},
  };
  for (const auto& c : cases) {
    // Padded to 8 bytes so alignment is only broken where a case means it.
    const auto path = raw_file(pad8(c.header), c.data);
    const std::string msg = open_error(path);
    EXPECT_TRUE(contains(msg, c.expect)) << c.header << " -> '" << msg << "'";
    EXPECT_TRUE(contains(msg, path.string())) << "names the file: " << msg;
    if (!c.names.empty()) {
      EXPECT_TRUE(contains(msg, c.names)) << "names the tensor: " << msg;
    }
  }
  // Well-formed neighbours of the cases above are accepted.
  for (const char* ok : {
           R"({})",
           R"({"__metadata__": {}})",
           R"({"a": {"dtype": "U8", "shape": [8], "data_offsets": [0, 8]}, "b": {"dtype": "U8", "shape": [8], "data_offsets": [8, 16]}})",
           R"({"a": {"dtype": "U8", "shape": [0], "data_offsets": [4, 4]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})",
           R"({"a": {"dtype": "F32", "shape": [0, 4294967296, 4294967296, 4294967296], "data_offsets": [8, 8]}})",
           R"({"a": {"dtype": "U8", "shape": [1], "data_offsets": [3, 4]}, "b": {"dtype": "F16", "shape": [2], "data_offsets": [4, 8]}})"}) {
    EXPECT_EQ(open_error(raw_file(pad8(ok), 16)), "(no error)") << ok;
  }
  // A header that is not padded to 8 bytes would leave an F32 tensor misaligned in memory.
  const auto unpadded = raw_file(R"({"t": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}} )", 4);
  EXPECT_TRUE(contains(open_error(unpadded), "misaligned")) << open_error(unpadded);
}

TEST(Safetensors, TruncatedAndTinyFilesAreRefused) {
  const auto dir = fresh_dir("trunc");
  const auto path = dir / "model.safetensors";
  SafetensorsWriter w;
  w.add("w", DType::F32, {64, 64}, bytes_of(64 * 64 * 4, 9));
  w.write(path);
  const auto full = fs::file_size(path);
  EXPECT_EQ(open_error(path), "(no error)");
  fs::resize_file(path, full - 1);
  std::string msg = open_error(path);
  EXPECT_TRUE(contains(msg, "truncated") && contains(msg, "'w'") && contains(msg, path.string())) << msg;
  fs::resize_file(path, full - 100);
  EXPECT_TRUE(contains(open_error(path), "past the data section"));
  fs::resize_file(path, 20);
  msg = open_error(path);
  EXPECT_TRUE(contains(msg, "runs past the end of the file")) << msg;
  for (size_t n : {7, 1, 0}) {
    fs::resize_file(path, n);
    msg = open_error(path);
    EXPECT_TRUE(contains(msg, "shorter than the 8-byte header length") && contains(msg, path.string())) << msg;
  }
  // Header lengths past the file, or absurd, in a file that is otherwise fine.
  const auto p = dir / "claims.safetensors";
  write_bytes(p, raw_bytes("{}      ", 0, 9));
  EXPECT_TRUE(contains(open_error(p), "runs past the end"));
  write_bytes(p, raw_bytes("{}", 0, uint64_t{1} << 40));
  EXPECT_TRUE(contains(open_error(p), "implausibly large"));
  write_bytes(p, raw_bytes("{}", 0, ~uint64_t{0}));
  EXPECT_TRUE(contains(open_error(p), "implausibly large"));
  write_bytes(p, raw_bytes("{}", 0, (uint64_t{100} << 20) + 1));
  EXPECT_TRUE(contains(open_error(p), "implausibly large"));
  write_bytes(p, raw_bytes("{}", 0, 0));
  EXPECT_TRUE(contains(open_error(p), "not valid JSON"));
  EXPECT_TRUE(contains(open_error(dir / "absent.safetensors"), "cannot open"));
  EXPECT_TRUE(contains(open_error(dir), "not a regular file"));
}

TEST(Safetensors, ResidentMemoryFollowsTouchedTensors) {
  if (resident_file_bytes() == 0) GTEST_SKIP() << "no RssFile in /proc/self/status";
  // Pages of files on tmpfs count as shared memory, not RssFile: use a disk-backed directory.
  auto on_tmpfs = [](const fs::path& p) {
    struct statfs s {};
    return ::statfs(p.c_str(), &s) != 0 || s.f_type == 0x01021994 /* TMPFS_MAGIC */ || s.f_type == 0x858458f6 /* RAMFS */;
  };
  fs::path dir = fresh_dir("rss");
  std::error_code ec;
  if (on_tmpfs(dir)) {
    dir = fs::current_path(ec) / ("moemesh-rss-" + std::to_string(::getpid()));
    if (ec || !fs::create_directories(dir, ec) || on_tmpfs(dir)) GTEST_SKIP() << "no disk-backed directory";
  }
  struct Cleanup {
    fs::path p;
    bool own;
    ~Cleanup() {
      std::error_code e;
      if (own) fs::remove_all(p, e);
    }
  } cleanup{dir, !contains(dir.string(), "moemesh-safetensors-")};

  constexpr size_t kMiB = size_t{1} << 20;
  constexpr size_t kTensor = 8 * kMiB;
  {
    SafetensorsWriter w;
    for (int t = 0; t < 8; ++t) w.add("t" + std::to_string(t), DType::U8, {static_cast<int64_t>(kTensor)}, bytes_of(kTensor, static_cast<uint8_t>(t)));
    w.write(dir / "model.safetensors");
  }
  Checkpoint ck(dir);
  ASSERT_EQ(ck.names().size(), 8u);
  const size_t before = resident_file_bytes();
  uint64_t sum = 0;
  for (const char* n : {"t2", "t5"}) {
    TensorView v = ck.get(n);
    const volatile uint8_t* b = v.bytes();
    for (size_t i = 0; i < v.nbytes(); ++i) sum += b[i];
  }
  const size_t after = resident_file_bytes();
  uint64_t want = 0;
  for (uint8_t seed : {2, 5}) {
    const auto v = bytes_of(kTensor, seed);
    for (uint8_t x : v) want += x;
  }
  EXPECT_EQ(sum, want);
  const double grew = static_cast<double>(after) - static_cast<double>(before);
  EXPECT_GE(grew, 14.0 * kMiB) << "before " << before << " after " << after;
  EXPECT_LT(grew, 32.0 * kMiB) << "before " << before << " after " << after;
}
