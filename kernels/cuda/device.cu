#include <utility>

#include "kernels/cuda/cuda_check.h"

namespace moemesh::cuda {

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver"/"no device" error
    return 0;
  }
  return n;
}

void set_device(int device) { MOEMESH_CUDA_CHECK(cudaSetDevice(device)); }

void synchronize(Stream s) { MOEMESH_CUDA_CHECK(cudaStreamSynchronize(detail::stream(s))); }

DeviceBuffer::DeviceBuffer(size_t bytes) : bytes_(bytes) {
  if (bytes > 0) MOEMESH_CUDA_CHECK(cudaMalloc(&ptr_, bytes));
}

DeviceBuffer::~DeviceBuffer() {
  if (ptr_) cudaFree(ptr_);
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& o) noexcept
    : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    if (ptr_) cudaFree(ptr_);
    ptr_ = std::exchange(o.ptr_, nullptr);
    bytes_ = std::exchange(o.bytes_, 0);
  }
  return *this;
}

void DeviceBuffer::reserve(size_t bytes) {
  if (bytes <= bytes_) return;
  *this = DeviceBuffer(bytes);
}

void DeviceBuffer::upload(const void* host, size_t bytes, size_t offset) {
  if (offset + bytes > bytes_) throw Error("DeviceBuffer::upload: past the end of the buffer");
  if (!bytes) return;
  MOEMESH_CUDA_CHECK(cudaMemcpy(static_cast<char*>(ptr_) + offset, host, bytes, cudaMemcpyHostToDevice));
  // From pageable memory cudaMemcpy may return before the data has landed;
  // work on non-blocking streams must see it.
  MOEMESH_CUDA_CHECK(cudaStreamSynchronize(nullptr));
}

void DeviceBuffer::download(void* host, size_t bytes, size_t offset) const {
  if (offset + bytes > bytes_) throw Error("DeviceBuffer::download: past the end of the buffer");
  if (bytes) MOEMESH_CUDA_CHECK(cudaMemcpy(host, static_cast<const char*>(ptr_) + offset, bytes, cudaMemcpyDeviceToHost));
}

void DeviceBuffer::zero() {
  if (!bytes_) return;
  MOEMESH_CUDA_CHECK(cudaMemset(ptr_, 0, bytes_));
  MOEMESH_CUDA_CHECK(cudaStreamSynchronize(nullptr));  // synchronous like the copies
}

StreamOwner::StreamOwner() {
  cudaStream_t s;
  MOEMESH_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  s_ = s;
}

StreamOwner::~StreamOwner() { cudaStreamDestroy(detail::stream(s_)); }

}  // namespace moemesh::cuda
