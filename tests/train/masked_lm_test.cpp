#include "eigenformer/train/masked_lm.hpp"

#include <random>

#include "eigenformer/nn/bert.hpp"
#include "eigenformer/train/fit.hpp"
#include "support/test_support.hpp"

using namespace eigenformer;
using namespace eigenformer::train;

namespace masked_lm_test {

namespace {

// Ids: 0 [PAD], 1 [CLS], 2 [SEP], 3 [MASK], 4.. words; ids 20.. are "##" pieces.
constexpr std::int64_t kPad = 0, kCls = 1, kSep = 2, kMask = 3;
constexpr Index kVocab = 30;

MaskedLmOptions options() {
  MaskedLmOptions o;
  o.mask_id = kMask;
  o.vocab_size = kVocab;
  o.special_ids = {kPad, kCls, kSep, kMask};
  o.seed = 5;
  return o;
}

/// [CLS] tokens [SEP] sequences of length 6..17, ids from 4 to 19 following a cycle (token t + 1 follows t),
/// so that a model can learn to predict a masked token from its neighbours.
data::Batcher corpus(Index n, std::uint64_t seed, Index batch_size) {
  std::mt19937_64 gen(seed);
  std::vector<std::vector<std::int64_t>> seqs;
  for (Index i = 0; i < n; ++i) {
    std::vector<std::int64_t> s{kCls};
    const auto len = static_cast<Index>(4 + gen() % 12);
    std::int64_t t = static_cast<std::int64_t>(4 + gen() % 16);
    for (Index k = 0; k < len; ++k, t = 4 + (t - 3) % 16) s.push_back(t);
    s.push_back(kSep);
    seqs.push_back(std::move(s));
  }
  data::Batcher::Options o;
  o.batch_size = batch_size;
  o.shuffle = true;
  o.seed = seed;
  o.pad_id = kPad;
  std::vector<std::int64_t> labels(seqs.size(), 0);
  return data::Batcher(std::move(seqs), std::move(labels), o);
}

}  // namespace

TEST(MaskedLm, ChoosesFifteenPercentAndReplacesEightyTenTen) {
  const MaskedLmTask task(options());
  const data::Batcher data = corpus(2000, 1, 2000);
  const data::Batch batch = data.make_batch(data.batch_indices(0)[0]);
  const MaskedBatch m = task.mask(batch, 0);
  Index choosable = 0, masked = 0, random = 0, kept = 0;
  for (Index i = 0; i < batch.ids.numel(); ++i)
    choosable += !batch.padding_mask[i] && batch.ids[i] != kCls && batch.ids[i] != kSep;
  for (Index j = 0; j < m.positions.numel(); ++j) {
    const std::int64_t at = m.positions[j];
    EXPECT_EQ(m.targets[j], batch.ids[at]);
    EXPECT_FALSE(batch.padding_mask[at]);
    EXPECT_NE(batch.ids[at], kCls);
    EXPECT_NE(batch.ids[at], kSep);
    if (m.ids[at] == kMask)
      ++masked;
    else if (m.ids[at] == batch.ids[at])
      ++kept;
    else
      ++random;
  }
  const double chosen = static_cast<double>(m.positions.numel());
  // round(0.15 n) of each sequence's n choosable tokens, at least one: a little above 0.15 for short sequences.
  EXPECT_NEAR(chosen / static_cast<double>(choosable), 0.16, 0.02);
  EXPECT_NEAR(masked / chosen, 0.8, 0.02);
  EXPECT_NEAR(random / chosen, 0.1 * 15.0 / 16.0, 0.02);  // a random draw can hit the original token (16 word ids)
  EXPECT_NEAR(kept / chosen, 0.1 + 0.1 / 16.0, 0.02);
  for (Index i = 0; i < m.ids.numel(); ++i) EXPECT_TRUE(m.ids[i] != kCls || batch.ids[i] == kCls);
}

TEST(MaskedLm, MasksAreAFunctionOfSeedEpochAndExampleOnly) {
  const MaskedLmTask task(options());
  const data::Batcher data = corpus(64, 2, 8);
  // Example 10 alone and inside a batch of others: the same choices.
  const MaskedBatch alone = task.mask(data.make_batch({10}), 3);
  const data::Batch big = data.make_batch({5, 10, 20});
  const MaskedBatch within = task.mask(big, 3);
  const Index Tn = big.ids.size(1), len = data.make_batch({10}).ids.size(1);
  std::vector<std::int64_t> a, b;
  for (Index j = 0; j < alone.positions.numel(); ++j) a.push_back(alone.positions[j]);
  for (Index j = 0; j < within.positions.numel(); ++j)
    if (within.positions[j] / Tn == 1) b.push_back(within.positions[j] % Tn);
  EXPECT_EQ(a, b);
  for (Index t = 0; t < len; ++t) EXPECT_EQ(alone.ids[t], within.ids[Tn + t]);
  // Another epoch, other masks; the same epoch again, the same masks.
  EXPECT_FALSE(task.mask(data.make_batch({10, 11, 12, 13}), 4).ids.equal(task.mask(data.make_batch({10, 11, 12, 13}), 3).ids));
  EXPECT_TRUE(task.mask(data.make_batch({10, 11}), 4).ids.equal(task.mask(data.make_batch({10, 11}), 4).ids));
}

TEST(MaskedLm, WholeWordMaskingChoosesWordsWithTheirPieces) {
  MaskedLmOptions o = options();
  o.whole_word = true;
  o.continuation.assign(kVocab, false);
  for (Index id = 20; id < kVocab; ++id) o.continuation[static_cast<std::size_t>(id)] = true;
  o.probability = 0.5;
  const MaskedLmTask task(o);
  // Words of one to three pieces: 4, 5 ##20, 6 ##21 ##22, ...
  std::vector<std::vector<std::int64_t>> seqs;
  for (int i = 0; i < 50; ++i) seqs.push_back({kCls, 4, 5, 20, 6, 21, 22, 7, 23, kSep});
  data::Batcher data(seqs, std::vector<std::int64_t>(seqs.size(), 0), data::Batcher::Options());
  Index words = 0;
  for (const auto& rows : data.batch_indices(0)) {
    const data::Batch batch = data.make_batch(rows);
    const MaskedBatch m = task.mask(batch, 0);
    std::vector<bool> chosen(static_cast<std::size_t>(batch.ids.numel()), false);
    for (Index j = 0; j < m.positions.numel(); ++j) chosen[static_cast<std::size_t>(m.positions[j])] = true;
    for (Index r = 0; r < batch.ids.size(0); ++r) {
      const Index base = r * batch.ids.size(1);
      // Each word's pieces share its choice: positions 2-3, 4-6, 7-8.
      for (const auto& [first, last] : {std::pair<Index, Index>{2, 3}, {4, 6}, {7, 8}})
        for (Index t = first + 1; t <= last; ++t) EXPECT_EQ(chosen[base + t], chosen[base + first]);
      Index row = 0;
      for (Index t = 1; t <= 8; ++t) row += chosen[base + t];
      EXPECT_TRUE(row == 3 || row == 4) << row;  // round(0.5 * 8) = 4 tokens, whole words of 1, 2 or 3 pieces
      words += row;
    }
  }
  EXPECT_GT(words, 50 * 3);
}

TEST(MaskedLm, PretrainingATinyBertLowersTheValidationLoss) {
  nn::BertConfig c;
  c.vocab_size = kVocab;
  c.hidden_size = 32;
  c.num_hidden_layers = 1;
  c.num_attention_heads = 2;
  c.intermediate_size = 64;
  c.max_position_embeddings = 20;
  c.hidden_dropout_prob = c.attention_probs_dropout_prob = 0;
  nn::BertForMaskedLM<float> model(c);
  const data::Batcher train = corpus(512, 3, 32), valid = corpus(128, 4, 64);
  FitOptions fo;
  fo.epochs = 12;
  fo.lr = 1e-2;
  const FitResult r = fit(model, MaskedLmTask(options()), train, valid, fo);
  ASSERT_EQ(r.history.size(), 12u);
  std::vector<std::string> names;
  for (const auto& [name, value] : r.history[0].metrics) names.push_back(name);
  EXPECT_EQ(names, (std::vector<std::string>{"train_loss", "train_accuracy", "train_perplexity", "valid_loss",
                                             "valid_accuracy", "valid_perplexity"}));
  EXPECT_NEAR(r.history[0].metric("valid_perplexity"), std::exp(r.history[0].metric("valid_loss")), 1e-9);
  // The cycle makes every masked token predictable from its neighbours: well above the 16 word ids' chance of 1/16.
  EXPECT_GT(r.best().metric("valid_accuracy"), 0.25);
  EXPECT_LT(r.best().metric("valid_loss"), r.history[0].metric("valid_loss"));
}

TEST(MaskedLm, BadOptionsThrow) {
  MaskedLmOptions o = options();
  o.probability = 1.5;
  EXPECT_THROW_WITH(MaskedLmTask{o}, ValueError, {"MaskedLmTask", "probability is 1.5"});
  o = options();
  o.mask_id = 40;
  EXPECT_THROW_WITH(MaskedLmTask{o}, ValueError, {"mask_id is 40", "vocab_size 30"});
  o = options();
  o.mask_fraction = 0.95;
  EXPECT_THROW_WITH(MaskedLmTask{o}, ValueError, {"mask_fraction + random_fraction"});
  o = options();
  o.whole_word = true;
  EXPECT_THROW_WITH(MaskedLmTask{o}, ValueError, {"whole_word", "continuation"});
}

}  // namespace masked_lm_test
