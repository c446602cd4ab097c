// TokenSampler against the arithmetic of transformers' logits processors: repetition penalty, temperature, top-k
// (ties at the k-th kept), top-p (the token that reaches top_p kept), the draw's frequencies, greedy decoding.
#include "eigenformer/runtime/sampling.hpp"

#include <cmath>
#include <vector>

#include "support/test_support.hpp"

using namespace eigenformer;

namespace sampling_test {

namespace {

/// Frequencies of n draws over V tokens.
std::vector<double> frequencies(TokenSampler& s, const std::vector<float>& logits, int n,
                                const std::vector<std::int64_t>& context = {}) {
  std::vector<double> f(logits.size(), 0.0);
  for (int i = 0; i < n; ++i)
    f[static_cast<std::size_t>(s.next(logits.data(), Index(logits.size()), context))] += 1.0 / n;
  return f;
}

std::vector<double> softmax(const std::vector<double>& z, const std::vector<bool>& keep) {
  double total = 0;
  std::vector<double> p(z.size(), 0.0);
  for (std::size_t i = 0; i < z.size(); ++i)
    if (keep[i]) total += p[i] = std::exp(z[i]);
  for (double& v : p) v /= total;
  return p;
}

void expect_frequencies(const std::vector<double>& got, const std::vector<double>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (want[i] == 0)
      EXPECT_EQ(got[i], 0.0) << "token " << i;
    else
      EXPECT_NEAR(got[i], want[i], 0.01) << "token " << i;
  }
}

SamplingOptions sampling(double temperature, Index top_k, double top_p, double penalty = 1.0) {
  SamplingOptions o;
  o.temperature = temperature;
  o.top_k = top_k;
  o.top_p = top_p;
  o.repetition_penalty = penalty;
  return o;
}

}  // namespace

TEST(TokenSampler, DrawsFollowTheSoftmaxAtTheTemperature) {
  const std::vector<float> logits = {1.0f, 2.0f, 3.0f, 0.5f};
  TokenSampler plain(sampling(1.0, 0, 1.0), 7);
  expect_frequencies(frequencies(plain, logits, 100000), softmax({1, 2, 3, 0.5}, {true, true, true, true}));
  TokenSampler cold(sampling(0.5, 0, 1.0), 8);
  expect_frequencies(frequencies(cold, logits, 100000), softmax({2, 4, 6, 1}, {true, true, true, true}));
  TokenSampler greedy(sampling(0.0, 0, 1.0));
  EXPECT_EQ(greedy.next(logits.data(), 4, {}), 2);
  const std::vector<float> tie = {1.0f, 3.0f, 3.0f};
  EXPECT_EQ(greedy.next(tie.data(), 3, {}), 1);  // the first of equal maxima, as torch.argmax
}

TEST(TokenSampler, TopKKeepsTheKLargestAndTheirTies) {
  const std::vector<float> logits = {1.0f, 2.0f, 3.0f, 0.5f};
  TokenSampler top2(sampling(1.0, 2, 1.0), 9);
  expect_frequencies(frequencies(top2, logits, 100000), softmax({1, 2, 3, 0.5}, {false, true, true, false}));
  const std::vector<float> tied = {3.0f, 1.0f, 3.0f, 0.0f};
  TokenSampler top1(sampling(1.0, 1, 1.0), 10);
  expect_frequencies(frequencies(top1, tied, 20000), {0.5, 0, 0.5, 0});
  TokenSampler big(sampling(1.0, 100, 1.0), 11);  // k beyond the vocabulary: every token
  expect_frequencies(frequencies(big, logits, 100000), softmax({1, 2, 3, 0.5}, {true, true, true, true}));
}

TEST(TokenSampler, TopPKeepsTheTokensBeforeTheMassIsReached) {
  // Probabilities 0.5, 0.3, 0.15, 0.05.
  const std::vector<float> logits = {std::log(0.3f), std::log(0.05f), std::log(0.5f), std::log(0.15f)};
  TokenSampler p75(sampling(1.0, 0, 0.75), 12);  // 0.5 then 0.3 (before it: 0.5 < 0.75); 0.15 comes after 0.8
  expect_frequencies(frequencies(p75, logits, 100000), {0.375, 0, 0.625, 0});
  TokenSampler p85(sampling(1.0, 0, 0.85), 13);
  expect_frequencies(frequencies(p85, logits, 100000), {0.3 / 0.95, 0, 0.5 / 0.95, 0.15 / 0.95});
  TokenSampler tiny(sampling(1.0, 0, 1e-9), 14);  // the most likely token is always kept
  expect_frequencies(frequencies(tiny, logits, 1000), {0, 0, 1, 0});
  // With top-k first: top_p measures the mass among the k kept (0.5 / 0.8 = 0.625 reaches 0.6).
  TokenSampler both(sampling(1.0, 2, 0.6), 15);
  expect_frequencies(frequencies(both, logits, 1000), {0, 0, 1, 0});
  // A flat distribution over many tokens: the sort widens past its first blocks; equal scores rank by id, so the
  // nucleus of half the mass is tokens 0 .. 999.
  std::vector<float> flat(2000, 0.0f);
  TokenSampler wide(sampling(1.0, 0, 0.5), 16);
  std::int64_t highest = 0;
  for (int i = 0; i < 2000; ++i) highest = std::max(highest, wide.next(flat.data(), 2000, {}));
  EXPECT_LT(highest, 1000);
  EXPECT_GT(highest, 900);
}

TEST(TokenSampler, RepetitionPenaltyDividesPositiveAndMultipliesNegativeLogits) {
  const std::vector<float> logits = {2.0f, -2.0f, 1.5f};
  TokenSampler greedy(sampling(0.0, 0, 1.0, 2.0));
  EXPECT_EQ(greedy.next(logits.data(), 3, {}), 0);
  EXPECT_EQ(greedy.next(logits.data(), 3, {0, 0, 1}), 2);  // 2 / 2 = 1 < 1.5; each token penalized once
  TokenSampler draw(sampling(1.0, 0, 1.0, 2.0), 17);
  expect_frequencies(frequencies(draw, logits, 100000, {0, 1, 99}), softmax({1, -4, 1.5}, {true, true, true}));
}

TEST(TokenSampler, ASeedGivesTheSameDrawsAndBadOptionsThrow) {
  const std::vector<float> logits = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f};
  TokenSampler a(sampling(1.0, 0, 1.0), 5), b(sampling(1.0, 0, 1.0), 5);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(a.next(logits.data(), 5, {}), b.next(logits.data(), 5, {}));
  EXPECT_THROW_WITH(TokenSampler(sampling(-1.0, 0, 1.0)), ValueError, {"temperature is -1", "0 = greedy"});
  EXPECT_THROW_WITH(TokenSampler(sampling(NAN, 0, 1.0)), ValueError, {"temperature is nan"});
  EXPECT_THROW_WITH(TokenSampler(sampling(1.0, 0, 0.0)), ValueError, {"top_p is 0", "0 < top_p <= 1"});
  EXPECT_THROW_WITH(TokenSampler(sampling(1.0, 0, 1.01)), ValueError, {"top_p is 1.01"});
  EXPECT_THROW_WITH(TokenSampler(sampling(1.0, -1, 1.0)), ValueError, {"top_k is -1"});
  EXPECT_THROW_WITH(TokenSampler(sampling(1.0, 0, 1.0, -2.0)), ValueError, {"repetition_penalty is -2"});
  EXPECT_THROW_WITH(a.next(logits.data(), 0, {}), ValueError, {"TokenSampler::next", "0 logits"});
}

}  // namespace sampling_test
