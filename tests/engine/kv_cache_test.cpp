// The paged KV block pool: reference counts, the prefix cache (hash chain, collisions) and LRU
// eviction of released cached blocks.
#include <gtest/gtest.h>

#include <set>

#include "slm/engine/kv_cache.hpp"
#include "slm/util/error.hpp"

using namespace slm;

namespace {

ModelConfig small_config() {
  ModelConfig c;
  c.n_layers = 2;
  c.n_kv_heads = 2;
  c.head_dim = 4;
  return c;
}

TEST(KvCache, AllocatesEveryBlockOnceThenRunsOut) {
  KvCache cache(small_config(), 5, 4);
  EXPECT_EQ(cache.kv_dim(), 8);
  std::set<int32_t> seen;
  for (int i = 0; i < 5; ++i) {
    const int32_t b = cache.allocate();
    ASSERT_GE(b, 0);
    EXPECT_TRUE(seen.insert(b).second);
  }
  EXPECT_EQ(cache.allocate(), -1);
  EXPECT_EQ(cache.used(), 5);
  EXPECT_EQ(cache.available(), 0);
  cache.release(*seen.begin());
  EXPECT_EQ(cache.used(), 4);
  EXPECT_EQ(cache.allocate(), *seen.begin());
}

TEST(KvCache, BlocksHoldSeparateRowsPerLayer) {
  KvCache cache(small_config(), 3, 4);
  const int32_t a = cache.allocate(), b = cache.allocate();
  const auto f32 = [](uint8_t* block) { return reinterpret_cast<float*>(block); };
  for (int l = 0; l < 2; ++l) {
    for (int i = 0; i < 4 * 8; ++i) {
      f32(cache.k_block(l, a))[i] = float(l * 1000 + i);
      f32(cache.k_block(l, b))[i] = float(-l * 1000 - i - 1);
      f32(cache.v_block(l, a))[i] = float(l * 1000 + i + 0.5);
    }
  }
  for (int l = 0; l < 2; ++l) {
    for (int i = 0; i < 4 * 8; ++i) {
      EXPECT_EQ(f32(cache.k_block(l, a))[i], float(l * 1000 + i));
      EXPECT_EQ(f32(cache.k_block(l, b))[i], float(-l * 1000 - i - 1));
      EXPECT_EQ(f32(cache.v_block(l, a))[i], float(l * 1000 + i + 0.5));
    }
  }
}

TEST(KvCache, ReferenceCountsKeepSharedBlocks) {
  KvCache cache(small_config(), 2, 4);
  const int32_t b = cache.allocate();
  cache.retain(b);
  cache.release(b);
  EXPECT_EQ(cache.used(), 1);
  cache.release(b);
  EXPECT_EQ(cache.used(), 0);
  EXPECT_THROW(cache.release(b), Error);
  EXPECT_THROW(cache.retain(b), Error);  // free and never published
}

TEST(KvCache, PublishedBlocksAreFoundByTheirChain) {
  KvCache cache(small_config(), 4, 2);
  const std::vector<int32_t> t1 = {5, 6}, t2 = {7, 8};
  const uint64_t h1 = KvCache::chain_hash(0, t1);
  const uint64_t h2 = KvCache::chain_hash(h1, t2);
  EXPECT_NE(h1, KvCache::chain_hash(0, t2));
  EXPECT_NE(h2, KvCache::chain_hash(0, t2));  // same tokens after another prefix
  const int32_t b1 = cache.allocate(), b2 = cache.allocate();
  cache.publish(b1, h1, t1);
  cache.publish(b2, h2, t2);
  cache.release(b1);
  cache.release(b2);
  EXPECT_EQ(cache.used(), 0);
  EXPECT_EQ(cache.available(), 4);

  EXPECT_EQ(cache.lookup(h1, t1), b1);
  EXPECT_EQ(cache.used(), 1);
  EXPECT_EQ(cache.lookup(h2, std::vector<int32_t>{7, 9}), -1);  // same hash, other tokens
  EXPECT_EQ(cache.lookup(KvCache::chain_hash(0, t2), t2), -1);
  EXPECT_EQ(cache.lookup(h2, t2), b2);
  EXPECT_EQ(cache.used(), 2);
}

TEST(KvCache, FreeBlocksGoBeforeCachedOnesAndCachedOnesLeastRecentlyUsedFirst) {
  KvCache cache(small_config(), 3, 2);
  const std::vector<int32_t> ta = {1, 2}, tb = {3, 4};
  const uint64_t ha = KvCache::chain_hash(0, ta), hb = KvCache::chain_hash(0, tb);
  const int32_t a = cache.allocate(), b = cache.allocate();
  cache.publish(a, ha, ta);
  cache.publish(b, hb, tb);
  cache.release(a);  // a is older in the LRU order than b
  cache.release(b);
  const int32_t c = cache.allocate();  // the never-published block
  EXPECT_NE(c, a);
  EXPECT_NE(c, b);
  EXPECT_EQ(cache.lookup(ha, ta), a);  // touch a: now b is the least recently used
  cache.release(a);
  EXPECT_EQ(cache.allocate(), b);      // evicts b
  EXPECT_EQ(cache.lookup(hb, tb), -1);
  EXPECT_EQ(cache.lookup(ha, ta), a);
}

TEST(KvCache, DuplicatePublishKeepsTheFirst) {
  KvCache cache(small_config(), 2, 2);
  const std::vector<int32_t> t = {9, 9};
  const uint64_t h = KvCache::chain_hash(0, t);
  const int32_t a = cache.allocate(), b = cache.allocate();
  cache.publish(a, h, t);
  cache.publish(b, h, t);
  cache.release(b);  // not published: straight back to the free list
  EXPECT_EQ(cache.lookup(h, t), a);
  EXPECT_EQ(cache.used(), 1);
  EXPECT_EQ(cache.available(), 1);
}

TEST(KvCache, RejectsBadSizes) {
  EXPECT_THROW(KvCache(small_config(), 0, 4), Error);
  EXPECT_THROW(KvCache(small_config(), 4, 0), Error);
}

}  // namespace
