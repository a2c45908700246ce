// Per-thread scratch memory of the linear kernels (permuted activations, packed
// panels, permuted outputs). It only grows, in powers of two, so once it has
// been sized nothing allocates; reserve_kernel_scratch sizes it on every thread
// of the pool at once, so that a decode step allocates nothing from its first step.
#pragma once

#include <cstddef>

namespace moemesh::cpu {

enum class ScratchSlot { Activations, Panel, Output, kCount };

// At least n floats of this thread's `slot`, valid until its next call on this thread.
float* kernel_scratch(ScratchSlot slot, size_t n);

// Grows every slot of every pool thread to at least `floats`.
void reserve_kernel_scratch(size_t floats);

}  // namespace moemesh::cpu
