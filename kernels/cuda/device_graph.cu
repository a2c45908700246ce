#include "kernels/cuda/device_graph.h"

#include "kernels/cuda/cuda_check.h"

namespace moemesh::cuda {

DeviceGraph::~DeviceGraph() { reset(); }

void DeviceGraph::reset() {
  if (exec_) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec_));
  if (graph_) cudaGraphDestroy(static_cast<cudaGraph_t>(graph_));
  exec_ = graph_ = nullptr;
}

void DeviceGraph::begin(Stream s) {
  if (!s) throw Error("DeviceGraph: the default stream cannot be captured");
  reset();
  MOEMESH_CUDA_CHECK(cudaStreamBeginCapture(detail::stream(s), cudaStreamCaptureModeThreadLocal));
  capturing_ = s;
}

void DeviceGraph::end() {
  if (!capturing_) throw Error("DeviceGraph::end without begin");
  cudaGraph_t g = nullptr;
  const Stream s = capturing_;
  capturing_ = nullptr;
  MOEMESH_CUDA_CHECK(cudaStreamEndCapture(detail::stream(s), &g));
  graph_ = g;
  cudaGraphExec_t e = nullptr;
  MOEMESH_CUDA_CHECK(cudaGraphInstantiate(&e, g, 0));
  exec_ = e;
}

void DeviceGraph::launch(Stream s) {
  if (!exec_) throw Error("DeviceGraph::launch before a capture");
  MOEMESH_CUDA_CHECK(cudaGraphLaunch(static_cast<cudaGraphExec_t>(exec_), detail::stream(s)));
}

}  // namespace moemesh::cuda
