// Non-owning views of tensors (usually pointing into a memory-mapped checkpoint).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace moemesh {

using Shape = std::vector<int64_t>;

std::string shape_str(const Shape& s);
int64_t shape_numel(const Shape& s);

struct TensorView {
  DType dtype = DType::F32;
  Shape shape;
  const void* data = nullptr;

  int64_t numel() const { return shape_numel(shape); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
  int64_t dim(size_t i) const { return shape.at(i); }
  size_t rank() const { return shape.size(); }
  const uint8_t* bytes() const { return static_cast<const uint8_t*>(data); }
};

// A linear layer's weight: [out, in] row-major (the Hugging Face layout, y = x·Wᵀ).
// fp8-e4m3 weights carry one f32 scale per 128×128 block ("weight_scale_inv",
// shape [ceil(out/128), ceil(in/128)]); real value = fp8 value × scale.
struct LinearWeight {
  TensorView w;
  const float* scale_inv = nullptr;
  int64_t scale_cols = 0;  // ceil(in/128) when scale_inv is set

  static constexpr int64_t kBlock = 128;
  int64_t out() const { return w.shape.at(0); }
  int64_t in() const { return w.shape.at(1); }
  bool block_scaled() const { return scale_inv != nullptr; }
  // Real value of element (o, i), for references and slow paths.
  float at(int64_t o, int64_t i) const {
    float v = load_as_f32(w.dtype, w.data, static_cast<size_t>(o * in() + i));
    if (scale_inv) v *= scale_inv[(o / kBlock) * scale_cols + i / kBlock];
    return v;
  }
};

}  // namespace moemesh
