// The GPU-to-GPU activation channel between two roles on GPUs: an NCCL
// communicator whose id is created by one role and travels as bytes on the
// ZeroMQ control channel to the other. Plain C++ (no NCCL or CUDA headers).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/cuda/device.h"

namespace moemesh::cuda {

constexpr size_t kNcclIdBytes = 128;  // sizeof(ncclUniqueId)

// A fresh communicator id, as bytes to send to the other ranks.
std::vector<uint8_t> nccl_new_id();

class NcclChannel {
 public:
  // Joins communicator `id` as `rank` of `nranks` on the current device. Every
  // rank must call this; it returns when all have joined.
  NcclChannel(const std::vector<uint8_t>& id, int nranks, int rank);
  ~NcclChannel();
  NcclChannel(const NcclChannel&) = delete;
  NcclChannel& operator=(const NcclChannel&) = delete;

  int rank() const { return rank_; }
  int size() const { return nranks_; }

  // Device buffers, asynchronous on `s`. A send and its matching receive must
  // be issued inside one group when the same thread does both (e.g. to self).
  void send(const void* buf, size_t bytes, int peer, Stream s = nullptr);
  void recv(void* buf, size_t bytes, int peer, Stream s = nullptr);
  static void group_start();
  static void group_end();

 private:
  void* comm_ = nullptr;  // an ncclComm_t
  int nranks_ = 0, rank_ = 0;
};

}  // namespace moemesh::cuda
