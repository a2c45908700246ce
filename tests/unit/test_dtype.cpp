// dtype conversions against their definitions, over every code where feasible.
#include <gtest/gtest.h>

#include <cmath>

#include "core/dtype.h"

using namespace moemesh;

namespace {
// e4m3fn by definition: sign, 4 exponent bits (bias 7), 3 mantissa bits; S.1111.111 is NaN.
double fp8_definition(int code) {
  const int s = code >> 7, e = (code >> 3) & 15, m = code & 7;
  if (e == 15 && m == 7) return NAN;
  const double v = e == 0 ? m / 8.0 * std::pow(2.0, -6) : (1 + m / 8.0) * std::pow(2.0, e - 7);
  return s ? -v : v;
}
double f16_definition(int code) {
  const int s = code >> 15, e = (code >> 10) & 31, m = code & 1023;
  double v;
  if (e == 31) v = m ? NAN : INFINITY;
  else if (e == 0) v = m / 1024.0 * std::pow(2.0, -14);
  else v = (1 + m / 1024.0) * std::pow(2.0, e - 15);
  return s ? -v : v;
}
}  // namespace

TEST(Dtype, Fp8EveryCode) {
  for (int c = 0; c < 256; ++c) {
    const double want = fp8_definition(c);
    const float got = fp8e4m3_to_f32(static_cast<uint8_t>(c));
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(got)) << c;
      continue;
    }
    EXPECT_EQ(got, want) << c;
    if (c != 0x80) EXPECT_EQ(f32_to_fp8e4m3(got), c) << "round trip " << c;  // -0 → +0 is fine either way
  }
  EXPECT_EQ(fp8e4m3_to_f32(0x7e), 448.0f);
  EXPECT_EQ(f32_to_fp8e4m3(1e6f), 0x7e) << "saturates";
  EXPECT_EQ(f32_to_fp8e4m3(-1e6f), 0xfe);
  // Ties to even: 1.0625 lies between 1.0 (m=0) and 1.125 (m=1) → 1.0; 1.1875 → 1.25 (m=2).
  EXPECT_EQ(fp8e4m3_to_f32(f32_to_fp8e4m3(1.0625f)), 1.0f);
  EXPECT_EQ(fp8e4m3_to_f32(f32_to_fp8e4m3(1.1875f)), 1.25f);
  // Nearest for every value between neighbours.
  for (int c = 1; c < 0x7e; ++c) {
    const float a = fp8e4m3_to_f32(c), b = fp8e4m3_to_f32(c + 1);
    EXPECT_EQ(f32_to_fp8e4m3(a + (b - a) * 0.3f), c);
    EXPECT_EQ(f32_to_fp8e4m3(a + (b - a) * 0.7f), c + 1);
  }
}

TEST(Dtype, F16EveryCode) {
  for (int c = 0; c < 65536; ++c) {
    const double want = f16_definition(c);
    const float got = f16_to_f32(static_cast<uint16_t>(c));
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(got)) << c;
      continue;
    }
    ASSERT_EQ(got, want) << c;
    ASSERT_EQ(f32_to_f16(got), c) << "round trip " << c;
  }
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00) << "tie to even";
  EXPECT_EQ(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
  EXPECT_EQ(f32_to_f16(1e6f), 0x7c00);
}

TEST(Dtype, Bf16RoundsToNearestEven) {
  for (uint32_t hi = 0; hi < 65536; hi += 7) {
    const float v = std::bit_cast<float>(hi << 16);
    if (std::isnan(v)) continue;
    EXPECT_EQ(f32_to_bf16(v), hi);
    EXPECT_EQ(bf16_to_f32(static_cast<uint16_t>(hi)), v);
  }
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3f808000u)), 0x3f80) << "tie to even (down)";
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3f818000u)), 0x3f82) << "tie to even (up)";
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3f808001u)), 0x3f81);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
}

TEST(Dtype, Names) {
  for (DType t : {DType::F32, DType::F16, DType::BF16, DType::F8_E4M3, DType::I64, DType::U8})
    EXPECT_EQ(dtype_from_name(dtype_name(t)), t);
  EXPECT_FALSE(dtype_from_name("F8_E5M2").has_value());
}
