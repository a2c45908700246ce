#include "kernels/cuda/nccl_channel.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <cstring>
#include <string>

namespace moemesh::cuda {
namespace {

void check(ncclResult_t r, const char* what) {
  if (r != ncclSuccess) throw Error(std::string(what) + " failed: " + ncclGetErrorString(r));
}

ncclComm_t comm(void* c) { return static_cast<ncclComm_t>(c); }

}  // namespace

static_assert(sizeof(ncclUniqueId) == kNcclIdBytes, "ncclUniqueId changed size");

std::vector<uint8_t> nccl_new_id() {
  ncclUniqueId id;
  check(ncclGetUniqueId(&id), "ncclGetUniqueId");
  std::vector<uint8_t> bytes(kNcclIdBytes);
  std::memcpy(bytes.data(), &id, kNcclIdBytes);
  return bytes;
}

NcclChannel::NcclChannel(const std::vector<uint8_t>& id, int nranks, int rank) : nranks_(nranks), rank_(rank) {
  if (id.size() != kNcclIdBytes) throw Error("NcclChannel: a communicator id is " + std::to_string(kNcclIdBytes) + " bytes");
  if (nranks < 1 || rank < 0 || rank >= nranks) throw Error("NcclChannel: rank outside 0..nranks-1");
  ncclUniqueId uid;
  std::memcpy(&uid, id.data(), kNcclIdBytes);
  ncclComm_t c = nullptr;
  check(ncclCommInitRank(&c, nranks, uid, rank), "ncclCommInitRank");
  comm_ = c;
}

NcclChannel::~NcclChannel() {
  if (comm_) ncclCommDestroy(comm(comm_));
}

void NcclChannel::send(const void* buf, size_t bytes, int peer, Stream s) {
  check(ncclSend(buf, bytes, ncclUint8, peer, comm(comm_), static_cast<cudaStream_t>(s)), "ncclSend");
}

void NcclChannel::recv(void* buf, size_t bytes, int peer, Stream s) {
  check(ncclRecv(buf, bytes, ncclUint8, peer, comm(comm_), static_cast<cudaStream_t>(s)), "ncclRecv");
}

void NcclChannel::group_start() { check(ncclGroupStart(), "ncclGroupStart"); }
void NcclChannel::group_end() { check(ncclGroupEnd(), "ncclGroupEnd"); }

}  // namespace moemesh::cuda
