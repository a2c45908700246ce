// Bulk conversions of stored values to f32 (the fp8 latent cache read back).
#pragma once

#include <cstdint>

namespace moemesh::cpu {

// dst[i] = scale · e4m3(src[i]), exactly (the product rounded once).
void dequantize_fp8(const uint8_t* src, int64_t n, float scale, float* dst);

namespace detail {
void dequantize_fp8_avx2(const uint8_t* src, int64_t n, float scale, float* dst);
}

}  // namespace moemesh::cpu
