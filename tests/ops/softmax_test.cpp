#include "eigenformer/ops/softmax.hpp"

#include <cmath>
#include <limits>

#include "support/test_support.hpp"

using namespace eigenformer;

namespace softmax_test {

using eigenformer::testing::random_var;
using Inputs = std::vector<Var<double>>;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

bool all_finite(const Tensor<double>& t) {
  for (Index i = 0; i < t.numel(); ++i)
    if (!std::isfinite(t[i])) return false;
  return true;
}

}  // namespace

TEST(Softmax, ValuesWithAMaskedEntryMatchPyTorch) {
  Var<double> x(Tensor<double>::from({0.5, -1.25, -kInf, 2.0, 1.0, 2.0, 3.0, 4.0}, {2, 4}));
  const Tensor<double> expected =
      Tensor<double>::from({0.17682018210744427, 0.03072674032643643, 0.0, 0.7924530775661193, 0.03205860328008499,
                            0.08714431874203257, 0.23688281808991016, 0.6439142598879724},
                           {2, 4});
  EXPECT_TRUE(softmax(x).value().allclose(expected, 1e-14, 1e-16));

  const Tensor<double> ls = log_softmax(x).value();
  EXPECT_EQ(ls[2], -kInf);  // a masked entry of a live row stays -inf, as in torch
  const std::vector<double> expected_log = {-1.7326219831020326, -3.4826219831020326, -kInf, -0.23262198310203266,
                                            -3.4401896985611953, -2.4401896985611953, -1.4401896985611953,
                                            -0.44018969856119533};
  for (Index i : {0, 1, 3, 4, 5, 6, 7}) EXPECT_NEAR(ls[i], expected_log[static_cast<std::size_t>(i)], 1e-14);
}

TEST(Softmax, GradientsMatchPyTorch) {
  Var<double> x(Tensor<double>::from({0.5, -1.25, 3.0, 2.0, 1.0, 2.0, 3.0, 4.0}, {2, 4}), true);
  const Tensor<double> g = Tensor<double>::from({0.3, -0.2, 0.1, 0.7, -1.0, 0.5, 0.25, 0.0}, {2, 4});
  softmax(x).backward(g);
  EXPECT_TRUE(x.grad().allclose(
      Tensor<double>::from({0.002296438966098288, -0.004471842506506765, -0.10861433284587126, 0.11078973638627973,
                            -0.034326244879400405, 0.037408070418139386, 0.042464973532867115, -0.04554679907160611},
                           {2, 4}),
      1e-12, 1e-15));
  x.zero_grad();
  log_softmax(x).backward(g);
  EXPECT_TRUE(x.grad().allclose(
      Tensor<double>::from({0.24954579152270706, -0.2087676267707701, -0.514658090066695, 0.47387992531475814,
                            -0.9919853491799787, 0.5217860796855082, 0.3092207045224775, 0.1609785649719931},
                           {2, 4}),
      1e-12, 1e-15));
}

TEST(Softmax, RowThatIsEntirelyMinusInfinityGivesZerosAndZeroGradient) {
  Var<double> x(Tensor<double>::from({-kInf, -kInf, -kInf, 1.0, 2.0, 3.0}, {2, 3}), true);
  const Tensor<double> g = Tensor<double>::from({1.0, -2.0, 3.0, 0.5, 0.25, -1.0}, {2, 3});

  Var<double> y = softmax(x);
  for (Index i = 0; i < 3; ++i) EXPECT_EQ(y.value()[i], 0.0);
  EXPECT_NEAR(y.value()[3] + y.value()[4] + y.value()[5], 1.0, 1e-15);
  y.backward(g);
  EXPECT_TRUE(all_finite(x.grad()));
  for (Index i = 0; i < 3; ++i) EXPECT_EQ(x.grad()[i], 0.0);

  x.zero_grad();
  Var<double> ly = log_softmax(x);
  for (Index i = 0; i < 3; ++i) EXPECT_EQ(ly.value()[i], 0.0);
  EXPECT_NEAR(ly.value()[5], -0.4076059644443804, 1e-14);  // torch.log_softmax([1, 2, 3])[2]
  ly.backward(g);
  EXPECT_TRUE(all_finite(x.grad()));
  for (Index i = 0; i < 3; ++i) EXPECT_EQ(x.grad()[i], 0.0);
  EXPECT_NE(x.grad()[3], 0.0);
}

TEST(Softmax, LargeLogitsStayFiniteInFloat) {
  Var<float> x(Tensor<float>::from({1e4f, 0.0f, -1e4f, 1e4f, 1e4f, 0.0f}, {2, 3}));
  const Tensor<float> y = softmax(x).value();
  EXPECT_TRUE(y.allclose(Tensor<float>::from({1, 0, 0, 0.5f, 0.5f, 0}, {2, 3}), 1e-6f, 1e-7f));
  const Tensor<float> ly = log_softmax(x).value();
  EXPECT_TRUE(ly.allclose(Tensor<float>::from({0, -1e4f, -2e4f, -0.6931472f, -0.6931472f, -10000.6931472f}, {2, 3}),
                          1e-6f, 1e-6f));
}

TEST(Softmax, PassesGradcheck) {
  std::uint64_t seed = 1;
  for (const Shape& s : {Shape{1, 1}, Shape{7}, Shape{3, 7}, Shape{2, 3, 5}}) {
    Var<double> x = random_var(s, seed++);
    EXPECT_GRADCHECK([](const Inputs& v) { return softmax(v[0]); }, Inputs{x});
    EXPECT_GRADCHECK([](const Inputs& v) { return log_softmax(v[0]); }, Inputs{x});
  }
}

TEST(Softmax, PassesGradcheckWithAPartlyMaskedRow) {
  Var<double> x = random_var({3, 5}, 10);
  x.value()[1] = -kInf;
  x.value()[3] = -kInf;
  x.value()[9] = -kInf;
  EXPECT_GRADCHECK([](const Inputs& v) { return softmax(v[0]); }, Inputs{x});
}

TEST(Softmax, ScalarInputThrowsShapeError) {
  Var<float> x(Tensor<float>::scalar(1.0f));
  EXPECT_THROW_WITH(softmax(x), ShapeError, {"softmax", "x is ()", "at least one dimension"});
  EXPECT_THROW_WITH(log_softmax(x), ShapeError, {"log_softmax", "x is ()"});
}

}  // namespace softmax_test
