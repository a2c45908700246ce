// Device memory and streams for the CUDA backend, in plain C++ (no CUDA headers),
// so roles, tests and benchmarks compile with any C++ compiler.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <vector>

namespace moemesh::cuda {

// Every failed CUDA, cuBLAS or NCCL call throws this, naming the call.
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

using Stream = void*;  // a cudaStream_t; nullptr is the default stream

// Devices visible to this process; 0 when there is none or no driver (never throws).
int device_count();
void set_device(int device);
// Blocks until the stream's work is done; throws if any of it failed.
void synchronize(Stream s = nullptr);

// Owns one cudaMalloc allocation. Copies and zero() are synchronous (done when
// they return, whatever stream reads the buffer next) and sized in bytes.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& o) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* data() { return ptr_; }
  const void* data() const { return ptr_; }
  template <class T> T* as() { return static_cast<T*>(ptr_); }
  template <class T> const T* as() const { return static_cast<const T*>(ptr_); }
  size_t bytes() const { return bytes_; }

  // Grows (contents lost) when smaller than `bytes`; workspaces reuse one buffer.
  void reserve(size_t bytes);
  void upload(const void* host, size_t bytes, size_t offset = 0);
  void download(void* host, size_t bytes, size_t offset = 0) const;
  void zero();

  template <class T> static DeviceBuffer from(const std::vector<T>& v) {
    DeviceBuffer b(v.size() * sizeof(T));
    b.upload(v.data(), b.bytes());
    return b;
  }
  template <class T> std::vector<T> to_vector(size_t n) const {
    std::vector<T> v(n);
    download(v.data(), n * sizeof(T));
    return v;
  }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// Owns a non-blocking stream.
class StreamOwner {
 public:
  StreamOwner();
  ~StreamOwner();
  StreamOwner(const StreamOwner&) = delete;
  StreamOwner& operator=(const StreamOwner&) = delete;
  Stream get() const { return s_; }

 private:
  Stream s_ = nullptr;
};

}  // namespace moemesh::cuda
