// Memory-mapped safetensors files and Hugging Face checkpoints (single file or
// sharded with model.safetensors.index.json). Nothing is copied: views point
// into the mapping, so only the pages of tensors actually used become resident.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace moemesh {

// Any problem with a checkpoint file: the message names the file and the tensor or key.
class CheckpointError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct TensorInfo {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin = 0;  // byte offsets inside the data section
  uint64_t end = 0;
};

// One .safetensors file. open() validates the whole header before returning:
// header length within the file, valid JSON object, known dtypes, offsets inside
// the data section, end - begin == numel * dtype size, no overlaps, every offset
// aligned to its element size. Throws CheckpointError otherwise.
class SafetensorsFile {
 public:
  static std::unique_ptr<SafetensorsFile> open(const std::filesystem::path& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  const TensorInfo* find(const std::string& name) const;
  TensorView view(const TensorInfo& info) const;
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  size_t file_size() const { return size_; }

 private:
  SafetensorsFile() = default;
  std::filesystem::path path_;
  void* map_ = nullptr;
  size_t size_ = 0;
  const uint8_t* data_section_ = nullptr;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// A checkpoint directory: model.safetensors, or the shards named by
// model.safetensors.index.json ("weight_map": tensor -> file). Shards are opened
// (and their headers validated) on first use.
class Checkpoint {
 public:
  explicit Checkpoint(const std::filesystem::path& dir);

  const std::filesystem::path& dir() const { return dir_; }
  bool has(const std::string& name) const;
  // Throws CheckpointError naming the tensor when it is missing.
  TensorView get(const std::string& name) const;
  // Also checks dtype and shape; the error names tensor, expected and found.
  TensorView get(const std::string& name, DType dtype, const Shape& shape) const;
  // Checks shape only; dtype must be one of the floating types.
  TensorView get_float(const std::string& name, const Shape& shape) const;
  std::vector<std::string> names() const;

 private:
  SafetensorsFile& shard(const std::string& file) const;
  std::filesystem::path dir_;
  std::map<std::string, std::string> weight_map_;  // tensor -> shard file name
  mutable std::map<std::string, std::unique_ptr<SafetensorsFile>> shards_;
};

// Writes one safetensors file. Tensors are laid out largest-alignment first so
// every tensor is aligned to its element size; the header is padded to 8 bytes.
class SafetensorsWriter {
 public:
  void add(const std::string& name, DType dtype, const Shape& shape, std::vector<uint8_t> bytes);
  size_t bytes() const { return total_; }
  bool empty() const { return entries_.empty(); }
  std::vector<std::string> names() const;
  void set_metadata(std::map<std::string, std::string> m) { metadata_ = std::move(m); }
  void write(const std::filesystem::path& path) const;

 private:
  struct Entry { std::string name; DType dtype; Shape shape; std::vector<uint8_t> bytes; };
  std::vector<Entry> entries_;
  std::map<std::string, std::string> metadata_;
  size_t total_ = 0;
};

// Resident file-backed memory of this process (RssFile from /proc/self/status), bytes.
size_t resident_file_bytes();

}  // namespace moemesh
