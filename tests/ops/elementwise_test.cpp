#include "eigenformer/ops/elementwise.hpp"

#include "support/test_support.hpp"

using namespace eigenformer;

namespace elementwise_test {

using eigenformer::testing::random_var;
using Inputs = std::vector<Var<double>>;

TEST(Elementwise, AddValuesBroadcastFromSizeOneAxes) {
  Var<float> a(Tensor<float>::from({1, 2, 3, 4, 5, 6}, {2, 3}));
  Var<float> b(Tensor<float>::from({10, 20}, {2, 1}));
  const Tensor<float> y = add(a, b).value();
  EXPECT_TRUE(y.equal(Tensor<float>::from({11, 12, 13, 24, 25, 26}, {2, 3})));
}

TEST(Elementwise, BinaryOpsPassGradcheckOnBroadcastShapes) {
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{1, 1}, {1, 1}}, {{3, 5}, {3, 5}}, {{3, 5}, {5}}, {{3, 1}, {1, 5}}, {{2, 3, 4}, {3, 1}}, {{1}, {2, 3}}, {{}, {7}}};
  std::uint64_t seed = 1;
  for (const auto& [sa, sb] : cases) {
    Var<double> a = random_var(sa, seed++), b = random_var(sb, seed++);
    Var<double> pos(add_scalar(exp(b), 0.5).value().clone(), true);  // keeps the divisor away from zero
    EXPECT_GRADCHECK([](const Inputs& v) { return add(v[0], v[1]); }, Inputs{a, b});
    EXPECT_GRADCHECK([](const Inputs& v) { return sub(v[0], v[1]); }, Inputs{a, b});
    EXPECT_GRADCHECK([](const Inputs& v) { return mul(v[0], v[1]); }, Inputs{a, b});
    EXPECT_GRADCHECK([](const Inputs& v) { return div(v[0], v[1]); }, Inputs{a, pos});
  }
}

TEST(Elementwise, UnaryOpsPassGradcheck) {
  for (const Shape& s : {Shape{1, 1}, Shape{3, 7}, Shape{2, 3, 5}}) {
    Var<double> x = random_var(s, 11);
    Var<double> pos(exp(x).value().clone(), true);
    EXPECT_GRADCHECK([](const Inputs& v) { return scale(v[0], 2.5); }, Inputs{x});
    EXPECT_GRADCHECK([](const Inputs& v) { return add_scalar(v[0], -1.5); }, Inputs{x});
    EXPECT_GRADCHECK([](const Inputs& v) { return neg(v[0]); }, Inputs{x});
    EXPECT_GRADCHECK([](const Inputs& v) { return exp(v[0]); }, Inputs{x});
    EXPECT_GRADCHECK([](const Inputs& v) { return log(v[0]); }, Inputs{pos});
    EXPECT_GRADCHECK([](const Inputs& v) { return sqrt(v[0]); }, Inputs{pos});
    EXPECT_GRADCHECK([](const Inputs& v) { return pow(v[0], 3.0); }, Inputs{x});
    EXPECT_GRADCHECK([](const Inputs& v) { return pow(v[0], -0.5); }, Inputs{pos});
  }
}

TEST(Elementwise, OperatorsMatchNamedOps) {
  Var<double> a = random_var({2, 3}, 5), b = random_var({3}, 6);
  EXPECT_TRUE((a + b).value().equal(add(a, b).value()));
  EXPECT_TRUE((a - b).value().equal(sub(a, b).value()));
  EXPECT_TRUE((a * b).value().equal(mul(a, b).value()));
  EXPECT_TRUE((a / b).value().equal(div(a, b).value()));
  EXPECT_TRUE((-a).value().equal(neg(a).value()));
  EXPECT_TRUE((2.0 * a).value().equal(scale(a, 2.0).value()));
}

TEST(Elementwise, ValuesMatchHandComputedNumbers) {
  Var<double> x(Tensor<double>::from({0.25, 1.0, 4.0}, {3}));
  EXPECT_TRUE(sqrt(x).value().allclose(Tensor<double>::from({0.5, 1.0, 2.0}, {3}), 1e-15));
  EXPECT_TRUE(pow(x, 2.0).value().allclose(Tensor<double>::from({0.0625, 1.0, 16.0}, {3}), 1e-15));
  EXPECT_TRUE(log(x).value().allclose(Tensor<double>::from({-1.3862943611198906, 0.0, 1.3862943611198906}, {3}), 1e-15));
}

TEST(Elementwise, MismatchedShapesThrowShapeErrorNamingTheOpAndBothShapes) {
  Var<float> a(Tensor<float>::zeros({2, 3})), b(Tensor<float>::zeros({4, 3}));
  EXPECT_THROW_WITH(add(a, b), ShapeError, {"add", "(2, 3)", "(4, 3)"});
  EXPECT_THROW_WITH(mul(a, b), ShapeError, {"mul", "(2, 3)", "(4, 3)"});
  EXPECT_THROW_WITH(sub(a, b), ShapeError, {"sub", "(2, 3)", "(4, 3)"});
  EXPECT_THROW_WITH(div(a, b), ShapeError, {"div", "(2, 3)", "(4, 3)"});
}

}  // namespace elementwise_test
