// The NCCL channel: a communicator id that survives a trip as bytes, and a
// send/receive to self on one GPU.
#include "tests/gpu/gpu_test.h"

#if MOEMESH_HAVE_NCCL
#include "kernels/cuda/nccl_channel.h"
#endif

using namespace moemesh;
using moemesh::gpu_test::GpuTest;

class GpuNccl : public GpuTest {};

#if MOEMESH_HAVE_NCCL
TEST_F(GpuNccl, SendToSelfOnOneGpu) {
  const std::vector<uint8_t> id = cuda::nccl_new_id();
  ASSERT_EQ(id.size(), cuda::kNcclIdBytes);
  const std::vector<uint8_t> received(id.begin(), id.end());  // as if read off the control channel
  cuda::NcclChannel ch(received, 1, 0);
  const auto x = gpu_test::random_floats(10000, 1);
  auto src = cuda::DeviceBuffer::from(x);
  cuda::DeviceBuffer dst(x.size() * 4);
  dst.zero();
  cuda::NcclChannel::group_start();
  ch.send(src.data(), src.bytes(), 0);
  ch.recv(dst.data(), dst.bytes(), 0);
  cuda::NcclChannel::group_end();
  cuda::synchronize();
  EXPECT_EQ(dst.to_vector<float>(x.size()), x);
}

TEST(GpuNcclNoDevice, RejectsMalformedIds) {
  EXPECT_THROW(cuda::NcclChannel(std::vector<uint8_t>(7), 1, 0), cuda::Error);
}
#else
TEST_F(GpuNccl, SendToSelfOnOneGpu) { GTEST_SKIP() << "built without NCCL"; }
#endif
