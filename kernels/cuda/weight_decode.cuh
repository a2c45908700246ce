// Device-side conversions of checkpoint element types to f32, bit-exact with
// core/dtype.h, and the real value of one weight element.
#pragma once

#include <cuda_fp16.h>

#include <cstdint>

#include "kernels/cuda/cuda_backend.h"

namespace moemesh::cuda::detail {

__device__ __forceinline__ float bf16_to_f32(uint16_t v) { return __uint_as_float(static_cast<uint32_t>(v) << 16); }

// Round to nearest even, NaN kept a quiet NaN (as core/dtype.h).
__device__ __forceinline__ uint16_t f32_to_bf16(float f) {
  uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

__device__ __forceinline__ float f16_to_f32(uint16_t v) { return __half2float(__ushort_as_half(v)); }

// e4m3 "fn": bias 7, no infinities, S.1111.111 is NaN.
__device__ __forceinline__ float fp8e4m3_to_f32(uint8_t v) {
  const uint32_t sign = static_cast<uint32_t>(v & 0x80) << 24;
  const uint32_t e = (v >> 3) & 0xf, m = v & 7;
  if (e == 15 && m == 7) return __uint_as_float(0x7fc00000u | sign);
  if (e == 0) {
    const float r = static_cast<float>(m) * 0.001953125f;  // subnormal: m·2⁻⁹
    return sign ? -r : r;
  }
  return __uint_as_float(sign | ((e + 120u) << 23) | (m << 20));
}

// Element i of a weight buffer, unscaled.
__device__ __forceinline__ float load_element(DType t, const void* data, int64_t i) {
  switch (t) {
    case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(data)[i]);
    case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(data)[i]);
    case DType::F8_E4M3: return fp8e4m3_to_f32(static_cast<const uint8_t*>(data)[i]);
    default: return static_cast<const float*>(data)[i];
  }
}

// Real value of W[o, k] (block scale applied), as LinearWeight::at.
__device__ __forceinline__ float weight_at(const DeviceWeight& w, int64_t o, int64_t k) {
  float v = load_element(w.dtype, w.data, o * w.in + k);
  if (w.scale_inv) v *= w.scale_inv[(o / 128) * w.scale_cols + k / 128];
  return v;
}

}  // namespace moemesh::cuda::detail
