// The one codec of activations on the wire: [rows, cols] f32 values sent as f32,
// bf16, or fp8-e4m3 with one f32 scale per 128 values of a row (docs/WIRE.md).
// Every role that sends or receives hidden states goes through it.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "core/dtype.h"

namespace moemesh {

enum class WireActivations { F32, BF16, FP8 };

// f32, bf16, fp8; nullopt for anything else.
std::optional<WireActivations> wire_activations_from_name(std::string_view s);
const char* wire_activations_name(WireActivations w);

// Element type of payload 0, and whether a scale frame (payload 1) follows.
DType activation_dtype(WireActivations w);
// Bytes of payload 0 and of the scale frame (0 unless fp8).
size_t activation_value_bytes(int64_t rows, int64_t cols, WireActivations w);
size_t activation_scale_bytes(int64_t rows, int64_t cols, WireActivations w);

// Writes x in the wire form: `values` holds activation_value_bytes, `scales`
// activation_scale_bytes (fp8 only, else unused).
void encode_activations(const float* x, int64_t rows, int64_t cols, WireActivations w, void* values, float* scales);

// Reads them back into out[rows * cols]. `dtype` and `fp8_scaled` come from the
// header; sizes are checked. Throws wire::WireError(BadFrame) saying what is wrong.
void decode_activations(DType dtype, bool fp8_scaled, const void* values, size_t value_bytes, const float* scales,
                        size_t scale_bytes, int64_t rows, int64_t cols, float* out);

}  // namespace moemesh
