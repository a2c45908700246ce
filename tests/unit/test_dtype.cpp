// dtype conversions against their definitions, over every code where feasible,
// and rounding against a nearest-value search over the representable values.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

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

// IEEE binary16: sign, 5 exponent bits (bias 15), 10 mantissa bits.
double f16_definition(int code) {
  const int s = code >> 15, e = (code >> 10) & 31, m = code & 1023;
  double v;
  if (e == 31) v = m ? NAN : INFINITY;
  else if (e == 0) v = m / 1024.0 * std::pow(2.0, -14);
  else v = (1 + m / 1024.0) * std::pow(2.0, e - 15);
  return s ? -v : v;
}

// bfloat16: the top half of an IEEE binary32.
double bf16_definition(int code) {
  const int s = code >> 15, e = (code >> 7) & 255, m = code & 127;
  double v;
  if (e == 255) v = m ? NAN : INFINITY;
  else if (e == 0) v = m / 128.0 * std::pow(2.0, -126);
  else v = (1 + m / 128.0) * std::pow(2.0, e - 127);
  return s ? -v : v;
}

// Round-to-nearest-even by search: `ladder` holds the non-negative values of a
// format in increasing order with their codes; values past the last rung take
// the last rung (the caller puts infinity, or the saturation value, there).
struct Ladder {
  std::vector<std::pair<double, int>> rungs;

  int round(double x, int sign_bit) const {
    const int sign = std::signbit(x) ? sign_bit : 0;
    const double a = std::fabs(x);
    if (a >= rungs.back().first) return sign | rungs.back().second;
    auto hi = std::lower_bound(rungs.begin(), rungs.end(), a,
                               [](const std::pair<double, int>& r, double v) { return r.first < v; });
    if (hi->first == a) return sign | hi->second;
    auto lo = hi - 1;
    const double dl = a - lo->first, dh = hi->first - a;
    if (dl < dh) return sign | lo->second;
    if (dh < dl) return sign | hi->second;
    return sign | ((lo->second & 1) == 0 ? lo->second : hi->second);
  }
};

const Ladder& fp8_ladder() {
  static const Ladder l = [] {
    Ladder r;
    for (int c = 0; c <= 0x7e; ++c) r.rungs.emplace_back(fp8_definition(c), c);
    return r;  // beyond 448 saturates at 0x7e
  }();
  return l;
}

const Ladder& f16_ladder() {
  static const Ladder l = [] {
    Ladder r;
    for (int c = 0; c <= 0x7bff; ++c) r.rungs.emplace_back(f16_definition(c), c);
    // Infinity behaves as the next binade's first value (2^16) for rounding.
    r.rungs.emplace_back(65536.0, 0x7c00);
    return r;
  }();
  return l;
}

const Ladder& bf16_ladder() {
  static const Ladder l = [] {
    Ladder r;
    for (int c = 0; c <= 0x7f7f; ++c) r.rungs.emplace_back(bf16_definition(c), c);
    r.rungs.emplace_back(std::ldexp(1.0, 128), 0x7f80);
    return r;
  }();
  return l;
}

// A spread of floats: every 2^32/N-th bit pattern plus the midpoints of a format
// and their neighbours one f32 ulp away.
std::vector<float> samples(const Ladder& l, float lo_cut) {
  std::vector<float> out;
  for (uint64_t u = 0; u < (uint64_t{1} << 32); u += 4093) {
    const float f = std::bit_cast<float>(static_cast<uint32_t>(u));
    if (!std::isnan(f)) out.push_back(f);
  }
  for (size_t i = 1; i < l.rungs.size(); ++i) {
    const double mid = (l.rungs[i - 1].first + l.rungs[i].first) / 2;
    if (mid < lo_cut) continue;
    const float m = static_cast<float>(mid);
    if (static_cast<double>(m) != mid) continue;  // only exact midpoints
    for (float f : {m, std::nextafter(m, 0.0f), std::nextafter(m, INFINITY)}) {
      out.push_back(f);
      out.push_back(-f);
    }
  }
  return out;
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
    EXPECT_EQ(f32_to_fp8e4m3(got), c) << "round trip " << c;
  }
  EXPECT_EQ(fp8e4m3_to_f32(0x7e), kFp8E4M3Max);
  EXPECT_EQ(fp8e4m3_to_f32(0x01), std::ldexp(1.0f, -9)) << "smallest subnormal";
  EXPECT_EQ(fp8e4m3_to_f32(0x08), std::ldexp(1.0f, -6)) << "smallest normal";
  EXPECT_EQ(f32_to_fp8e4m3(NAN), 0x7f);
  EXPECT_TRUE(std::isnan(fp8e4m3_to_f32(f32_to_fp8e4m3(-NAN))));
}

