// A decode-like step (RMSNorm, bf16 linear through cuBLAS, SwiGLU) captured in
// a CUDA graph and replayed on new inputs gives what running it directly gives.
#include "tests/gpu/gpu_test.h"

#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/device_graph.h"

using namespace moemesh;
using moemesh::gpu_test::GpuTest;
using moemesh::gpu_test::make_weight;
using moemesh::gpu_test::random_floats;

class GpuGraph : public GpuTest {};

TEST_F(GpuGraph, ReplayMatchesDirectRun) {
  const int64_t m = 4, hidden = 256, inter = 128;
  auto w_gate = make_weight(DType::BF16, inter, hidden, 1), w_up = make_weight(DType::F8_E4M3, inter, hidden, 2);
  cuda::DeviceLinear gate(w_gate.lw), up(w_up.lw);
  auto norm = cuda::DeviceBuffer::from(random_floats(hidden, 3));
  cuda::DeviceBuffer x(m * hidden * 4), h(m * hidden * 4), g(m * inter * 4), u(m * inter * 4);
  cuda::StreamOwner stream;
  const cuda::Stream s = stream.get();
  auto step = [&] {
    cuda::rmsnorm(x.as<float>(), m, hidden, hidden, norm.as<float>(), 1e-6f, h.as<float>(), hidden, s);
    cuda::linear(h.as<float>(), m, hidden, gate.view(), g.as<float>(), inter, s);
    cuda::linear(h.as<float>(), m, hidden, up.view(), u.as<float>(), inter, s);
    cuda::silu_mul(g.as<float>(), u.as<float>(), m * inter, g.as<float>(), s);
  };
  const auto x1 = random_floats(m * hidden, 4), x2 = random_floats(m * hidden, 5);
  x.upload(x1.data(), x.bytes());
  step();  // uncaptured first: allocates the workspaces
  cuda::synchronize(s);

  cuda::DeviceGraph graph;
  graph.begin(s);
  step();
  graph.end();
  ASSERT_TRUE(graph.ready());

  x.upload(x2.data(), x.bytes());
  step();
  cuda::synchronize(s);
  const auto direct = g.to_vector<float>(m * inter);
  g.zero();
  graph.launch(s);
  cuda::synchronize(s);
  EXPECT_EQ(g.to_vector<float>(m * inter), direct);
}
