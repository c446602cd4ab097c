#include "eigenformer/train/metrics.hpp"

#include <cmath>
#include <cstdint>

#include "support/test_support.hpp"

using namespace eigenformer;
using namespace eigenformer::train;

namespace metrics_test {

namespace {

Tensor<std::int64_t> ids(std::initializer_list<std::int64_t> v) {
  return Tensor<std::int64_t>::from(std::vector<std::int64_t>(v), {static_cast<Index>(v.size())});
}

// targets 0 0 0 0 1 1 2 2 2, predictions 0 0 1 2 1 0 2 2 2: rows (true) [2 1 1], [1 1 0], [0 0 3].
ConfusionMatrix three_class() {
  return confusion_matrix(ids({0, 0, 0, 0, 1, 1, 2, 2, 2}), ids({0, 0, 1, 2, 1, 0, 2, 2, 2}), 3);
}

}  // namespace

TEST(ConfusionMatrix, CountsRowsTrueColumnsPredicted) {
  const ConfusionMatrix m = three_class();
  const Index expected[3][3] = {{2, 1, 1}, {1, 1, 0}, {0, 0, 3}};
  for (Index t = 0; t < 3; ++t)
    for (Index p = 0; p < 3; ++p) EXPECT_EQ(m.count(t, p), expected[t][p]) << t << ", " << p;
  EXPECT_EQ(m.total(), 9);
  EXPECT_EQ(m.support(0), 4);
  EXPECT_EQ(m.predicted_count(0), 3);
  EXPECT_EQ(m.predicted_count(2), 4);
}

TEST(ConfusionMatrix, AccuracyPrecisionRecallF1ByHand) {
  const ConfusionMatrix m = three_class();
  EXPECT_DOUBLE_EQ(m.accuracy(), 6.0 / 9.0);
  // class 0: tp 2, predicted 3, support 4; class 1: tp 1, 2, 2; class 2: tp 3, 4, 3.
  EXPECT_DOUBLE_EQ(m.precision(0), 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(m.recall(0), 0.5);
  EXPECT_DOUBLE_EQ(m.f1(0), 4.0 / 7.0);
  EXPECT_DOUBLE_EQ(m.precision(1), 0.5);
  EXPECT_DOUBLE_EQ(m.recall(1), 0.5);
  EXPECT_DOUBLE_EQ(m.f1(1), 0.5);
  EXPECT_DOUBLE_EQ(m.precision(2), 0.75);
  EXPECT_DOUBLE_EQ(m.recall(2), 1.0);
  EXPECT_DOUBLE_EQ(m.f1(2), 6.0 / 7.0);
  EXPECT_DOUBLE_EQ(m.macro_f1(), 9.0 / 14.0);  // (4/7 + 1/2 + 6/7) / 3
}

TEST(ConfusionMatrix, FreeFunctionsAgreeWithTheMatrix) {
  const auto t = ids({0, 0, 0, 0, 1, 1, 2, 2, 2}), p = ids({0, 0, 1, 2, 1, 0, 2, 2, 2});
  EXPECT_DOUBLE_EQ(accuracy(t, p), 6.0 / 9.0);
  EXPECT_DOUBLE_EQ(macro_f1(t, p, 3), 9.0 / 14.0);
  EXPECT_DOUBLE_EQ(accuracy(ids({1, 1}), ids({1, 1})), 1.0);
}

TEST(ConfusionMatrix, ZeroDivisionGivesZeroAndAbsentClassesAreLeftOutOfTheMacroMean) {
  // targets 0 0 1 1, everything predicted 0: class 1 is never predicted (precision 0 / 0 -> 0, F1 0).
  const ConfusionMatrix m = confusion_matrix(ids({0, 0, 1, 1}), ids({0, 0, 0, 0}), 4);
  EXPECT_DOUBLE_EQ(m.precision(1), 0.0);
  EXPECT_DOUBLE_EQ(m.recall(1), 0.0);
  EXPECT_DOUBLE_EQ(m.f1(1), 0.0);
  EXPECT_DOUBLE_EQ(m.f1(0), 2.0 / 3.0);  // precision 1/2, recall 1
  // Classes 2 and 3 occur neither as targets nor as predictions: the mean runs over classes 0 and 1.
  EXPECT_DOUBLE_EQ(m.macro_f1(), 1.0 / 3.0);
  EXPECT_DOUBLE_EQ(m.accuracy(), 0.5);
}

TEST(ConfusionMatrix, EmptyMatrixGivesNaN) {
  const ConfusionMatrix m(2);
  EXPECT_EQ(m.total(), 0);
  EXPECT_TRUE(std::isnan(m.accuracy()));
  EXPECT_TRUE(std::isnan(m.macro_f1()));
  EXPECT_TRUE(std::isnan(accuracy(Tensor<std::int64_t>::zeros({0}), Tensor<std::int64_t>::zeros({0}))));
}

TEST(ConfusionMatrix, MergeAddsCounts) {
  ConfusionMatrix a(2), b(2);
  a.add(0, 0);
  a.add(1, 0);
  b.add(1, 1);
  b.add(1, 0);
  a.merge(b);
  EXPECT_EQ(a.count(0, 0), 1);
  EXPECT_EQ(a.count(1, 0), 2);
  EXPECT_EQ(a.count(1, 1), 1);
  EXPECT_DOUBLE_EQ(a.accuracy(), 0.5);
}

TEST(ConfusionMatrix, ToStringShowsLabelsAndCounts) {
  ConfusionMatrix m(2);
  m.add(0, 0);
  m.add(0, 1);
  m.add(1, 1);
  m.add(1, 1);
  EXPECT_EQ(m.to_string({"ham", "spam"}),
            "true\\pred       ham      spam\n"
            "      ham         1         1\n"
            "     spam         0         2");
  EXPECT_EQ(m.to_string().substr(0, 9), "true\\pred");
}

TEST(ConfusionMatrix, BadInputThrows) {
  EXPECT_THROW_WITH(ConfusionMatrix(0), ValueError, {"ConfusionMatrix", "num_classes is 0"});
  ConfusionMatrix m(2);
  EXPECT_THROW_WITH(m.add(2, 0), ValueError, {"ConfusionMatrix::add", "target class 2", "< 2"});
  EXPECT_THROW_WITH(m.add(0, -1), ValueError, {"ConfusionMatrix::add", "predicted class -1"});
  EXPECT_THROW_WITH(m.add(ids({0, 1}), ids({0})), ShapeError, {"ConfusionMatrix::add", "(2)", "(1)"});
  EXPECT_THROW_WITH(m.merge(ConfusionMatrix(3)), ValueError, {"merge", "3 classes, expected 2"});
  EXPECT_THROW_WITH(m.to_string({"a"}), ValueError, {"to_string", "1 labels for 2 classes"});
  EXPECT_THROW_WITH(m.f1(5), ValueError, {"class 5", "out of range"});
  EXPECT_THROW_WITH(accuracy(ids({0, 1}), ids({0, 1, 1})), ShapeError, {"accuracy", "(2)", "(3)"});
}

}  // namespace metrics_test
