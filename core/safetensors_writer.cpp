#include <algorithm>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/safetensors.h"

namespace moemesh {

void SafetensorsWriter::add(const std::string& name, DType dtype, const Shape& shape, std::vector<uint8_t> bytes) {
  for (int64_t d : shape)
    if (d < 0) throw std::invalid_argument("safetensors writer: '" + name + "' has a negative dimension");
  if (bytes.size() != static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype))
    throw std::invalid_argument("safetensors writer: '" + name + "' bytes do not match its shape");
  total_ += bytes.size();
  entries_.push_back({name, dtype, shape, std::move(bytes)});
}

std::vector<std::string> SafetensorsWriter::names() const {
  std::vector<std::string> v;
  for (const auto& e : entries_) v.push_back(e.name);
  return v;
}

void SafetensorsWriter::write(const std::filesystem::path& path) const {
  std::vector<const Entry*> order;
  for (const auto& e : entries_) order.push_back(&e);
  // Largest element size first keeps every tensor aligned to its element size.
  std::stable_sort(order.begin(), order.end(), [](const Entry* a, const Entry* b) {
    if (dtype_size(a->dtype) != dtype_size(b->dtype)) return dtype_size(a->dtype) > dtype_size(b->dtype);
    return a->name < b->name;
  });
  std::vector<const std::string*> sorted;
  for (const auto& e : entries_) sorted.push_back(&e.name);
  std::sort(sorted.begin(), sorted.end(), [](const std::string* a, const std::string* b) { return *a < *b; });
  for (size_t i = 0; i < sorted.size(); ++i) {
    if (*sorted[i] == "__metadata__")
      throw std::invalid_argument("safetensors writer: '__metadata__' is not a tensor name");
    if (i > 0 && *sorted[i] == *sorted[i - 1])
      throw std::invalid_argument("safetensors writer: tensor '" + *sorted[i] + "' added twice");
  }
  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  if (!metadata_.empty()) h["__metadata__"] = metadata_;
  uint64_t off = 0;
  for (const Entry* e : order) {
    h[e->name] = {{"dtype", dtype_name(e->dtype)}, {"shape", e->shape.to_vector()}, {"data_offsets", {off, off + e->bytes.size()}}};
    off += e->bytes.size();
  }
  std::string header = h.dump();
  header.append((8 - header.size() % 8) % 8, ' ');
  const std::filesystem::path tmp = path.string() + ".tmp";
  auto fail = [&](const std::string& why) {
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    throw CheckpointError(path.string() + ": " + why);
  };
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail("cannot create " + tmp.string());
    const uint64_t n = header.size();
    char len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<char>(static_cast<uint8_t>(n >> (8 * i)));
    out.write(len, 8);
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    for (const Entry* e : order)
      out.write(reinterpret_cast<const char*>(e->bytes.data()), static_cast<std::streamsize>(e->bytes.size()));
    out.close();
    if (!out) fail("cannot write " + tmp.string());
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) fail("cannot rename " + tmp.string() + ": " + ec.message());
}

}  // namespace moemesh