TEST(Dtype, Fp8Saturates) {
  for (float big : {448.0f, 449.0f, 463.9f, 464.0f, 480.0f, 1e6f, 3.4e38f, INFINITY}) {
    EXPECT_EQ(f32_to_fp8e4m3(big), 0x7e) << big;
    EXPECT_EQ(f32_to_fp8e4m3(-big), 0xfe) << -big;
  }
  EXPECT_EQ(f32_to_fp8e4m3(432.0f), 0x7e) << "tie between 416 and 448 goes to the even code 0x7e";
  EXPECT_EQ(f32_to_fp8e4m3(431.9f), 0x7d);
}

TEST(Dtype, Fp8RoundsToNearestEven) {
  // Crafted ties: between 1.0 (m=0) and 1.125 (m=1) → 1.0; between 1.125 and 1.25 → 1.25 (m=2).
  EXPECT_EQ(f32_to_fp8e4m3(1.0625f), 0x38);
  EXPECT_EQ(f32_to_fp8e4m3(1.1875f), 0x3a);
  EXPECT_EQ(f32_to_fp8e4m3(-1.0625f), 0xb8);
  // Subnormal ties: half the smallest subnormal → 0; 1.5 × it → 2 × it; the
  // tie between the largest subnormal (7/8·2^-6) and the smallest normal → normal (even).
  EXPECT_EQ(f32_to_fp8e4m3(std::ldexp(1.0f, -10)), 0x00);
  EXPECT_EQ(f32_to_fp8e4m3(std::ldexp(3.0f, -10)), 0x02);
  EXPECT_EQ(f32_to_fp8e4m3(std::ldexp(15.0f, -10)), 0x08);
  // Ties at a binade edge: halfway between 1.875 (0x3f) and 2.0 (0x40) → 2.0.
  EXPECT_EQ(f32_to_fp8e4m3(1.9375f), 0x40);
  EXPECT_EQ(f32_to_fp8e4m3(std::nextafter(1.9375f, 0.0f)), 0x3f);
  EXPECT_EQ(f32_to_fp8e4m3(1e-30f), 0x00);
  EXPECT_EQ(f32_to_fp8e4m3(-1e-30f), 0x80);
  EXPECT_EQ(f32_to_fp8e4m3(std::numeric_limits<float>::denorm_min()), 0x00);

  const Ladder& l = fp8_ladder();
  for (float f : samples(l, 0)) ASSERT_EQ(f32_to_fp8e4m3(f), l.round(f, 0x80)) << f << " " << std::bit_cast<uint32_t>(f);
}

TEST(Dtype, F16EveryCode) {
  for (int c = 0; c < 65536; ++c) {
    const double want = f16_definition(c);
    const float got = f16_to_f32(static_cast<uint16_t>(c));
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(got)) << c;
      ASSERT_TRUE(std::isnan(f16_to_f32(f32_to_f16(got)))) << c;
      continue;
    }
    ASSERT_EQ(got, want) << c;
    ASSERT_EQ(f32_to_f16(got), c) << "round trip " << c;
  }
}

