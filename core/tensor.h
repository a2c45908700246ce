// Non-owning views of tensors (usually pointing into a memory-mapped checkpoint).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace moemesh {

// A tensor's dimensions, held inline (copying a tensor view allocates nothing,
// which keeps a decode step free of allocations). At most kMaxRank dimensions.
class Shape {
 public:
  static constexpr size_t kMaxRank = 8;
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims) {
    for (int64_t d : dims) push_back(d);
  }
  explicit Shape(const std::vector<int64_t>& dims) {
    for (int64_t d : dims) push_back(d);
  }

  void push_back(int64_t d) {
    if (n_ == kMaxRank) throw std::length_error("a tensor shape has at most 8 dimensions");
    d_[n_++] = d;
  }
  void resize(size_t n) {
    if (n > kMaxRank) throw std::length_error("a tensor shape has at most 8 dimensions");
    for (size_t i = n_; i < n; ++i) d_[i] = 0;
    n_ = n;
  }
  size_t size() const { return n_; }
  bool empty() const { return n_ == 0; }
  int64_t& operator[](size_t i) { return d_[i]; }
  int64_t operator[](size_t i) const { return d_[i]; }
  int64_t at(size_t i) const {
    if (i >= n_) throw std::out_of_range("shape dimension " + std::to_string(i) + " of a rank-" + std::to_string(n_) + " tensor");
    return d_[i];
  }
  int64_t back() const { return at(n_ - 1); }
  const int64_t* begin() const { return d_.data(); }
  const int64_t* end() const { return d_.data() + n_; }
  std::vector<int64_t> to_vector() const { return {begin(), end()}; }
  friend bool operator==(const Shape& a, const Shape& b) { return std::equal(a.begin(), a.end(), b.begin(), b.end()); }
  friend bool operator!=(const Shape& a, const Shape& b) { return !(a == b); }

 private:
  std::array<int64_t, kMaxRank> d_{};
  size_t n_ = 0;
};

std::string shape_str(const Shape& s);
int64_t shape_numel(const Shape& s);
inline std::ostream& operator<<(std::ostream& o, const Shape& s) { return o << shape_str(s); }

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
