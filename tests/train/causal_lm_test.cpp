// The causal language-modeling task: transformers' shifted loss, the task's sums and perplexity, and fit() training
// a small GPT-2 on a token stream it can learn, checkpointed and resumed.
#include "eigenformer/train/causal_lm.hpp"

#include <cmath>
#include <filesystem>
#include <vector>

#include "eigenformer/nn/gpt2_lm_head_model.hpp"
#include "eigenformer/train/fit.hpp"
#include "support/test_support.hpp"

using namespace eigenformer;

namespace causal_lm_test {

namespace {

namespace fs = std::filesystem;

nn::GPT2LMHeadModel<float>::Options tiny(Index vocab) {
  nn::GPT2LMHeadModel<float>::Options o;
  o.transformer.vocab_size = vocab;
  o.transformer.n_positions = 16;
  o.transformer.n_embd = 16;
  o.transformer.n_layer = 1;
  o.transformer.n_head = 2;
  o.transformer.resid_pdrop = o.transformer.embd_pdrop = o.transformer.attn_pdrop = 0.0f;
  o.transformer.seed = 5;
  o.bos_token_id = o.eos_token_id = vocab - 1;
  return o;
}

/// A stream the model can learn: the pattern 1 2 3 ... 7 repeated.
std::vector<std::int64_t> pattern(Index n) {
  std::vector<std::int64_t> s(static_cast<std::size_t>(n));
  for (Index i = 0; i < n; ++i) s[static_cast<std::size_t>(i)] = 1 + i % 7;
  return s;
}

}  // namespace

TEST(CausalLm, LossesShiftAsTransformersAndSkipIgnoredTargets) {
  Var<double> logits = eigenformer::testing::random_var({2, 3, 5}, 1);
  const Tensor<std::int64_t> labels = Tensor<std::int64_t>::from({1, 2, -100, 3, 4, 0}, {2, 3});
  // Position t predicts labels t + 1: (0, 0) -> 2, (0, 1) -> ignored, (1, 0) -> 4, (1, 1) -> 0.
  double want = 0;
  const auto term = [&](Index b, Index t, Index target) {
    double z = 0;
    for (Index v = 0; v < 5; ++v) z += std::exp(logits.value()[(b * 3 + t) * 5 + v]);
    return std::log(z) - logits.value()[(b * 3 + t) * 5 + target];
  };
  want = (term(0, 0, 2) + term(1, 0, 4) + term(1, 1, 0)) / 3;
  EXPECT_NEAR(train::causal_lm_loss(logits, labels).item(), want, 1e-12);
  EXPECT_GRADCHECK([&](const std::vector<Var<double>>& x) { return train::causal_lm_loss(x[0], labels); },
                   std::vector<Var<double>>{logits});
  const Tensor<std::int64_t> targets = Tensor<std::int64_t>::from({2, -100, -100, 4, 0, -100}, {2, 3});
  EXPECT_NEAR(train::next_token_loss(logits, targets).item(), want, 1e-12);
  EXPECT_THROW_WITH(train::next_token_loss(logits, Tensor<std::int64_t>::zeros({2, 2})), ShapeError,
                    {"next_token_loss", "targets is (2, 2)"});
}

TEST(CausalLm, TokenBlocksCutTheStreamIntoIdsAndNextTokens) {
  data::TokenBlocks::Options o;
  o.block_size = 4;
  o.batch_size = 2;
  o.shuffle = false;
  const data::TokenBlocks blocks(pattern(14), o);  // 13 predictions: 3 blocks of 4
  EXPECT_EQ(blocks.size(), 3);
  EXPECT_EQ(blocks.num_batches(), 2);
  const data::TokenBlockBatch b = blocks.make_batch({1, 2});
  EXPECT_TRUE(b.ids.equal(Tensor<std::int64_t>::from({5, 6, 7, 1, 2, 3, 4, 5}, {2, 4})));
  EXPECT_TRUE(b.targets.equal(Tensor<std::int64_t>::from({6, 7, 1, 2, 3, 4, 5, 6}, {2, 4})));
  EXPECT_EQ(b.tokens, 8);
  o.shuffle = true;
  o.seed = 3;
  const data::TokenBlocks shuffled(pattern(40), o);
  EXPECT_EQ(shuffled.batch_indices(1), shuffled.batch_indices(1));
  EXPECT_NE(shuffled.batch_indices(0), shuffled.batch_indices(1));
  o.drop_last = true;
  EXPECT_EQ(data::TokenBlocks(pattern(14), o).batch_indices(0).size(), 1u);
  EXPECT_THROW_WITH(data::TokenBlocks(pattern(4), o), ValueError, {"TokenBlocks", "holds 4 tokens", "at least 5"});
  EXPECT_THROW_WITH(blocks.make_batch({3}), ValueError, {"block 3 is out of range"});
}

TEST(CausalLm, FitLearnsAPatternAndReportsPerplexityAndResumes) {
  data::TokenBlocks::Options bo;
  bo.block_size = 8;
  bo.batch_size = 4;
  bo.seed = 1;
  const data::TokenBlocks train_data(pattern(400), bo), valid_data(pattern(81), bo);
  nn::GPT2LMHeadModel<float> model(tiny(8));
  const train::CausalLmTask task;
  const fs::path dir = fs::path(EIGENFORMER_TEST_TMP_DIR) / "causal_lm_test_run";
  fs::remove_all(dir);
  train::FitOptions fo;
  fo.epochs = 2;
  fo.lr = 1e-2;
  fo.schedule = train::ScheduleKind::constant;  // a schedule that does not depend on the number of epochs, and
  fo.warmup_steps = 4;                          // a warmup in steps: 2 epochs resumed to 8 are then 8 epochs
  fo.run_dir = dir;
  const train::FitResult first = train::fit(model, task, train_data, valid_data, fo);
  ASSERT_EQ(first.history.size(), 2u);
  const double ppl1 = first.history[0].metric("valid_perplexity"), ppl2 = first.history[1].metric("valid_perplexity");
  EXPECT_NEAR(first.history[1].metric("valid_perplexity"), std::exp(first.history[1].metric("valid_loss")), 1e-6);
  EXPECT_LT(ppl2, ppl1);
  fo.epochs = 8;
  fo.resume = true;
  fo.allow_changes = {"epochs"};
  nn::GPT2LMHeadModel<float> resumed(tiny(8));
  const train::FitResult second = train::fit(resumed, task, train_data, valid_data, fo);
  ASSERT_EQ(second.history.size(), 8u);
  EXPECT_LT(second.best().metric("valid_perplexity"), 1.5);  // the pattern is deterministic: perplexity -> 1
  // The first two epochs are the first run's, read back from its checkpoint, and the resumed run ends where one
  // uninterrupted run of 8 epochs ends, to the bit.
  for (std::size_t e = 0; e < 2; ++e)
    EXPECT_EQ(second.history[e].metric("valid_loss"), first.history[e].metric("valid_loss")) << "epoch " << e + 1;
  fo.resume = false;
  fo.run_dir = dir.string() + "_straight";
  fs::remove_all(fo.run_dir);
  nn::GPT2LMHeadModel<float> straight(tiny(8));
  const train::FitResult whole = train::fit(straight, task, train_data, valid_data, fo);
  ASSERT_EQ(whole.history.size(), 8u);
  for (std::size_t e = 0; e < 8; ++e)
    EXPECT_EQ(second.history[e].metric("valid_loss"), whole.history[e].metric("valid_loss")) << "epoch " << e + 1;
}

}  // namespace causal_lm_test