TEST(Dtype, F16RoundsToNearestEven) {
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00) << "tie to even (down)";
  EXPECT_EQ(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02) << "tie to even (up)";
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000) << "half the smallest subnormal";
  EXPECT_EQ(f32_to_f16(std::ldexp(3.0f, -25)), 0x0002);
  EXPECT_EQ(f32_to_f16(std::ldexp(2047.0f, -25)), 0x0400) << "largest subnormal / smallest normal tie";
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65519.996f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00) << "tie at the top rounds to infinity";
  EXPECT_EQ(f32_to_f16(1e6f), 0x7c00);
  EXPECT_EQ(f32_to_f16(-INFINITY), 0xfc00);
  EXPECT_EQ(f32_to_f16(-0.0f), 0x8000);
  EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(NAN))));

  const Ladder& l = f16_ladder();
  for (float f : samples(l, 0)) ASSERT_EQ(f32_to_f16(f), l.round(f, 0x8000)) << f << " " << std::bit_cast<uint32_t>(f);
}

TEST(Dtype, Bf16EveryCodeAndRounding) {
  for (int c = 0; c < 65536; ++c) {
    const double want = bf16_definition(c);
    const float got = bf16_to_f32(static_cast<uint16_t>(c));
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(got)) << c;
      ASSERT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(got)))) << "NaN stays NaN " << c;
      continue;
    }
    ASSERT_EQ(got, want) << c;
    ASSERT_EQ(f32_to_bf16(got), c) << "round trip " << c;
  }
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3f808000u)), 0x3f80) << "tie to even (down)";
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3f818000u)), 0x3f82) << "tie to even (up)";
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3f808001u)), 0x3f81);
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3f807fffu)), 0x3f80);
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::max()), 0x7f80) << "rounds to infinity";
  // A signalling NaN whose payload sits in the low half must not become infinity.
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::bit_cast<float>(0x7f800001u)))));
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::bit_cast<float>(0xff800001u)))));
  EXPECT_EQ(round_to_bf16(1.00390625f), 1.0f);

  const Ladder& l = bf16_ladder();
  for (float f : samples(l, 0)) ASSERT_EQ(f32_to_bf16(f), l.round(f, 0x8000)) << f << " " << std::bit_cast<uint32_t>(f);
}

TEST(Dtype, LoadAsF32) {
  const float f32[] = {1.5f, -2.25f};
  EXPECT_EQ(load_as_f32(DType::F32, f32, 1), -2.25f);
  const uint16_t bf[] = {0x3f80, 0xc010};
  EXPECT_EQ(load_as_f32(DType::BF16, bf, 1), -2.25f);
  const uint16_t h[] = {0x3c00, 0xc080};
  EXPECT_EQ(load_as_f32(DType::F16, h, 1), -2.25f);
  const uint8_t q[] = {0x38, 0xc1};
  EXPECT_EQ(load_as_f32(DType::F8_E4M3, q, 1), -2.25f);
  const double d[] = {0.0, 3.5};
  EXPECT_EQ(load_as_f32(DType::F64, d, 1), 3.5f);
  const int64_t i[] = {1};
  EXPECT_TRUE(std::isnan(load_as_f32(DType::I64, i, 0)));
}

TEST(Dtype, NamesAndSizes) {
  for (DType t : {DType::F32, DType::F16, DType::BF16, DType::F8_E4M3, DType::I64, DType::I32, DType::I16,
                  DType::I8, DType::U8, DType::BOOL, DType::F64})
    EXPECT_EQ(dtype_from_name(dtype_name(t)), t);
  EXPECT_FALSE(dtype_from_name("F8_E5M2").has_value());
  EXPECT_FALSE(dtype_from_name("f32").has_value());
  EXPECT_FALSE(dtype_from_name("").has_value());
  EXPECT_EQ(dtype_size(DType::F8_E4M3), 1u);
  EXPECT_EQ(dtype_size(DType::BF16), 2u);
  EXPECT_EQ(dtype_size(DType::F32), 4u);
  EXPECT_EQ(dtype_size(DType::I64), 8u);
}
