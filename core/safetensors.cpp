#include "core/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <limits>

#include <nlohmann/json.hpp>

namespace moemesh {
namespace {

constexpr uint64_t kMaxHeader = uint64_t{100} << 20;

[[noreturn]] void fail(const std::filesystem::path& p, const std::string& why) {
  throw CheckpointError(p.string() + ": " + why);
}

uint64_t checked_numel(const Shape& s, const std::filesystem::path& p, const std::string& name) {
  uint64_t n = 1;
  for (int64_t d : s) {
    if (d < 0) fail(p, "tensor '" + name + "' has a negative dimension");
    if (d != 0 && n > std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(d))
      fail(p, "tensor '" + name + "' has a shape that overflows");
    n *= static_cast<uint64_t>(d);
  }
  return n;
}

}  // namespace

std::unique_ptr<SafetensorsFile> SafetensorsFile::open(const std::filesystem::path& path) {
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, "cannot open");
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    fail(path, "cannot stat");
  }
  f->size_ = static_cast<size_t>(st.st_size);
  if (f->size_ < 8) {
    ::close(fd);
    fail(path, "file is " + std::to_string(f->size_) + " bytes, shorter than the 8-byte header length");
  }
  void* m = ::mmap(nullptr, f->size_, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (m == MAP_FAILED) fail(path, "cannot memory-map");
  f->map_ = m;
  const auto* base = static_cast<const uint8_t*>(m);

  uint64_t hlen = 0;
  for (int i = 7; i >= 0; --i) hlen = (hlen << 8) | base[i];
  if (hlen > kMaxHeader) fail(path, "header length " + std::to_string(hlen) + " is implausibly large");
  if (hlen > f->size_ - 8) fail(path, "header length " + std::to_string(hlen) + " runs past the end of the file (truncated?)");
  const uint64_t data_size = f->size_ - 8 - hlen;
  f->data_section_ = base + 8 + hlen;

  nlohmann::json h;
  try {
    h = nlohmann::json::parse(base + 8, base + 8 + hlen);
  } catch (const nlohmann::json::exception& e) {
    fail(path, std::string("header is not valid JSON: ") + e.what());
  }
  if (!h.is_object()) fail(path, "header is not a JSON object");

  for (auto it = h.begin(); it != h.end(); ++it) {
    const std::string& name = it.key();
    const auto& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) fail(path, "__metadata__ is not an object");
      for (auto m2 = v.begin(); m2 != v.end(); ++m2) {
        if (!m2.value().is_string()) fail(path, "__metadata__ value '" + m2.key() + "' is not a string");
        f->metadata_[m2.key()] = m2.value().get<std::string>();
      }
      continue;
    }
    if (!v.is_object()) fail(path, "entry '" + name + "' is not an object");
    if (!v.contains("dtype") || !v["dtype"].is_string()) fail(path, "tensor '" + name + "' has no dtype string");
    if (!v.contains("shape") || !v["shape"].is_array()) fail(path, "tensor '" + name + "' has no shape array");
    if (!v.contains("data_offsets") || !v["data_offsets"].is_array() || v["data_offsets"].size() != 2)
      fail(path, "tensor '" + name + "' needs data_offsets [begin, end]");
    TensorInfo t;
    t.name = name;
    const auto dt = dtype_from_name(v["dtype"].get<std::string>());
    if (!dt) fail(path, "tensor '" + name + "' has unknown dtype " + v["dtype"].dump());
    t.dtype = *dt;
    for (const auto& d : v["shape"]) {
      if (!d.is_number_integer()) fail(path, "tensor '" + name + "' has a non-integer dimension " + d.dump());
      t.shape.push_back(d.get<int64_t>());
    }
    for (const auto& o : v["data_offsets"])
      if (!o.is_number_unsigned()) fail(path, "tensor '" + name + "' has a data offset that is not a non-negative integer");
    t.begin = v["data_offsets"][0].get<uint64_t>();
    t.end = v["data_offsets"][1].get<uint64_t>();
    if (t.begin > t.end) fail(path, "tensor '" + name + "' ends before it begins");
    if (t.end > data_size)
      fail(path, "tensor '" + name + "' ends at byte " + std::to_string(t.end) + " past the data section (" +
                     std::to_string(data_size) + " bytes; truncated?)");
    const uint64_t numel = checked_numel(t.shape, path, name);
    const uint64_t esize = dtype_size(t.dtype);
    if (numel > std::numeric_limits<uint64_t>::max() / esize || numel * esize != t.end - t.begin)
      fail(path, "tensor '" + name + "': " + std::to_string(t.end - t.begin) + " bytes do not hold shape " +
                     shape_str(t.shape) + " of " + std::string(dtype_name(t.dtype)));
    if (((8 + hlen + t.begin) % esize) != 0)
      fail(path, "tensor '" + name + "' is misaligned for " + std::string(dtype_name(t.dtype)));
    f->tensors_.push_back(std::move(t));
  }
  std::vector<const TensorInfo*> order;
  for (const auto& t : f->tensors_) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < order.size(); ++i)
    if (order[i]->begin < order[i - 1]->end && order[i]->begin != order[i]->end && order[i - 1]->begin != order[i - 1]->end)
      fail(path, "tensors '" + order[i - 1]->name + "' and '" + order[i]->name + "' overlap");
  for (size_t i = 0; i < f->tensors_.size(); ++i) f->index_[f->tensors_[i].name] = i;
  return f;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, size_);
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

TensorView SafetensorsFile::view(const TensorInfo& info) const {
  return TensorView{info.dtype, info.shape, data_section_ + info.begin};
}

size_t resident_file_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("RssFile:", 0) == 0) return static_cast<size_t>(std::stoull(line.substr(8))) * 1024;
  }
  return 0;
}

}  // namespace moemesh
