#include "eigenformer/data/shuffle.hpp"

#include <algorithm>
#include <cstdint>
#include <map>
#include <random>
#include <vector>

#include "support/test_support.hpp"

using namespace eigenformer;
using namespace eigenformer::data;

namespace shuffle_test {

namespace {

// The expected values below come from an independent Python implementation of MT19937-64 (the reference
// mt19937-64.c, checked against the standard's 10000th value 9981545732273789042) and of the Fisher-Yates and
// rejection rule documented in shuffle.hpp: they pin the permutation a seed gives on every standard library.

TEST(Shuffle, EngineIsTheStandardMt19937_64) {
  std::mt19937_64 gen;  // default seed 5489
  gen.discard(9999);
  EXPECT_EQ(gen(), 9981545732273789042ull);
}

TEST(Shuffle, PermutationMatchesTheReferenceImplementation) {
  std::mt19937_64 a(42);
  EXPECT_EQ(permutation(10, a), (std::vector<Index>{1, 7, 9, 0, 3, 8, 4, 2, 5, 6}));
  std::mt19937_64 b(2024);
  EXPECT_EQ(permutation(7, b), (std::vector<Index>{0, 3, 6, 2, 5, 1, 4}));
}

TEST(Shuffle, UniformBelowMatchesTheReferenceImplementation) {
  std::mt19937_64 gen(7);
  std::vector<std::uint64_t> got;
  for (int i = 0; i < 8; ++i) got.push_back(uniform_below(gen, 3));
  EXPECT_EQ(got, (std::vector<std::uint64_t>{0, 0, 0, 0, 1, 0, 0, 1}));
}

TEST(Shuffle, UniformBelowRejectsTheBiasedDraws) {
  // bound 2^63 + 1: draws below 2^64 mod bound = 2^63 - 1 are rejected. Seed 1's first three draws are: plain
  // modulo would return 2469588189546311528.
  const std::uint64_t bound = (1ull << 63) + 1;
  std::mt19937_64 gen(1);
  EXPECT_EQ(uniform_below(gen, bound), 7588216632478230600ull);
  std::mt19937_64 one(3);
  EXPECT_EQ(uniform_below(one, 1), 0u);
  EXPECT_THROW_WITH(uniform_below(one, 0), ValueError, {"uniform_below", "bound is 0"});
}

TEST(Shuffle, PermutationIsAPermutationAndSeeded) {
  for (Index n : {0, 1, 2, 5, 100}) {
    std::mt19937_64 g1(9), g2(9);
    std::vector<Index> p = permutation(n, g1);
    EXPECT_EQ(p, permutation(n, g2));
    std::sort(p.begin(), p.end());
    for (Index i = 0; i < n; ++i) EXPECT_EQ(p[static_cast<std::size_t>(i)], i);
  }
  std::mt19937_64 g1(1), g2(2);
  EXPECT_NE(permutation(50, g1), permutation(50, g2));
  std::mt19937_64 g(0);
  EXPECT_THROW_WITH(permutation(-1, g), ValueError, {"permutation", "-1"});
}

TEST(Shuffle, AllPermutationsOfThreeAreEquallyLikely) {
  // 60000 shuffles: each of the 6 orders expects 10000, standard deviation ~91; 500 is more than 5 sigma.
  std::mt19937_64 gen(123);
  std::map<std::vector<int>, int> counts;
  for (int i = 0; i < 60000; ++i) {
    std::vector<int> v{0, 1, 2};
    shuffle(v, gen);
    ++counts[v];
  }
  ASSERT_EQ(counts.size(), 6u);
  for (const auto& [order, count] : counts) EXPECT_NEAR(count, 10000, 500);
}

TEST(Shuffle, MixSeedSeparatesSeedsAndStreams) {
  EXPECT_EQ(mix_seed(5, 3), mix_seed(5, 3));
  EXPECT_NE(mix_seed(5, 3), mix_seed(5, 4));
  EXPECT_NE(mix_seed(5, 3), mix_seed(6, 3));
  EXPECT_NE(mix_seed(0, 1), mix_seed(1, 0));
  EXPECT_EQ(splitmix64(0), 0xe220a8397b1dcdafull);  // SplitMix64's first output for state 0 (Vigna's splitmix64.c)
}

}  // namespace

}  // namespace shuffle_test
