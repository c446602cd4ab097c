#include "eigenformer/ops/activation.hpp"

#include <cmath>
#include <limits>

#include "support/test_support.hpp"

using namespace eigenformer;

namespace activation_test {

using eigenformer::testing::random_tensor;
using eigenformer::testing::random_var;
using Inputs = std::vector<Var<double>>;

namespace {

const std::vector<double> kPoints = {-20, -3.5, -1, -0.5, 0, 0.3, 1, 2.7, 20};

// The value of f at kPoints and the gradient of sum(f(x)), to compare with PyTorch.
template <typename F>
std::pair<Tensor<double>, Tensor<double>> value_and_grad(F f) {
  Var<double> x(Tensor<double>::from(kPoints), true);
  Var<double> y = f(x);
  y.backward(Tensor<double>::ones(y.shape()));
  return {y.value(), x.grad()};
}

void expect_matches(const Tensor<double>& got, const std::vector<double>& want) {
  ASSERT_EQ(got.numel(), static_cast<Index>(want.size()));
  for (std::size_t i = 0; i < want.size(); ++i)
    EXPECT_NEAR(got[static_cast<Index>(i)], want[i], 1e-14 + 1e-12 * std::abs(want[i])) << "element " << i;
}

}  // namespace

// Reference numbers: torch 1.13.1, float64, x = kPoints, y = f(x), grad of y.sum().
TEST(Activation, ReluMatchesPyTorch) {
  const auto [y, g] = value_and_grad([](const Var<double>& x) { return relu(x); });
  expect_matches(y, {0.0, 0.0, 0.0, 0.0, 0.0, 0.3, 1.0, 2.7, 20.0});
  expect_matches(g, {0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0});
}

TEST(Activation, GeluExactMatchesPyTorch) {
  const auto [y, g] = value_and_grad([](const Var<double>& x) { return gelu(x); });
  expect_matches(y, {-0.0, -0.0008142017766243903, -0.15865525393145702, -0.15426876936299344, 0.0,
                     0.1853734266566858, 0.841344746068543, 2.6906391707317905, 20.0});
  expect_matches(g, {-1.1041896724319527e-86, -0.0028217603536246205, -0.08331547058768635, 0.13250487534383712,
                     0.5, 0.7323277668271099, 1.0833154705876864, 1.0246695501959004, 1.0});
}

TEST(Activation, GeluTanhMatchesPyTorch) {
  const auto [y, g] = value_and_grad([](const Var<double>& x) { return gelu(x, GeluApproximation::tanh); });
  expect_matches(y, {-0.0, -0.0006161976553737403, -0.1588080093917233, -0.15428599017485606, 0.0,
                     0.18537092354275922, 0.8411919906082768, 2.6911124053605326, 20.0});
  expect_matches(g, {0.0, -0.0024226437601167334, -0.08296408384578258, 0.13263009646535764, 0.5,
                     0.7322954516388018, 1.0829640838457826, 1.0246678654351904, 1.0});
}

TEST(Activation, TanhMatchesPyTorch) {
  const auto [y, g] = value_and_grad([](const Var<double>& x) { return tanh(x); });
  expect_matches(y, {-1.0, -0.9981778976111987, -0.7615941559557649, -0.46211715726000974, 0.0, 0.2913126124515909,
                     0.7615941559557649, 0.9910074536781176, 1.0});
  expect_matches(g, {0.0, 0.0036408847204873578, 0.41997434161402614, 0.7864477329659274, 1.0, 0.9151369618266292,
                     0.41997434161402614, 0.0179042267544136, 0.0});
}

TEST(Activation, SigmoidMatchesPyTorch) {
  const auto [y, g] = value_and_grad([](const Var<double>& x) { return sigmoid(x); });
  expect_matches(y, {2.0611536181902037e-09, 0.02931223075135632, 0.2689414213699951, 0.3775406687981454, 0.5,
                     0.574442516811659, 0.7310585786300049, 0.9370266439430035, 0.9999999979388463});
  expect_matches(g, {2.0611536139418496e-09, 0.02845302387973556, 0.19661193324148185, 0.2350037122015945, 0.25,
                     0.24445831169074586, 0.19661193324148185, 0.05900771248391524, 2.0611536879193953e-09});
}

TEST(Activation, SigmoidIsStableForLargeMagnitudes) {
  Var<double> x(Tensor<double>::from({-30.0, -1000.0, 1000.0}), true);
  Var<double> y = sigmoid(x);
  EXPECT_NEAR(y.value()[0], 9.357622968839299e-14, 1e-26);  // torch.sigmoid(-30.)
  EXPECT_EQ(y.value()[1], 0.0);
  EXPECT_EQ(y.value()[2], 1.0);
  y.backward(Tensor<double>::ones({3}));
  for (Index i = 0; i < 3; ++i) EXPECT_TRUE(std::isfinite(x.grad()[i])) << i;
  EXPECT_EQ(x.grad()[1], 0.0);
  EXPECT_EQ(x.grad()[2], 0.0);

  Var<float> xf(Tensor<float>::from({-200.0f, 200.0f, 0.0f}));
  const Tensor<float> yf = sigmoid(xf).value();
  EXPECT_EQ(yf[0], 0.0f);
  EXPECT_EQ(yf[1], 1.0f);
  EXPECT_EQ(yf[2], 0.5f);
}

TEST(Activation, NanPropagatesThroughEveryActivation) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  Var<double> x(Tensor<double>::from({nan}));
  EXPECT_TRUE(std::isnan(relu(x).item()));
  EXPECT_TRUE(std::isnan(gelu(x).item()));
  EXPECT_TRUE(std::isnan(gelu(x, GeluApproximation::tanh).item()));
  EXPECT_TRUE(std::isnan(tanh(x).item()));
  EXPECT_TRUE(std::isnan(sigmoid(x).item()));
}

