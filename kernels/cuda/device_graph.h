// CUDA graphs for decode steps: the kernels a step issues on a stream are
// recorded once and replayed with one launch, which removes the per-kernel
// launch cost that dominates small decode batches. Plain C++.
#pragma once

#include "kernels/cuda/device.h"

namespace moemesh::cuda {

class DeviceGraph {
 public:
  DeviceGraph() = default;
  ~DeviceGraph();
  DeviceGraph(const DeviceGraph&) = delete;
  DeviceGraph& operator=(const DeviceGraph&) = delete;

  // Records what is issued on `s` (not the default stream) until end(). Run the
  // step once uncaptured first: workspaces must not be allocated while capturing.
  void begin(Stream s);
  void end();
  bool ready() const { return exec_ != nullptr; }
  // Replays the recorded work on `s`; buffers are read and written in place, so
  // new inputs are uploaded into the same buffers before each launch.
  void launch(Stream s);

 private:
  void reset();
  void* graph_ = nullptr;  // a cudaGraph_t
  void* exec_ = nullptr;   // a cudaGraphExec_t
  Stream capturing_ = nullptr;
};

}  // namespace moemesh::cuda
