#include "kernels/cpu/linear.h"

#include <cpuid.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "kernels/cpu/linear_kernels.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/thread_pool.h"

namespace moemesh::cpu {
namespace detail {

bool cpu_has_avx512() {
  static const bool ok = [] {
    const char* force = std::getenv("MOEMESH_KERNELS");
    if (force && std::strcmp(force, "generic") == 0) return false;
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
    const bool fma = c & (1u << 12), osxsave = c & (1u << 27), f16c = c & (1u << 29);
    if (!fma || !osxsave || !f16c) return false;
    // The OS must save the AVX-512 state (XCR0: SSE, AVX, opmask, ZMM).
    unsigned lo, hi;
    __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 0xe6) != 0xe6) return false;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    const unsigned need = (1u << 16) | (1u << 17) | (1u << 30) | (1u << 31);  // F, DQ, BW, VL
    return (b & need) == need;
  }();
  return ok;
}

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

void panel_product_generic(const float* x, int64_t m, int64_t ldx, const float* panel, int64_t n, int64_t K,
                           float* y, int64_t ldy) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) y[i * ldy + j] = dot(x + i * ldx, panel + j * K, K);
}

}  // namespace detail

namespace {
constexpr int64_t kPanelRows = 8;   // weight rows converted together
constexpr int64_t kRowBlock = 64;   // activation rows sharing one converted panel

void run_linear(const float* x, int64_t m, int64_t ldx, const LinearWeight& w, int64_t r0, int64_t r1, float* y,
                int64_t ldy) {
  const int64_t K = w.in();
  const bool avx = detail::cpu_has_avx512();
  const int64_t panels = (r1 - r0 + kPanelRows - 1) / kPanelRows;
  if (avx && m <= detail::kDirectMaxRows) {
    parallel_for(panels, 4, [&](int64_t p0, int64_t p1) {
      const int64_t o0 = r0 + p0 * kPanelRows, o1 = std::min(r1, r0 + p1 * kPanelRows);
      detail::direct_product_avx512(x, m, ldx, w, o0, o1, y + (o0 - r0), ldy);
    });
    return;
  }
  // Keep each thread's panel in cache: the grain covers a few panels.
  parallel_for(panels, 1, [&](int64_t p0, int64_t p1) {
    thread_local std::vector<float> buf;
    buf.resize(static_cast<size_t>(kPanelRows * K));
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t o0 = r0 + p * kPanelRows, o1 = std::min(r1, o0 + kPanelRows);
      if (avx) detail::convert_rows_avx512(w, o0, o1, buf.data());
      else detail::convert_rows_generic(w, o0, o1, buf.data());
      for (int64_t i = 0; i < m; i += kRowBlock) {
        const int64_t mb = std::min(kRowBlock, m - i);
        float* yo = y + i * ldy + (o0 - r0);
        if (avx) detail::panel_product_avx512(x + i * ldx, mb, ldx, buf.data(), o1 - o0, K, yo, ldy);
        else detail::panel_product_generic(x + i * ldx, mb, ldx, buf.data(), o1 - o0, K, yo, ldy);
      }
    }
  });
}
}  // namespace

void linear(const float* x, int64_t m, int64_t ldx, const LinearWeight& w, float* y, int64_t ldy) {
  run_linear(x, m, ldx, w, 0, w.out(), y, ldy);
}

void linear_rows(const float* x, int64_t m, int64_t ldx, const LinearWeight& w, int64_t row_begin, int64_t row_end,
                 float* y, int64_t ldy) {
  run_linear(x, m, ldx, w, row_begin, row_end, y, ldy);
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
