// Paged latent cache: page accounting, refusal when full, rollback.
#include <gtest/gtest.h>

#include "model/kv_cache.h"

using namespace moemesh;

TEST(KvCache, PagesFollowLengths) {
  LatentKvCache c(2, 8, 4, 5);  // 5 pages of 4 tokens
  EXPECT_EQ(c.free_pages(), 5);
  ASSERT_TRUE(c.reserve(1, 6));
  EXPECT_EQ(c.used_pages(), 2);
  c.set_length(1, 6);
  c.row(1, 1, 5)[0] = 123;
  EXPECT_EQ(c.row(1, 1, 5)[0], 123);
  EXPECT_THROW(c.row(1, 0, 8), std::out_of_range);
  EXPECT_THROW(c.row(1, 2, 0), std::out_of_range);
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
}
