#include "core/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>

#include <nlohmann/json.hpp>

namespace moemesh {
namespace {

constexpr uint64_t kMaxHeader = uint64_t{100} << 20;

[[noreturn]] void fail(const std::filesystem::path& p, const std::string& why) {
  throw CheckpointError(p.string() + ": " + why);
}

std::string quoted(const std::string& name) { return "tensor '" + name + "'"; }

// Number of elements, refusing negative dimensions and products past 2^63.
uint64_t checked_numel(const Shape& s, const std::filesystem::path& p, const std::string& name) {
  constexpr uint64_t kLimit = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  uint64_t n = 1;
  for (int64_t d : s) {
    if (d < 0) fail(p, quoted(name) + " has a negative dimension in shape " + shape_str(s));
    const auto ud = static_cast<uint64_t>(d);
    if (ud != 0 && n > kLimit / ud) fail(p, quoted(name) + " has a shape that overflows: " + shape_str(s));
    n *= ud;
  }
  return n;
}

// Closes the descriptor on every path out of open().
struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

std::unique_ptr<SafetensorsFile> SafetensorsFile::open(const std::filesystem::path& path) {
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;
  Fd fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (fd.fd < 0) fail(path, std::string("cannot open: ") + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd.fd, &st) != 0) fail(path, std::string("cannot stat: ") + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) fail(path, "not a regular file");
  const auto size = static_cast<uint64_t>(st.st_size);
  if (size < 8)
    fail(path, "file is " + std::to_string(size) + " bytes, shorter than the 8-byte header length");
  void* m = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd.fd, 0);
  if (m == MAP_FAILED) fail(path, std::string("cannot memory-map: ") + std::strerror(errno));
  f->map_ = m;
  f->size_ = size;
  const auto* base = static_cast<const uint8_t*>(m);

  uint64_t hlen = 0;
  for (int i = 7; i >= 0; --i) hlen = (hlen << 8) | base[i];
  if (hlen > kMaxHeader)
    fail(path, "header length " + std::to_string(hlen) + " is implausibly large (limit 100 MiB)");
  if (hlen > size - 8)
    fail(path, "header length " + std::to_string(hlen) + " runs past the end of the file (" +
                   std::to_string(size) + " bytes; truncated?)");
  const uint64_t data_size = size - 8 - hlen;
  f->data_section_ = base + 8 + hlen;

  nlohmann::json h;
  try {
    h = nlohmann::json::parse(base + 8, base + 8 + hlen);
  } catch (const nlohmann::json::exception& e) {
    fail(path, std::string("header is not valid JSON: ") + e.what());
  }
  if (!h.is_object()) fail(path, std::string("header is not a JSON object but ") + h.type_name());

  for (auto it = h.begin(); it != h.end(); ++it) {
    const std::string& name = it.key();
    const auto& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) fail(path, std::string("__metadata__ is not an object but ") + v.type_name());
      for (auto m2 = v.begin(); m2 != v.end(); ++m2) {
        if (!m2.value().is_string())
          fail(path, "__metadata__ value '" + m2.key() + "' is not a string but " + m2.value().type_name());
        f->metadata_[m2.key()] = m2.value().get<std::string>();
      }
      continue;
    }
    if (!v.is_object()) fail(path, "entry '" + name + "' is not an object but " + v.type_name());
    const auto dtype = v.find("dtype");
    const auto shape = v.find("shape");
    const auto offsets = v.find("data_offsets");
    if (dtype == v.end()) fail(path, quoted(name) + " has no dtype");
    if (!dtype->is_string()) fail(path, quoted(name) + " has no dtype string (found " + dtype->type_name() + ")");
    if (shape == v.end()) fail(path, quoted(name) + " has no shape");
    if (!shape->is_array()) fail(path, quoted(name) + " has no shape array (found " + shape->type_name() + ")");
    if (offsets == v.end() || !offsets->is_array() || offsets->size() != 2)
      fail(path, quoted(name) + " needs data_offsets [begin, end]");

    TensorInfo t;
    t.name = name;
    const std::string dname = dtype->get<std::string>();
    const auto dt = dtype_from_name(dname);
    if (!dt) fail(path, quoted(name) + " has unknown dtype '" + dname + "'");
    t.dtype = *dt;
    if (shape->size() > Shape::kMaxRank)
      fail(path, quoted(name) + " has " + std::to_string(shape->size()) + " dimensions (at most 8)");
    for (const auto& d : *shape) {
      if (d.is_number_unsigned()) {
        if (d.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
          fail(path, quoted(name) + " has a dimension that overflows");
        t.shape.push_back(static_cast<int64_t>(d.get<uint64_t>()));
      } else if (d.is_number_integer()) {
        t.shape.push_back(d.get<int64_t>());
      } else {
        fail(path, quoted(name) + " has a non-integer dimension (" + d.type_name() + ")");
      }
    }
    for (const auto& o : *offsets)
      if (!o.is_number_unsigned())
        fail(path, quoted(name) + " has a data offset that is not a non-negative integer");
    t.begin = (*offsets)[0].get<uint64_t>();
    t.end = (*offsets)[1].get<uint64_t>();
    if (t.begin > t.end)
      fail(path, quoted(name) + " ends before it begins (data_offsets [" + std::to_string(t.begin) + ", " +
                     std::to_string(t.end) + "])");
    if (t.end > data_size)
      fail(path, quoted(name) + " ends at byte " + std::to_string(t.end) + " past the data section (" +
                     std::to_string(data_size) + " bytes; truncated?)");
    const uint64_t numel = checked_numel(t.shape, path, name);
    const uint64_t esize = dtype_size(t.dtype);
    if (numel > std::numeric_limits<uint64_t>::max() / esize || numel * esize != t.end - t.begin)
      fail(path, quoted(name) + ": " + std::to_string(t.end - t.begin) + " bytes do not hold shape " +
                     shape_str(t.shape) + " of " + std::string(dtype_name(t.dtype)));
    if (t.begin % esize != 0)
      fail(path, quoted(name) + " is misaligned: offset " + std::to_string(t.begin) + " is not a multiple of " +
                     std::to_string(esize) + " for " + std::string(dtype_name(t.dtype)));
    if ((8 + hlen + t.begin) % esize != 0)
      fail(path, quoted(name) + " is misaligned for " + std::string(dtype_name(t.dtype)) + " (header length " +
                     std::to_string(hlen) + " is not padded to 8 bytes)");
    f->tensors_.push_back(std::move(t));
  }

  // No two tensors may share a byte (empty tensors hold none).
  std::vector<const TensorInfo*> order;
  for (const auto& t : f->tensors_)
    if (t.end > t.begin) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  const TensorInfo* reach = nullptr;  // the tensor ending furthest so far
  for (const TensorInfo* t : order) {
    if (reach && t->begin < reach->end) fail(path, "tensors '" + reach->name + "' and '" + t->name + "' overlap");
    if (!reach || t->end > reach->end) reach = t;
  }
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
    if (line.rfind("RssFile:", 0) != 0) continue;
    size_t kb = 0;
    bool digits = false;
    for (char c : line.substr(8)) {
      if (c >= '0' && c <= '9') {
        kb = kb * 10 + static_cast<size_t>(c - '0');
        digits = true;
      } else if (digits) {
        break;
      }
    }
    return kb * 1024;
  }
  return 0;
}

}  // namespace moemesh