TEST(Activation, FloatGeluAgreesWithDouble) {
  const Tensor<float> xf = random_tensor({4, 5}, 3);
  Var<double> xd(xf.cast<double>());
  for (GeluApproximation a : {GeluApproximation::none, GeluApproximation::tanh}) {
    const Tensor<double> yf = gelu(Var<float>(xf), a).value().cast<double>();
    EXPECT_TRUE(yf.allclose(gelu(xd, a).value(), 1e-6, 1e-7));
  }
}

TEST(Activation, AllPassGradcheck) {
  std::uint64_t seed = 21;
  for (const Shape& s : {Shape{1, 1}, Shape{7}, Shape{3, 5}, Shape{2, 3, 5}, Shape{2, 1, 3, 4}}) {
    Var<double> x = random_var(s, seed++);
    x.value() *= 2.0;  // covers the tails of gelu, tanh and sigmoid
    EXPECT_GRADCHECK([](const Inputs& v) { return relu(v[0]); }, Inputs{x});
    EXPECT_GRADCHECK([](const Inputs& v) { return gelu(v[0]); }, Inputs{x});
    EXPECT_GRADCHECK([](const Inputs& v) { return gelu(v[0], GeluApproximation::tanh); }, Inputs{x});
    EXPECT_GRADCHECK([](const Inputs& v) { return tanh(v[0]); }, Inputs{x});
    EXPECT_GRADCHECK([](const Inputs& v) { return sigmoid(v[0]); }, Inputs{x});
  }
}

TEST(Activation, ChainedActivationsPassGradcheck) {
  Var<double> x = random_var({3, 4}, 77);
  EXPECT_GRADCHECK([](const Inputs& v) { return sigmoid(gelu(tanh(v[0]))); }, Inputs{x});
}

TEST(Activation, OutputsRecordTheirOpName) {
  Var<double> x = random_var({2}, 1);
  EXPECT_STREQ(relu(x).op_name(), "relu");
  EXPECT_STREQ(gelu(x).op_name(), "gelu");
  EXPECT_STREQ(tanh(x).op_name(), "tanh");
  EXPECT_STREQ(sigmoid(x).op_name(), "sigmoid");
}

}  // namespace activation_test
