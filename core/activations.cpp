#include "core/activations.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/wire.h"

namespace moemesh {

std::optional<WireActivations> wire_activations_from_name(std::string_view s) {
  if (s == "f32") return WireActivations::F32;
  if (s == "bf16") return WireActivations::BF16;
  if (s == "fp8") return WireActivations::FP8;
  return std::nullopt;
}

const char* wire_activations_name(WireActivations w) {
  return w == WireActivations::F32 ? "f32" : w == WireActivations::BF16 ? "bf16" : "fp8";
}

DType activation_dtype(WireActivations w) {
  return w == WireActivations::F32 ? DType::F32 : w == WireActivations::BF16 ? DType::BF16 : DType::F8_E4M3;
}

size_t activation_value_bytes(int64_t rows, int64_t cols, WireActivations w) {
  return static_cast<size_t>(rows * cols) * dtype_size(activation_dtype(w));
}

size_t activation_scale_bytes(int64_t rows, int64_t cols, WireActivations w) {
  return w == WireActivations::FP8 ? static_cast<size_t>(rows * ((cols + 127) / 128)) * sizeof(float) : 0;
}

void encode_activations(const float* x, int64_t rows, int64_t cols, WireActivations w, void* values, float* scales) {
  const size_t n = static_cast<size_t>(rows * cols);
  switch (w) {
    case WireActivations::F32: std::memcpy(values, x, n * sizeof(float)); return;
    case WireActivations::BF16: {
      auto* b = static_cast<uint16_t*>(values);
      for (size_t i = 0; i < n; ++i) b[i] = f32_to_bf16(x[i]);
      return;
    }
    case WireActivations::FP8: {
      auto* q = static_cast<uint8_t*>(values);
      const int64_t blocks = (cols + 127) / 128;
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t b = 0; b < blocks; ++b) {
          const int64_t c0 = b * 128, c1 = std::min(cols, c0 + 128);
          float amax = 0.0f;
          for (int64_t c = c0; c < c1; ++c) amax = std::max(amax, std::fabs(x[r * cols + c]));
          const float s = amax > 0 && std::isfinite(amax) ? amax / kFp8E4M3Max : 1.0f;
          scales[r * blocks + b] = s;
          for (int64_t c = c0; c < c1; ++c) q[r * cols + c] = f32_to_fp8e4m3(x[r * cols + c] / s);
        }
      return;
    }
  }
}

void decode_activations(DType dtype, bool fp8_scaled, const void* values, size_t value_bytes, const float* scales,
                        size_t scale_bytes, int64_t rows, int64_t cols, float* out) {
  auto bad = [](const std::string& what) { throw wire::WireError(wire::ErrorCode::BadFrame, "activations: " + what); };
  const size_t n = static_cast<size_t>(rows * cols);
  if (fp8_scaled) {
    if (dtype != DType::F8_E4M3) bad("fp8-scaled activations must be F8_E4M3");
    const int64_t blocks = (cols + 127) / 128;
    if (value_bytes != n || scale_bytes != static_cast<size_t>(rows * blocks) * sizeof(float))
      bad("fp8 values or scales have the wrong size for [" + std::to_string(rows) + ", " + std::to_string(cols) + "]");
    const auto* q = static_cast<const uint8_t*>(values);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) out[r * cols + c] = fp8e4m3_to_f32(q[r * cols + c]) * scales[r * blocks + c / 128];
    return;
  }
  if (dtype == DType::F32) {
    if (value_bytes != n * 4) bad("f32 values have the wrong size");
    std::memcpy(out, values, n * 4);
  } else if (dtype == DType::BF16) {
    if (value_bytes != n * 2) bad("bf16 values have the wrong size");
    const auto* b = static_cast<const uint16_t*>(values);
    for (size_t i = 0; i < n; ++i) out[i] = bf16_to_f32(b[i]);
  } else {
    bad("must be F32, BF16 or scaled F8_E4M3");
  }
}

}  // namespace moemesh
