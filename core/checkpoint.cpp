#include <fstream>
#include <mutex>

#include <nlohmann/json.hpp>

#include "core/safetensors.h"

namespace moemesh {
namespace {

std::mutex g_shard_mu;  // shards open lazily from several threads

// A shard named by the index must be a plain file name inside the directory.
bool plain_file_name(const std::string& f) {
  if (f.empty() || f == "." || f.find("..") != std::string::npos) return false;
  for (char c : f)
    if (c == '/' || c == '\\' || c == '\0') return false;
  return true;
}

}  // namespace

Checkpoint::Checkpoint(const std::filesystem::path& dir) : dir_(dir) {
  const auto index = dir / "model.safetensors.index.json";
  std::error_code ec;
  if (std::filesystem::exists(index, ec)) {
    std::ifstream in(index, std::ios::binary);
    if (!in) throw CheckpointError(index.string() + ": cannot open");
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      throw CheckpointError(index.string() + ": invalid JSON: " + e.what());
    }
    if (!j.is_object()) throw CheckpointError(index.string() + ": not a JSON object");
    const auto wm = j.find("weight_map");
    if (wm == j.end() || !wm->is_object()) throw CheckpointError(index.string() + ": no \"weight_map\" object");
    for (auto it = wm->begin(); it != wm->end(); ++it) {
      if (!it.value().is_string())
        throw CheckpointError(index.string() + ": weight_map['" + it.key() + "'] is not a file name");
      const std::string file = it.value().get<std::string>();
      if (!plain_file_name(file))
        throw CheckpointError(index.string() + ": weight_map['" + it.key() + "'] names '" + file +
                              "', not a plain file name in the directory");
      weight_map_[it.key()] = file;
    }
    return;
  }
  const auto single = dir / "model.safetensors";
  if (!std::filesystem::exists(single, ec))
    throw CheckpointError(dir.string() + ": neither model.safetensors nor model.safetensors.index.json");
  SafetensorsFile& f = shard("model.safetensors");
  for (const auto& t : f.tensors()) weight_map_[t.name] = "model.safetensors";
}

SafetensorsFile& Checkpoint::shard(const std::string& file) const {
  std::lock_guard<std::mutex> lk(g_shard_mu);
  auto it = shards_.find(file);
  if (it == shards_.end()) it = shards_.emplace(file, SafetensorsFile::open(dir_ / file)).first;
  return *it->second;
}

bool Checkpoint::has(const std::string& name) const { return weight_map_.count(name) != 0; }

TensorView Checkpoint::get(const std::string& name) const {
  auto it = weight_map_.find(name);
  if (it == weight_map_.end()) throw CheckpointError("missing tensor '" + name + "' in " + dir_.string());
  SafetensorsFile* f = nullptr;
  try {
    f = &shard(it->second);
  } catch (const CheckpointError& e) {
    throw CheckpointError("tensor '" + name + "': " + e.what());
  }
  const TensorInfo* info = f->find(name);
  if (!info)
    throw CheckpointError("tensor '" + name + "' is listed in the index but missing from " + it->second + " (" +
                          f->path().string() + ")");
  return f->view(*info);
}

TensorView Checkpoint::get(const std::string& name, DType dtype, const Shape& shape) const {
  TensorView t = get(name);
  if (t.dtype != dtype)
    throw CheckpointError("tensor '" + name + "': expected dtype " + std::string(dtype_name(dtype)) + ", found " +
                          std::string(dtype_name(t.dtype)));
  if (t.shape != shape)
    throw CheckpointError("tensor '" + name + "': expected shape " + shape_str(shape) + ", found " + shape_str(t.shape));
  return t;
}

TensorView Checkpoint::get_float(const std::string& name, const Shape& shape) const {
  TensorView t = get(name);
  if (t.dtype != DType::F32 && t.dtype != DType::BF16 && t.dtype != DType::F16 && t.dtype != DType::F8_E4M3)
    throw CheckpointError("tensor '" + name + "': dtype " + std::string(dtype_name(t.dtype)) + " is not a float type");
  if (t.shape != shape)
    throw CheckpointError("tensor '" + name + "': expected shape " + shape_str(shape) + ", found " + shape_str(t.shape));
  return t;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> v;
  for (const auto& [n, _] : weight_map_) v.push_back(n);
  return v;
}

}  // namespace moemesh
