// KVCache: the bookkeeping of a decoding step (positions, padding, room) and keys and values written in place.
#include "eigenformer/nn/kv_cache.hpp"

#include "support/test_support.hpp"

using namespace eigenformer;

namespace kv_cache_test {

TEST(KVCache, AStepWritesItsKeysAndValuesAndCountsPositionsWithoutPadding) {
  nn::KVCache<float> cache(2, 2, 5, 3);  // 2 layers, 2 sequences, 5 positions, width 3
  EXPECT_EQ(cache.remaining(), 5);
  const Tensor<bool> padding = Tensor<bool>::from({true, false, false, false, false, false}, {2, 3});
  const Tensor<std::int64_t> positions = cache.begin_step(3, padding);
  EXPECT_TRUE(positions.equal(Tensor<std::int64_t>::from({1, 0, 1, 0, 1, 2}, {2, 3})));
  Tensor<float> qkv = Tensor<float>::empty({2, 3, 9});  // q | k | v
  for (Index i = 0; i < qkv.numel(); ++i) qkv[i] = float(i);
  const float* k_before = cache.keys(1).data();
  cache.append(1, qkv, 3, 6);
  EXPECT_EQ(cache.keys(1).data(), k_before);  // written where it was allocated
  EXPECT_EQ(cache.keys(1)(1, 2, 0), qkv(1, 2, 3));
  EXPECT_EQ(cache.values(1)(0, 1, 2), qkv(0, 1, 8));
  const KeyValueView<float> view = cache.view(1);
  EXPECT_EQ(view.length, 3);
  EXPECT_EQ(view.batch_stride, 15);
  EXPECT_TRUE(view.key_padding.defined());
  EXPECT_EQ(cache.length(), 0);  // until the step ends
  cache.end_step();
  EXPECT_EQ(cache.length(), 3);
  EXPECT_EQ(cache.next_position(0), 2);
  EXPECT_EQ(cache.next_position(1), 3);
  EXPECT_TRUE(cache.has_padding());
  EXPECT_TRUE(cache.begin_step(2).equal(Tensor<std::int64_t>::from({2, 3, 3, 4}, {2, 2})));
  cache.end_step();
  EXPECT_EQ(cache.remaining(), 0);
  EXPECT_THROW_WITH(cache.begin_step(1), ValueError, {"KVCache::begin_step", "holds 5 of its capacity 5"});
  cache.reset();
  EXPECT_EQ(cache.length(), 0);
  EXPECT_FALSE(cache.has_padding());
  EXPECT_EQ(cache.next_position(1), 0);
}

TEST(KVCache, AStepThatIsNotEndedLeavesTheCacheAsItWasAndBadInputThrows) {
  nn::KVCache<float> cache(1, 1, 4, 2);
  cache.begin_step(2);
  cache.end_step();
  cache.begin_step(2, Tensor<bool>::from({true, true}, {1, 2}));  // a forward that fails before end_step
  cache.begin_step(1);
  EXPECT_EQ(cache.view(0).length, 3);
  EXPECT_FALSE(cache.view(0).key_padding.defined());
  cache.end_step();
  EXPECT_EQ(cache.next_position(0), 3);
  EXPECT_THROW_WITH(nn::KVCache<float>(1, 0, 4, 2), ValueError, {"KVCache", "batch is 0"});
  EXPECT_THROW_WITH(cache.begin_step(1, Tensor<bool>::zeros({2, 1})), ShapeError, {"padding is (2, 1)", "(1, 1)"});
  cache.reset();
  cache.begin_step(1);
  EXPECT_THROW_WITH(cache.append(0, Tensor<float>::zeros({1, 1, 3}), 0, 2), ShapeError, {"KVCache::append"});
  EXPECT_THROW_WITH(cache.append(3, Tensor<float>::zeros({1, 1, 6}), 2, 4), ValueError, {"layer 3 is out of range"});
  nn::KVCache<float> none;
  EXPECT_THROW_WITH(none.begin_step(1), ValueError, {"default-constructed"});
}

}  // namespace kv_cache_test
