#include "eigenformer/ops/loss.hpp"

#include <cmath>

#include "support/test_support.hpp"

using namespace eigenformer;

namespace loss_test {

using eigenformer::testing::random_var;
using Inputs = std::vector<Var<double>>;
using Targets = Tensor<std::int64_t>;

namespace {

const std::vector<double> kLogits = {0.278,  -1.874, 1.461, -0.531, 0.987, -1.328, -1.183, -1.138, 0.85,  2.311,
                                     -0.295, 0.147,  0.123, -1.325, -1.316, -1.819, 1.253, 0.399, 1.444, -1.995};

}  // namespace

TEST(CrossEntropy, LabelSmoothingWithAnIgnoredTargetMatchesPyTorch) {
  // torch.nn.functional.cross_entropy(z, [1, -100, 4, 0], label_smoothing=0.1)
  Var<double> z(Tensor<double>::from(kLogits, {4, 5}), true);
  CrossEntropyOptions options;
  options.label_smoothing = 0.1;
  Var<double> loss = cross_entropy(z, Targets::from({1, -100, 4, 0}, {4}), options);
  EXPECT_EQ(loss.shape(), Shape{});
  EXPECT_NEAR(loss.item(), 3.4329325716863264, 1e-13);
  loss.backward();
  EXPECT_TRUE(z.grad().allclose(
      Tensor<double>::from({0.04194074434135895, -0.3010159860040711, 0.15199531045301307, 0.014978366412636678,
                            0.09210156479706232, 0.0, 0.0, 0.0, 0.0, 0.0, 0.06289403253280439, 0.10155696406347263,
                            0.09899051747328524, 0.018166987129601214, -0.28160850119916353, -0.30099197911121833,
                            0.11582163214811614, 0.045477666192904984, 0.1416004524030458, -0.0019077716328486183},
                           {4, 5}),
      1e-12, 1e-15));
}

TEST(CrossEntropy, WithoutSmoothingMatchesPyTorch) {
  Var<double> z(Tensor<double>::from(kLogits, {4, 5}), true);
  Var<double> loss = cross_entropy(z, Targets::from({1, -100, 4, 0}, {4}));
  EXPECT_NEAR(loss.item(), 3.579479238352993, 1e-13);
  loss.backward();
  EXPECT_TRUE(z.grad().allclose(
      Tensor<double>::from({0.048607411008025625, -0.32768265267073776, 0.15866197711967975, 0.02164503307930335,
                            0.098768231463729, 0.0, 0.0, 0.0, 0.0, 0.0, 0.06956069919947105, 0.10822363073013931,
                            0.10565718413995193, 0.024833653796267886, -0.3082751678658302, -0.327658645777885,
                            0.12248829881478282, 0.05214433285957166, 0.1482671190697125, 0.00475889503381805},
                           {4, 5}),
      1e-12, 1e-15));
}

TEST(CrossEntropy, LargeLogitsStayFiniteInFloat) {
  // torch, float32: loss 5000.3466796875, grad [[0.5, -0.5, 0], [0, 0.25, -0.25]]
  Var<float> z(Tensor<float>::from({1e4f, 0.0f, -1e4f, 0.0f, 1e4f, 1e4f}, {2, 3}), true);
  Var<float> loss = cross_entropy(z, Targets::from({1, 2}, {2}));
  EXPECT_TRUE(std::isfinite(loss.item()));
  EXPECT_NEAR(loss.item(), 5000.3466796875f, 1e-3f);
  loss.backward();
  EXPECT_TRUE(z.grad().allclose(Tensor<float>::from({0.5f, -0.5f, 0.0f, 0.0f, 0.25f, -0.25f}, {2, 3}), 1e-6f, 1e-7f));
}

TEST(CrossEntropy, EveryTargetIgnoredGivesNaNAndZeroGradient) {
  Var<double> z = random_var({3, 4}, 1);
  Var<double> loss = cross_entropy(z, Targets::from({-100, -100, -100}, {3}));
  EXPECT_TRUE(std::isnan(loss.item()));
  loss.backward();
  EXPECT_TRUE(z.grad().equal(Tensor<double>::zeros({3, 4})));
}

TEST(CrossEntropy, CustomIgnoreIndexSkipsThoseTargets) {
  // With ignore_index = 2 the rows targeting class 2 drop out of the mean.
  Var<double> z = random_var({4, 3}, 2);
  CrossEntropyOptions ignore_two;
  ignore_two.ignore_index = 2;
  const double with_ignored = cross_entropy(z, Targets::from({0, 2, 1, 2}, {4}), ignore_two).item();
  Var<double> kept(Tensor<double>::from({z.value()[0], z.value()[1], z.value()[2], z.value()[6], z.value()[7],
                                         z.value()[8]},
                                        {2, 3}));
  EXPECT_NEAR(with_ignored, cross_entropy(kept, Targets::from({0, 1}, {2})).item(), 1e-14);
}

TEST(CrossEntropy, PassesGradcheckWithSmoothingAndIgnoredTargets) {
  CrossEntropyOptions smooth;
  smooth.label_smoothing = 0.1;
  CrossEntropyOptions full_smooth;
  full_smooth.label_smoothing = 1.0;
  CrossEntropyOptions ignore_one;
  ignore_one.ignore_index = 1;
  const std::vector<std::tuple<Shape, std::vector<std::int64_t>, CrossEntropyOptions>> cases = {
      {{1, 1}, {0}, {}},
      {{1, 1}, {0}, smooth},
      {{4, 5}, {1, -100, 4, 0}, {}},
      {{4, 5}, {1, -100, 4, 0}, smooth},
      {{3, 7}, {6, 0, 3}, full_smooth},
      {{5, 2}, {1, 0, 1, 0, 0}, ignore_one},
  };
  std::uint64_t seed = 10;
  for (const auto& [shape, targets, options] : cases) {
    Var<double> z = random_var(shape, seed++);
    const Targets t = Targets::from(targets, {static_cast<Index>(targets.size())});
    const CrossEntropyOptions o = options;
    EXPECT_GRADCHECK([t, o](const Inputs& v) { return cross_entropy(v[0], t, o); }, Inputs{z});
  }
}

TEST(CrossEntropy, BadTargetsThrowValueErrorNamingTheTargetPositionAndC) {
  Var<float> z(Tensor<float>::zeros({3, 5}));
  EXPECT_THROW_WITH(cross_entropy(z, Targets::from({0, 1, 5}, {3})), ValueError,
                    {"cross_entropy", "target 5", "position 2", "C = 5"});
  EXPECT_THROW_WITH(cross_entropy(z, Targets::from({-1, 1, 2}, {3})), ValueError,
                    {"cross_entropy", "target -1", "position 0", "ignore_index -100"});
  CrossEntropyOptions bad_smoothing;
  bad_smoothing.label_smoothing = 1.5;
  EXPECT_THROW_WITH(cross_entropy(z, Targets::from({0, 1, 2}, {3}), bad_smoothing), ValueError,
                    {"cross_entropy", "label_smoothing is 1.5"});
}

TEST(CrossEntropy, BadShapesThrowShapeError) {
  Var<float> z(Tensor<float>::zeros({3, 5}));
  EXPECT_THROW_WITH(cross_entropy(z, Targets::from({0, 1}, {2})), ShapeError,
                    {"cross_entropy", "targets is (2)", "logits is (3, 5)", "targets (3)"});
  EXPECT_THROW_WITH(cross_entropy(z, Targets::from({0, 1, 2}, {3, 1})), ShapeError, {"targets is (3, 1)"});
  EXPECT_THROW_WITH(cross_entropy(Var<float>(Tensor<float>::zeros({5})), Targets::from({0}, {1})), ShapeError,
                    {"cross_entropy", "logits is (5)", "(N, C)"});
}

}  // namespace loss_test
