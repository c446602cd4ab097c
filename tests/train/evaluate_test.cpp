#include "eigenformer/train/evaluate.hpp"

#include <cmath>
#include <vector>

#include "eigenformer/nn/module.hpp"
#include "support/test_support.hpp"

using namespace eigenformer;
using namespace eigenformer::train;

namespace evaluate_test {

namespace {

/// Logits (B, 2) fixed by the first id of each row: [2, 0] for id 1, [0, 0] otherwise. Records the mode it ran in.
struct StubClassifier : nn::Module<StubClassifier, double> {
  Var<double> forward(const Tensor<std::int64_t>& ids, const Tensor<bool>& padding_mask = {}) {
    ran_in_training_mode = is_training();
    saw_mask = padding_mask.defined();
    const Index b = ids.size(0);
    Tensor<double> z = Tensor<double>::zeros({b, 2});
    for (Index i = 0; i < b; ++i) z[2 * i] = ids(i, 0) == 1 ? 2.0 : 0.0;
    return Var<double>(z);
  }
  template <class V>
  void visit(V&) {}
  bool ran_in_training_mode = true;
  bool saw_mask = false;
};

data::Batcher four_examples(Index batch_size) {
  data::Batcher::Options o;
  o.batch_size = batch_size;
  return data::Batcher({{1, 5}, {1}, {2, 7, 7}, {2}}, {0, 1, 1, 0}, o);
}

}  // namespace

TEST(Evaluate, LossAccuracyAndConfusionByHand) {
  StubClassifier model;
  model.train();
  // Batches of 3 and 1: the mean loss weights every example alike.
  const EvalResult r = evaluate(model, four_examples(3));
  const double l1 = std::log(std::exp(2.0) + 1.0);  // log-sum-exp of [2, 0]
  const double expected_loss = ((l1 - 2.0) + l1 + 2.0 * std::log(2.0)) / 4.0;
  EXPECT_NEAR(r.loss, expected_loss, 1e-12);
  EXPECT_DOUBLE_EQ(r.accuracy, 0.5);  // [0, 0] predicts class 0 (the first maximum)
  EXPECT_EQ(r.confusion.count(0, 0), 2);
  EXPECT_EQ(r.confusion.count(1, 0), 2);
  EXPECT_EQ(r.confusion.count(1, 1), 0);
  EXPECT_DOUBLE_EQ(r.macro_f1, 1.0 / 3.0);  // class 0: 2 tp, 2 fp -> 2/3; class 1: 0
  EXPECT_EQ(r.examples, 4);
  EXPECT_FALSE(model.ran_in_training_mode);
  EXPECT_TRUE(model.saw_mask);
  EXPECT_TRUE(model.is_training());  // the mode is restored
}

TEST(Evaluate, ResultDoesNotDependOnTheBatchSize) {
  StubClassifier model;
  const EvalResult a = evaluate(model, four_examples(1)), b = evaluate(model, four_examples(4));
  EXPECT_NEAR(a.loss, b.loss, 1e-12);
  EXPECT_EQ(a.accuracy, b.accuracy);
}

TEST(Evaluate, EmptyBatcherThrows) {
  StubClassifier model;
  const data::Batcher empty({}, {}, data::Batcher::Options());
  EXPECT_THROW_WITH(evaluate(model, empty), ValueError, {"evaluate", "no examples"});
}

TEST(PredictProba, SoftmaxOfTheLogitsInEvalMode) {
  StubClassifier model;
  model.train();
  const Tensor<double> p = predict_proba(model, Tensor<std::int64_t>::from({1, 3}, {2, 1}));
  ASSERT_EQ(p.shape(), (Shape{2, 2}));
  EXPECT_NEAR(p[0], std::exp(2.0) / (std::exp(2.0) + 1.0), 1e-12);
  EXPECT_NEAR(p[1], 1.0 / (std::exp(2.0) + 1.0), 1e-12);
  EXPECT_NEAR(p[2], 0.5, 1e-12);
  EXPECT_FALSE(model.ran_in_training_mode);
  EXPECT_TRUE(model.is_training());
}

}  // namespace evaluate_test
