// Wall-clock timing of device work: warm up, then the mean of `iters` runs,
// each run's work waited for with cuda::synchronize.
#pragma once

#include <chrono>
#include <functional>

#include "kernels/cuda/device.h"

namespace moemesh::bench {

inline double seconds_per_run(const std::function<void()>& run, int iters = 20) {
  for (int i = 0; i < 3; ++i) run();
  cuda::synchronize();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) run();
  cuda::synchronize();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / iters;
}

}  // namespace moemesh::bench
