// Paged latent cache: page accounting, refusal when full, rollback; each dtype's
// rounding and memory.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/dtype.h"
#include "model/kv_cache.h"

using namespace moemesh;

TEST(KvCache, PagesFollowLengths) {
  LatentKvCache c(2, 8, 4, 5);  // 5 pages of 4 tokens
  EXPECT_EQ(c.free_pages(), 5);
  ASSERT_TRUE(c.reserve(1, 6));
  EXPECT_EQ(c.used_pages(), 2);
  c.set_length(1, 6);
  c.row_bf16(1, 1, 5)[0] = 123;
  EXPECT_EQ(c.row_bf16(1, 1, 5)[0], 123);
  EXPECT_THROW(c.row_bf16(1, 0, 8), std::out_of_range);
  EXPECT_THROW(c.row_bf16(1, 2, 0), std::out_of_range);
  ASSERT_TRUE(c.reserve(2, 12));
  EXPECT_EQ(c.free_pages(), 0);
  // Full: refused, nothing changes, the sequence is not created.
  EXPECT_FALSE(c.reserve(3, 1));
  EXPECT_FALSE(c.has(3));
  EXPECT_FALSE(c.reserve(1, 9));
  EXPECT_EQ(c.length(1), 6);
  // Rollback frees whole pages past the new length.
  c.truncate(1, 3);
  EXPECT_EQ(c.length(1), 3);
  EXPECT_EQ(c.free_pages(), 1);
  c.release(2);
  EXPECT_EQ(c.free_pages(), 4);
  c.release(1);
  EXPECT_EQ(c.free_pages(), 5);
  EXPECT_TRUE(c.sequences().empty());
}

TEST(KvCache, RejectsBadGeometry) {
  EXPECT_THROW(LatentKvCache(0, 8, 4, 5), std::invalid_argument);
  EXPECT_THROW(LatentKvCache(1, 8, 4, 0), std::invalid_argument);
  EXPECT_THROW(LatentKvCache(KvCacheGeometry{1, 0, 0, 4, 4, KvCacheDtype::FP8}), std::invalid_argument);
}

TEST(KvCache, EveryDtypeStoresWhatItPromises) {
  const int64_t latent = 96, rope = 16, D = latent + rope;
  std::mt19937 rng(3);
  std::normal_distribution<float> nd;
  std::vector<float> v(D), back(D);
  for (int64_t d = 0; d < D; ++d) v[d] = d < latent ? nd(rng) : 40.0f * nd(rng);  // rope keys larger
  v[5] = 0.0f;
  for (KvCacheDtype t : {KvCacheDtype::F32, KvCacheDtype::BF16, KvCacheDtype::FP8}) {
    LatentKvCache c(KvCacheGeometry{3, latent, rope, 8, 4, t});
    ASSERT_TRUE(c.reserve(7, 10));
    c.store(7, 2, 9, v.data());
    c.load(7, 2, 9, back.data());
    EXPECT_EQ(back[5], 0.0f) << kv_cache_dtype_name(t);
    for (int64_t d = 0; d < D; ++d) {
      switch (t) {
        case KvCacheDtype::F32: ASSERT_EQ(back[d], v[d]); break;
        case KvCacheDtype::BF16: ASSERT_EQ(back[d], round_to_bf16(v[d])); break;
        case KvCacheDtype::FP8: {
          // e4m3 keeps 3 mantissa bits of each value relative to its part's largest.
          float amax = 0;
          for (int64_t e = d < latent ? 0 : latent; e < (d < latent ? latent : D); ++e) amax = std::max(amax, std::fabs(v[e]));
          ASSERT_LE(std::fabs(back[d] - v[d]), std::max(std::fabs(v[d]) / 16.0f, amax / 448.0f / 64.0f)) << d;
          break;
        }
      }
    }
    // The page view shows the same row.
    const auto pv = c.page(7, 2, 1);
    const int64_t slot = 9 - 8;
    if (t == KvCacheDtype::BF16)
      EXPECT_EQ(bf16_to_f32(static_cast<const uint16_t*>(pv.rows)[slot * D + 3]), back[3]);
    if (t == KvCacheDtype::FP8) {
      ASSERT_NE(pv.scales, nullptr);
      EXPECT_EQ(fp8e4m3_to_f32(static_cast<const uint8_t*>(pv.rows)[slot * D + 3]) * pv.scales[2 * slot], back[3]);
      EXPECT_EQ(fp8e4m3_to_f32(static_cast<const uint8_t*>(pv.rows)[slot * D + latent + 2]) * pv.scales[2 * slot + 1],
                back[latent + 2]);
    } else {
      EXPECT_EQ(pv.scales, nullptr);
    }
  }
}

TEST(KvCache, Fp8TakesHalfTheMemoryOfBf16) {
  // DeepSeek-V3's latent: kv_lora_rank 512 + rope 64, 61 layers.
  const KvCacheGeometry g{61, 512, 64, 64, 10, KvCacheDtype::BF16};
  KvCacheGeometry g8 = g, g32 = g;
  g8.dtype = KvCacheDtype::FP8;
  g32.dtype = KvCacheDtype::F32;
  const LatentKvCache b(g), f(g8), w(g32);
  EXPECT_EQ(b.page_bytes(), size_t(61) * 64 * 576 * 2);
  EXPECT_EQ(w.page_bytes(), 2 * b.page_bytes());
  EXPECT_LE(static_cast<double>(f.page_bytes()), 0.51 * static_cast<double>(b.page_bytes()));
  EXPECT_GE(static_cast<double>(f.page_bytes()), 0.5 * static_cast<double>(b.page_bytes()));
  EXPECT_EQ(f.storage_bytes(), 10 * f.page_bytes());
  std::printf("bytes per token: f32 %.0f, bf16 %.0f, fp8 %.0f\n", w.bytes_per_token(), b.bytes_per_token(),
              f.bytes_per_token());
}
