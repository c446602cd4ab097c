#include "eigenformer/ops/pooling.hpp"

#include "support/test_support.hpp"

using namespace eigenformer;

namespace pooling_test {

using eigenformer::testing::random_var;
using Inputs = std::vector<Var<double>>;
using Mask = Tensor<bool>;

TEST(MaskedMean, ValuesMatchPyTorch) {
  // torch: (x * valid[..., None]).sum(1) / valid.sum(1, keepdim=True), valid = ~padding_mask
  Var<double> x(Tensor<double>::from({-1.014, -0.372, -0.752, -0.862, -0.327, 0.521, 1.262, -1.468, -0.104, 0.518,
                                      -1.084, -2.09},
                                     {2, 3, 2}));
  const Mask mask = Mask::from({false, true, false, false, false, false}, {2, 3});
  const Var<double> y = masked_mean(x, mask);
  EXPECT_EQ(y.shape(), (Shape{2, 2}));
  EXPECT_TRUE(y.value().allclose(
      Tensor<double>::from({-0.6705, 0.07450000000000001, 0.024666666666666615, -1.0133333333333334}, {2, 2}), 1e-14,
      1e-15));
}

TEST(MaskedMean, GradientSpreadsEvenlyOverValidPositions) {
  Var<float> x(Tensor<float>::ones({1, 4, 2}), true);
  Var<float> y = masked_mean(x, Mask::from({false, true, false, false}, {1, 4}));
  y.backward(Tensor<float>::from({3.0f, -6.0f}, {1, 2}));
  EXPECT_TRUE(x.grad().allclose(Tensor<float>::from({1, -2, 0, 0, 1, -2, 1, -2}, {1, 4, 2}), 1e-6f, 1e-7f));
}

TEST(MaskedMean, FullyPaddedSequenceGivesZerosAndZeroGradient) {
  Var<double> x = random_var({2, 3, 4}, 1);
  Var<double> y = masked_mean(x, Mask::from({true, true, true, false, true, false}, {2, 3}));
  for (Index c = 0; c < 4; ++c) EXPECT_EQ(y.value()[c], 0.0);
  for (Index c = 0; c < 4; ++c) EXPECT_NEAR(y.value()[4 + c], (x.value()[12 + c] + x.value()[20 + c]) / 2, 1e-15);
  y.backward(Tensor<double>::ones({2, 4}));
  for (Index i = 0; i < 12; ++i) EXPECT_EQ(x.grad()[i], 0.0);
  EXPECT_EQ(x.grad()[12], 0.5);
}

TEST(MaskedMean, PassesGradcheckOnPartlyPaddedBatches) {
  Var<double> one = random_var({1, 1, 1}, 2);
  EXPECT_GRADCHECK([](const Inputs& v) { return masked_mean(v[0], Mask::from({false}, {1, 1})); }, Inputs{one});
  Var<double> x = random_var({3, 4, 5}, 3);
  const Mask mask =
      Mask::from({false, false, true, true, false, true, false, true, false, false, false, false}, {3, 4});
  EXPECT_GRADCHECK([mask](const Inputs& v) { return masked_mean(v[0], mask); }, Inputs{x});
  const Mask with_empty = Mask::from({true, true, true, true, false, true, false, true, false, false, false, true},
                                     {3, 4});
  EXPECT_GRADCHECK([with_empty](const Inputs& v) { return masked_mean(v[0], with_empty); }, Inputs{x});
}

TEST(MaskedMean, MismatchedShapesThrowShapeErrorNamingBothShapes) {
  Var<float> x(Tensor<float>::zeros({2, 3, 4}));
  EXPECT_THROW_WITH(masked_mean(x, Mask::from({false, false, false, false}, {2, 2})), ShapeError,
                    {"masked_mean", "x is (2, 3, 4)", "padding_mask is (2, 2)"});
  EXPECT_THROW_WITH(masked_mean(Var<float>(Tensor<float>::zeros({2, 3})), Mask::from({false, false}, {2})),
                    ShapeError, {"masked_mean", "x is (2, 3)", "(B, T, C)"});
}

}  // namespace pooling_test
