#include "eigenformer/data/batcher.hpp"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <random>
#include <set>
#include <vector>

#include "support/test_support.hpp"

using namespace eigenformer;
using namespace eigenformer::data;

namespace batcher_test {

namespace {

using Sequences = std::vector<std::vector<std::int64_t>>;

Batcher::Options options(Index batch_size, bool shuffle = false, bool drop_last = false, std::uint64_t seed = 0,
                         Index bucket_batches = 0) {
  Batcher::Options o;
  o.batch_size = batch_size;
  o.shuffle = shuffle;
  o.drop_last = drop_last;
  o.seed = seed;
  o.bucket_batches = bucket_batches;
  return o;
}

/// n sequences with lengths drawn uniformly from [1, max_len] (seeded); token t of sequence i is 1000 * i + t,
/// so a row of a batch tells which sequence it holds. Labels are i % 2.
Batcher make_batcher(Index n, Index max_len, const Batcher::Options& o, std::uint64_t seed = 5) {
  std::mt19937_64 gen(seed);
  Sequences seqs;
  std::vector<std::int64_t> labels;
  for (Index i = 0; i < n; ++i) {
    const auto len = static_cast<Index>(uniform_below(gen, static_cast<std::uint64_t>(max_len))) + 1;
    std::vector<std::int64_t> s;
    for (Index t = 0; t < len; ++t) s.push_back(1000 * i + t);
    seqs.push_back(std::move(s));
    labels.push_back(i % 2);
  }
  return Batcher(std::move(seqs), std::move(labels), o);
}

/// Pad positions of a whole epoch: sum over batches of B * T - tokens.
Index padding_of(const Batcher& b, Index epoch) {
  Index pad = 0;
  for (const Batch& batch : b.epoch(epoch)) pad += batch.ids.numel() - batch.tokens;
  return pad;
}

std::vector<Index> flatten(const std::vector<std::vector<Index>>& batches) {
  std::vector<Index> out;
  for (const auto& b : batches) out.insert(out.end(), b.begin(), b.end());
  return out;
}

/// True when every index 0..n-1 occurs exactly once.
bool is_permutation_of_range(std::vector<Index> v, Index n) {
  std::sort(v.begin(), v.end());
  if (static_cast<Index>(v.size()) != n) return false;
  for (Index i = 0; i < n; ++i)
    if (v[static_cast<std::size_t>(i)] != i) return false;
  return true;
}

TEST(Batcher, PadsToTheLongestSequenceAndMasksThePadding) {
  Batcher::Options o = options(2);
  o.pad_id = 99;
  const Batcher b(Sequences{{1, 2, 3}, {4}, {5, 6}}, {0, 1, 7}, o);
  ASSERT_EQ(b.num_batches(), 2);
  const std::vector<Batch> batches = b.epoch(0);
  ASSERT_EQ(batches.size(), 2u);

  const Batch& first = batches[0];
  EXPECT_TRUE(first.ids.equal(Tensor<std::int64_t>::from({1, 2, 3, 4, 99, 99}, {2, 3})));
  EXPECT_TRUE(first.padding_mask.equal(Tensor<bool>::from({false, false, false, false, true, true}, {2, 3})));
  EXPECT_TRUE(first.labels.equal(Tensor<std::int64_t>::from({0, 1}, {2})));
  EXPECT_EQ(first.indices, (std::vector<Index>{0, 1}));
  EXPECT_EQ(first.tokens, 4);

  const Batch& last = batches[1];  // the short last batch is padded to its own longest sequence, not the first's
  EXPECT_TRUE(last.ids.equal(Tensor<std::int64_t>::from({5, 6}, {1, 2})));
  EXPECT_TRUE(last.padding_mask.equal(Tensor<bool>::from({false, false}, {1, 2})));
  EXPECT_TRUE(last.labels.equal(Tensor<std::int64_t>::from({7}, {1})));
  EXPECT_EQ(last.indices, (std::vector<Index>{2}));
  EXPECT_EQ(last.tokens, 2);
}

TEST(Batcher, MakeBatchFollowsTheGivenRows) {
  const Batcher b(Sequences{{1}, {2, 3}, {4, 5, 6}}, {10, 11, 12}, options(8));
  const Batch batch = b.make_batch({2, 0, 2});
  EXPECT_TRUE(batch.ids.equal(Tensor<std::int64_t>::from({4, 5, 6, 1, 0, 0, 4, 5, 6}, {3, 3})));
  EXPECT_TRUE(batch.padding_mask.equal(
      Tensor<bool>::from({false, false, false, false, true, true, false, false, false}, {3, 3})));
  EXPECT_TRUE(batch.labels.equal(Tensor<std::int64_t>::from({12, 10, 12}, {3})));
  EXPECT_EQ(batch.tokens, 7);
}

TEST(Batcher, WithoutShuffleEveryEpochIsInOrder) {
  const Batcher b = make_batcher(10, 5, options(3));
  EXPECT_EQ(b.num_batches(), 4);
  const std::vector<std::vector<Index>> expected = {{0, 1, 2}, {3, 4, 5}, {6, 7, 8}, {9}};
  EXPECT_EQ(b.batch_indices(0), expected);
  EXPECT_EQ(b.batch_indices(7), expected);
}

TEST(Batcher, DropLastLeavesOnlyFullBatches) {
  const Batcher in_order = make_batcher(10, 5, options(3, false, true));
  EXPECT_EQ(in_order.num_batches(), 3);
  EXPECT_EQ(in_order.batch_indices(0), (std::vector<std::vector<Index>>{{0, 1, 2}, {3, 4, 5}, {6, 7, 8}}));

  for (Index bucket : {0, 2}) {
    const Batcher shuffled = make_batcher(103, 40, options(10, true, true, 3, bucket));
    EXPECT_EQ(shuffled.num_batches(), 10);
    std::set<Index> dropped_in_some_epoch;
    for (Index e = 0; e < 4; ++e) {
      const std::vector<Batch> batches = shuffled.epoch(e);
      ASSERT_EQ(static_cast<Index>(batches.size()), 10);
      std::set<Index> seen;
      for (const Batch& batch : batches) {
        EXPECT_EQ(batch.ids.size(0), 10);
        EXPECT_EQ(batch.labels.numel(), 10);
        seen.insert(batch.indices.begin(), batch.indices.end());
      }
      EXPECT_EQ(seen.size(), 100u);  // distinct rows: 3 of the 103 left out
      for (Index i = 0; i < 103; ++i)
        if (!seen.count(i)) dropped_in_some_epoch.insert(i);
    }
    EXPECT_GT(dropped_in_some_epoch.size(), 3u);  // shuffled: not always the same three
  }
  EXPECT_EQ(make_batcher(2, 5, options(3, true, true)).num_batches(), 0);
  EXPECT_TRUE(make_batcher(2, 5, options(3, true, true)).epoch(0).empty());
}

TEST(Batcher, ShuffleIsAFunctionOfSeedAndEpoch) {
  const Batcher a = make_batcher(50, 10, options(4, true, false, 11));
  const Batcher b = make_batcher(50, 10, options(4, true, false, 11));
  const Batcher other_seed = make_batcher(50, 10, options(4, true, false, 12));
  EXPECT_EQ(a.num_batches(), 13);
  // A resumed run asks for epoch 3 first: same order as a run that went through epochs 0-2.
  const auto resumed = b.batch_indices(3);
  for (Index e = 0; e < 3; ++e) (void)a.batch_indices(e);
  EXPECT_EQ(a.batch_indices(3), resumed);
  EXPECT_EQ(a.batch_indices(0), b.batch_indices(0));
  EXPECT_NE(a.batch_indices(0), a.batch_indices(1));
  EXPECT_NE(a.batch_indices(0), other_seed.batch_indices(0));
  for (Index e = 0; e < 3; ++e) EXPECT_TRUE(is_permutation_of_range(flatten(a.batch_indices(e)), 50));
  // The order is the portable permutation of the epoch's engine (pinned in shuffle_test).
  std::mt19937_64 gen(mix_seed(11, 2));
  EXPECT_EQ(flatten(a.batch_indices(2)), permutation(50, gen));
  // Batches carry the rows the order names.
  for (const Batch& batch : a.epoch(1))
    for (std::size_t r = 0; r < batch.indices.size(); ++r) {
      const Index i = batch.indices[r];
      EXPECT_EQ(batch.ids(static_cast<Index>(r), 0), 1000 * i);
      EXPECT_EQ(batch.labels[static_cast<Index>(r)], i % 2);
    }
}

TEST(Batcher, BucketingReducesPadding) {
  const Index n = 1000, batch_size = 16;
  const Batcher plain = make_batcher(n, 200, options(batch_size, true, false, 21));
  const Batcher bucketed = make_batcher(n, 200, options(batch_size, true, false, 21, 50));
  EXPECT_EQ(bucketed.num_batches(), plain.num_batches());
  for (Index e = 0; e < 2; ++e) {
    // Uniform lengths in [1, 200]: a random batch of 16 pads to ~190 and wastes about half its positions; sorted
    // chunks of 800 sequences pad a batch by a few positions.
    const Index pad_plain = padding_of(plain, e), pad_bucketed = padding_of(bucketed, e);
    EXPECT_LT(pad_bucketed * 10, pad_plain) << "epoch " << e << ": " << pad_bucketed << " vs " << pad_plain;
    EXPECT_TRUE(is_permutation_of_range(flatten(bucketed.batch_indices(e)), n));
  }
  // Each epoch mixes both the chunks and the batch order; a second instance replays it.
  EXPECT_NE(bucketed.batch_indices(0), bucketed.batch_indices(1));
  const Batcher again = make_batcher(n, 200, options(batch_size, true, false, 21, 50));
  EXPECT_EQ(again.batch_indices(1), bucketed.batch_indices(1));
  // The batch order is shuffled: in chunk order the widths would fall only where a chunk ends (once: 1000
  // sequences make 2 chunks of 50 batches); shuffled they fall about every other batch.
  Index falls = 0;
  const std::vector<Batch> batches = bucketed.epoch(0);
  for (std::size_t i = 1; i < batches.size(); ++i) falls += batches[i].ids.size(1) < batches[i - 1].ids.size(1);
  EXPECT_GT(falls, 10);
}

TEST(Batcher, BucketingWithoutShuffleSortsEachChunk) {
  // Lengths 5, 4, 3, 2, 1, 6, 5, 4: chunks of 2 batches of 2 (4 sequences) sorted by length, ties in order.
  const Sequences seqs = {{1, 1, 1, 1, 1}, {1, 1, 1, 1}, {1, 1, 1}, {1, 1},
                          {1},             {1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 1}, {1, 1, 1, 1}};
  const Batcher b(seqs, std::vector<std::int64_t>(8, 0), options(2, false, false, 0, 2));
  EXPECT_EQ(b.batch_indices(0), (std::vector<std::vector<Index>>{{3, 2}, {1, 0}, {4, 7}, {6, 5}}));
  EXPECT_EQ(b.batch_indices(1), b.batch_indices(0));
}

TEST(Batcher, EmptyBatcherHasNoBatches) {
  const Batcher b(Sequences{}, {}, options(4, true));
  EXPECT_EQ(b.size(), 0);
  EXPECT_EQ(b.num_batches(), 0);
  EXPECT_TRUE(b.epoch(0).empty());
}

TEST(Batcher, HugeBatchSizesMakeOneBatchWithoutOverflow) {
  // Batch sizes up to the largest Index: no sum or product in the batcher overflows (n + b - 1, bucket_batches * b,
  // begin + b), so a batch size past the data is one batch of everything.
  const Index max = std::numeric_limits<Index>::max();
  for (const Index b : {Index(7), Index(4611686018427387904), max - 1, max})
    for (const Index buckets : {Index(0), Index(50), max}) {
      const Batcher batcher = make_batcher(7, 5, options(b, true, false, 3, buckets));
      EXPECT_EQ(batcher.num_batches(), 1) << b;
      const std::vector<std::vector<Index>> batches = batcher.batch_indices(2);
      ASSERT_EQ(batches.size(), 1u) << b;
      EXPECT_TRUE(is_permutation_of_range(batches[0], 7)) << b;
      EXPECT_EQ(batcher.make_batch(batches[0]).ids.size(0), 7);
      const Batcher dropping = make_batcher(7, 5, options(b, true, true, 3, buckets));
      EXPECT_EQ(dropping.num_batches(), b == 7 ? 1 : 0) << b;
      EXPECT_EQ(dropping.batch_indices(0).size(), b == 7 ? 1u : 0u) << b;
    }
  // Large bucket counts with small batches: chunks of everything, batches of b.
  const Batcher b = make_batcher(10, 5, options(3, true, false, 1, max / 2));
  EXPECT_EQ(b.num_batches(), 4);
  EXPECT_TRUE(is_permutation_of_range(flatten(b.batch_indices(0)), 10));
}

TEST(Batcher, BadInputThrows) {
  EXPECT_THROW_WITH(Batcher(Sequences{{1}, {2}}, {0}, options(2)), ShapeError,
                    {"Batcher", "2 sequences", "1 labels"});
  EXPECT_THROW_WITH(Batcher(Sequences{{1}}, {0}, options(0)), ValueError, {"Batcher", "batch_size is 0"});
  EXPECT_THROW_WITH(Batcher(Sequences{{1}, {}}, {0, 1}, options(2)), ValueError, {"Batcher", "sequences[1] (example 2) is empty"});
  EXPECT_THROW_WITH(Batcher(Sequences{{1}}, {0}, options(2, true, false, 0, -1)), ValueError,
                    {"Batcher", "bucket_batches is -1"});
  const Batcher b(Sequences{{1}, {2, 3}}, {0, 1}, options(2));
  EXPECT_THROW_WITH(b.make_batch({0, 2}), ValueError, {"Batcher::make_batch", "index 2", "2 sequences"});
  EXPECT_THROW_WITH(b.make_batch({}), ValueError, {"Batcher::make_batch", "empty"});
  EXPECT_THROW_WITH(b.epoch(-1), ValueError, {"Batcher::batch_indices", "epoch_number is -1"});
}

}  // namespace

}  // namespace batcher_test
