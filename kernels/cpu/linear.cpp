#include "kernels/cpu/linear.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "kernels/cpu/kernel_scratch.h"
#include "kernels/cpu/linear_kernels.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/thread_pool.h"

namespace moemesh::cpu {
namespace detail {

void convert_rows_generic(const LinearWeight& w, int64_t o0, int64_t o1, float* out) {
  const int64_t K = w.in();
  const size_t base = static_cast<size_t>(o0 * K);
  const size_t n = static_cast<size_t>((o1 - o0) * K);
  switch (w.w.dtype) {
    case DType::F32: std::memcpy(out, static_cast<const float*>(w.w.data) + base, n * 4); break;
    case DType::BF16: {
      const uint16_t* p = static_cast<const uint16_t*>(w.w.data) + base;
      for (size_t i = 0; i < n; ++i) out[i] = bf16_to_f32(p[i]);
      break;
    }
    case DType::F16: {
      const uint16_t* p = static_cast<const uint16_t*>(w.w.data) + base;
      for (size_t i = 0; i < n; ++i) out[i] = f16_to_f32(p[i]);
      break;
    }
    case DType::F8_E4M3: {
      const uint8_t* p = static_cast<const uint8_t*>(w.w.data) + base;
      for (size_t i = 0; i < n; ++i) out[i] = fp8e4m3_to_f32(p[i]);
      break;
    }
    default: throw std::invalid_argument("linear: unsupported weight dtype");
  }
  if (w.scale_inv) {
    for (int64_t o = o0; o < o1; ++o) {
      const float* s = w.scale_inv + (o / LinearWeight::kBlock) * w.scale_cols;
      float* r = out + (o - o0) * K;
      for (int64_t k = 0; k < K; ++k) r[k] *= s[k / LinearWeight::kBlock];
    }
  }
}

namespace {

constexpr int64_t kGenericPanel = 8;  // weight rows converted together by the portable path

// The portable path: rows converted to f32 panels, each reused by all activation rows.
void generic_rows(const float* x, int64_t m, int64_t ldx, const LinearWeight& w, int64_t o0, int64_t o1, float* y,
                  int64_t ldy) {
  const int64_t K = w.in();
  float* buf = kernel_scratch(ScratchSlot::Panel, kGenericPanel * K);
  for (int64_t p = o0; p < o1; p += kGenericPanel) {
    const int64_t p1 = std::min(o1, p + kGenericPanel);
    convert_rows_generic(w, p, p1, buf);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t o = p; o < p1; ++o) y[i * ldy + (o - o0)] = dot(x + i * ldx, buf + (o - p) * K, K);
  }
}

void generic_transposed(const float* x, int64_t m, int64_t ldx, const LinearWeight& w, int64_t o0, int64_t o1,
                        float* y, int64_t ldy, int64_t cols) {
  const int64_t n = cols;
  for (int64_t r = 0; r < m; ++r) std::fill(y + r * ldy, y + r * ldy + n, 0.0f);
  float* row = kernel_scratch(ScratchSlot::Output, w.in());  // a whole row is converted
  for (int64_t o = o0; o < o1; ++o) {
    convert_rows_generic(w, o, o + 1, row);
    for (int64_t r = 0; r < m; ++r) axpy(x[r * ldx + (o - o0)], row, y + r * ldy, n);
  }
}

}  // namespace

const LinearKernels& generic_kernels() {
  static const LinearKernels k{"generic", generic_rows, generic_rows, generic_rows, nullptr, generic_transposed,
                               kGenericPanel};
  return k;
}

const LinearKernels& active_kernels() {
  static const LinearKernels& k = kernel_isa() == KernelIsa::Avx512 ? avx512_kernels()
                                  : kernels_emulate_bf16_dot()       ? avx2_bf16_emulated_kernels()
                                  : kernel_isa() == KernelIsa::Avx2  ? avx2_kernels()
                                                                     : generic_kernels();
  return k;
}

void linear_rows_with(const LinearKernels& k, const float* x, int64_t m, int64_t ldx, const LinearWeight& w,
                      int64_t r0, int64_t r1, float* y, int64_t ldy, Precision p, bool parallel) {
  if (m <= 0 || r1 <= r0) return;
  if (w.w.dtype == DType::F8_E4M3 && !w.scale_inv) throw std::invalid_argument("linear: fp8 weight without block scales");
  if (w.w.dtype != DType::F32 && w.w.dtype != DType::BF16 && w.w.dtype != DType::F16 && w.w.dtype != DType::F8_E4M3)
    throw std::invalid_argument("linear: unsupported weight dtype");
  const int64_t K = w.in();
  const int64_t row_bytes = std::max<int64_t>(1, K * static_cast<int64_t>(dtype_size(w.w.dtype)));
  const bool direct = m <= kDirectMaxRows;
  // bf16 dot products pay off from the packed sizes on.
  const bool fast = p == Precision::Fast && k.packed_bf16 && (w.w.dtype == DType::BF16 || w.w.dtype == DType::F8_E4M3);
  const bool blocked = !direct && m <= kBlockedMaxRows && !fast;
  // Units of work: 8 rows (direct), a block (blocked) or a panel (packed); a chunk
  // carries at least 64 KiB of weights so that small matrices are not split into
  // more pool round trips than work.
  const int64_t unit = direct ? 8 : blocked ? 16 : k.panel_rows;
  const int64_t units = (r1 - r0 + unit - 1) / unit;
  const int64_t grain = std::max<int64_t>(1, (int64_t{64} << 10) / (unit * row_bytes));
  auto run = [&](auto&& rows_fn) {
    auto chunk = [&](int64_t u0, int64_t u1) {
      const int64_t o0 = r0 + u0 * unit, o1 = std::min(r1, r0 + u1 * unit);
      rows_fn(o0, o1, y + (o0 - r0));
    };
    if (parallel) parallel_for(units, grain, chunk);
    else chunk(0, units);
  };
  if (direct) {
    run([&](int64_t o0, int64_t o1, float* yo) { k.direct(x, m, ldx, w, o0, o1, yo, ldy); });
    return;
  }
  if (blocked) {
    run([&](int64_t o0, int64_t o1, float* yo) { k.blocked(x, m, ldx, w, o0, o1, yo, ldy); });
    return;
  }
  // bf16 dot products only where the weights are bf16 values (bf16, and fp8 before its scale).
  if (fast) {
    // Activations rounded to bf16 pairs once, shared by every chunk.
    const int64_t ldxb = (K + 1) / 2;
    // The caller's own scratch: chunks on other threads only read it.
    uint32_t* xb = reinterpret_cast<uint32_t*>(kernel_scratch(ScratchSlot::Output, m * ldxb));
    for (int64_t i = 0; i < m; ++i)
      for (int64_t kp = 0; kp < ldxb; ++kp) {
        const uint16_t lo = f32_to_bf16(x[i * ldx + 2 * kp]);
        const uint16_t hi = 2 * kp + 1 < K ? f32_to_bf16(x[i * ldx + 2 * kp + 1]) : 0;
        xb[i * ldxb + kp] = static_cast<uint32_t>(lo) | static_cast<uint32_t>(hi) << 16;
      }
    run([&](int64_t o0, int64_t o1, float* yo) { k.packed_bf16(xb, m, ldxb, w, o0, o1, yo, ldy); });
    return;
  }
  run([&](int64_t o0, int64_t o1, float* yo) { k.packed(x, m, ldx, w, o0, o1, yo, ldy); });
}

}  // namespace detail

