#include "core/dtype.h"

#include <array>

namespace moemesh {

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::F8_E4M3: return "F8_E4M3";
    case DType::I64: return "I64";
    case DType::I32: return "I32";
    case DType::I16: return "I16";
    case DType::I8: return "I8";
    case DType::U8: return "U8";
    case DType::BOOL: return "BOOL";
    case DType::F64: return "F64";
  }
  return "?";
}

std::optional<DType> dtype_from_name(std::string_view n) {
  for (DType t : {DType::F32, DType::F16, DType::BF16, DType::F8_E4M3, DType::I64, DType::I32,
                  DType::I16, DType::I8, DType::U8, DType::BOOL, DType::F64}) {
    if (dtype_name(t) == n) return t;
  }
  return std::nullopt;
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t man = h & 0x3ffu;
  if (exp == 0) {
    // Zero or subnormal: value = man * 2^-24.
    float v = std::ldexp(static_cast<float>(man), -24);
    return sign ? -v : v;
  }
  if (exp == 31) return std::bit_cast<float>(sign | 0x7f800000u | (man << 13));
  return std::bit_cast<float>(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t f32_to_f16(float f) {
  const uint32_t u = std::bit_cast<uint32_t>(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const float a = std::fabs(f);
  if (std::isnan(f)) return sign | 0x7e00u;
  if (a >= 65520.0f) return sign | 0x7c00u;  // rounds to infinity
  if (a < 6.103515625e-05f) {
    // Subnormal range: quantum 2^-24; nearbyint rounds half to even.
    return sign | static_cast<uint16_t>(std::nearbyint(a * 16777216.0f));
  }
  uint32_t v = std::bit_cast<uint32_t>(a);
  v += 0xfffu + ((v >> 13) & 1u);
  return sign | static_cast<uint16_t>(((v >> 23) - 112) << 10 | ((v >> 13) & 0x3ffu));
}

namespace {
std::array<float, 256> make_fp8_table() {
  std::array<float, 256> t{};
  for (int i = 0; i < 256; ++i) {
    const int s = i >> 7, e = (i >> 3) & 0xf, m = i & 7;
    float v;
    if (e == 15 && m == 7) v = std::numeric_limits<float>::quiet_NaN();
    else if (e == 0) v = std::ldexp(static_cast<float>(m), -9);
    else v = std::ldexp(1.0f + m / 8.0f, e - 7);
    t[i] = s ? -v : v;
  }
  return t;
}
const std::array<float, 256> kFp8Table = make_fp8_table();
}  // namespace

float fp8e4m3_to_f32(uint8_t v) { return kFp8Table[v]; }

uint8_t f32_to_fp8e4m3(float f) {
  if (std::isnan(f)) return 0x7f;
  const uint8_t sign = std::signbit(f) ? 0x80 : 0;
  float a = std::fabs(f);
  if (a >= kFp8E4M3Max) return sign | 0x7e;
  if (a < std::ldexp(1.0f, -6)) {
    // Subnormal: quantum 2^-9.
    return sign | static_cast<uint8_t>(std::nearbyint(a * 512.0f));
  }
  int e;
  const float fr = std::frexp(a, &e);  // a = fr * 2^e, fr in [0.5, 1)
  // Mantissa with 3 fraction bits: a = (1 + m/8) * 2^(e-1).
  int m = static_cast<int>(std::nearbyint((fr * 2.0f - 1.0f) * 8.0f));
  int exp = e - 1 + 7;
  if (m == 8) { m = 0; ++exp; }
  if (exp > 15 || (exp == 15 && m == 7)) return sign | 0x7e;
  return sign | static_cast<uint8_t>(exp << 3 | m);
}

float load_as_f32(DType t, const void* data, size_t i) {
  switch (t) {
    case DType::F32: { float v; std::memcpy(&v, static_cast<const char*>(data) + 4 * i, 4); return v; }
    case DType::BF16: { uint16_t v; std::memcpy(&v, static_cast<const char*>(data) + 2 * i, 2); return bf16_to_f32(v); }
    case DType::F16: { uint16_t v; std::memcpy(&v, static_cast<const char*>(data) + 2 * i, 2); return f16_to_f32(v); }
    case DType::F8_E4M3: return fp8e4m3_to_f32(static_cast<const uint8_t*>(data)[i]);
    case DType::F64: { double v; std::memcpy(&v, static_cast<const char*>(data) + 8 * i, 8); return static_cast<float>(v); }
    default: return std::numeric_limits<float>::quiet_NaN();
  }
}

}  // namespace moemesh
