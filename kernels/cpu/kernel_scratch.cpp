#include "kernels/cpu/kernel_scratch.h"

#include <array>
#include <memory>

#include "kernels/cpu/thread_pool.h"

namespace moemesh::cpu {
namespace {

struct Buffer {
  std::unique_ptr<float[]> data;
  size_t size = 0;
};
thread_local std::array<Buffer, static_cast<size_t>(ScratchSlot::kCount)> t_scratch;

size_t round_up_pow2(size_t n) {
  size_t p = 1024;
  while (p < n) p *= 2;
  return p;
}

}  // namespace

float* kernel_scratch(ScratchSlot slot, size_t n) {
  Buffer& b = t_scratch[static_cast<size_t>(slot)];
  if (b.size < n) {
    b.size = round_up_pow2(n);
    b.data.reset(new float[b.size]);
  }
  return b.data.get();
}

void reserve_kernel_scratch(size_t floats) {
  run_on_every_thread([&](int64_t, int64_t) {
    for (size_t s = 0; s < static_cast<size_t>(ScratchSlot::kCount); ++s) kernel_scratch(static_cast<ScratchSlot>(s), floats);
  });
}

}  // namespace moemesh::cpu