void linear(const float* x, int64_t m, int64_t ldx, const LinearWeight& w, float* y, int64_t ldy, Precision p) {
  detail::linear_rows_with(detail::active_kernels(), x, m, ldx, w, 0, w.out(), y, ldy, p);
}

void linear_rows(const float* x, int64_t m, int64_t ldx, const LinearWeight& w, int64_t row_begin, int64_t row_end,
                 float* y, int64_t ldy, Precision p) {
  detail::linear_rows_with(detail::active_kernels(), x, m, ldx, w, row_begin, row_end, y, ldy, p);
}

void linear_rows_serial(const float* x, int64_t m, int64_t ldx, const LinearWeight& w, int64_t row_begin,
                        int64_t row_end, float* y, int64_t ldy, Precision p) {
  detail::linear_rows_with(detail::active_kernels(), x, m, ldx, w, row_begin, row_end, y, ldy, p, false);
}

void linear_reference(const float* x, int64_t m, int64_t ldx, const LinearWeight& w, float* y, int64_t ldy) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t o = 0; o < w.out(); ++o) {
      double s = 0;
      for (int64_t k = 0; k < w.in(); ++k) s += static_cast<double>(x[i * ldx + k]) * w.at(o, k);
      y[i * ldy + o] = static_cast<float>(s);
    }
}

}  // namespace moemesh::cpu
