#include "eigenformer/ops/linear.hpp"

#include "eigenformer/ops/activation.hpp"
#include "eigenformer/ops/elementwise.hpp"
#include "eigenformer/ops/layout.hpp"

#include "support/test_support.hpp"

using namespace eigenformer;

namespace linear_test {

using eigenformer::testing::random_var;
using Inputs = std::vector<Var<double>>;

namespace {

const std::vector<double> kX = {-1.605, 0.232, 2.24, 0.847, 1.201, -0.402, -1.426, 0.904, 0.856, 0.689, 0.885, 1.771};
const std::vector<double> kW = {-0.487, -0.604, -0.558, 0.668, -0.197, 1.943, -1.402, -0.763, 0.631, -0.899, -0.558,
                                0.691};
const std::vector<double> kB = {-1.874, -0.994, 0.718, -0.698};

}  // namespace

TEST(Linear, ValuesOnThreeDimensionalInputMatchPyTorch) {
  // torch.nn.functional.linear(x, W, b) with x (2, 2, 3), W (4, 3), b (4)
  Var<double> x(Tensor<double>::from(kX, {2, 2, 3})), w(Tensor<double>::from(kW, {4, 3})),
      b(Tensor<double>::from(kB, {4}));
  const Tensor<double> expected = Tensor<double>::from(
      {-2.482413, 2.240476, 4.204634, 2.163279, -2.787577, -1.4458870000000001, -1.639519, -2.407393, -2.203202,
       -0.46144799999999986, 2.567636, 0.6710379999999998, -3.732301, 2.7329600000000003, 0.194268, -0.58748},
      {2, 2, 4});
  const Var<double> y = linear(x, w, b);
  EXPECT_EQ(y.shape(), (Shape{2, 2, 4}));
  EXPECT_TRUE(y.value().allclose(expected, 1e-12, 1e-14));

  // Without a bias the same numbers less the bias.
  Tensor<double> no_bias = linear(x, w, Var<double>()).value().clone();
  for (Index i = 0; i < no_bias.numel(); ++i) no_bias[i] += kB[static_cast<std::size_t>(i % 4)];
  EXPECT_TRUE(no_bias.allclose(expected, 1e-12, 1e-14));
}

TEST(Linear, FloatValuesMatchPyTorch) {
  std::vector<float> xf(kX.begin(), kX.end()), wf(kW.begin(), kW.end()), bf(kB.begin(), kB.end());
  Var<float> x(Tensor<float>::from(xf, {4, 3})), w(Tensor<float>::from(wf, {4, 3})), b(Tensor<float>::from(bf, {4}));
  const Tensor<float> expected = Tensor<float>::from({-2.482413f, 2.240476f, 4.204634f, 2.163279f, -2.787577f,
                                                      -1.445887f, -1.639519f, -2.407393f, -2.203202f, -0.461448f,
                                                      2.567636f, 0.671038f, -3.732301f, 2.73296f, 0.194268f, -0.58748f},
                                                     {4, 4});
  EXPECT_TRUE(linear(x, w, b).value().allclose(expected, 1e-5f, 1e-6f));
}

TEST(Linear, PassesGradcheckWithAndWithoutBias) {
  const std::vector<std::pair<Shape, Index>> cases = {{{1, 1}, 1}, {{2, 3, 4}, 5}, {{3, 1, 2, 3}, 2}, {{4}, 3}};
  std::uint64_t seed = 1;
  for (const auto& [xs, out] : cases) {
    Var<double> x = random_var(xs, seed++), w = random_var({out, xs.back()}, seed++), b = random_var({out}, seed++);
    EXPECT_GRADCHECK([](const Inputs& v) { return linear(v[0], v[1], v[2]); }, Inputs{x, w, b});
    EXPECT_GRADCHECK([](const Inputs& v) { return linear(v[0], v[1], Var<double>()); }, Inputs{x, w});
  }
}

TEST(Linear, GradientsOnlyForInputsThatRequireThem) {
  Var<double> x = random_var({2, 3, 4}, 20, false), w = random_var({5, 4}, 21), b = random_var({5}, 22, false);
  EXPECT_GRADCHECK([](const Inputs& v) { return linear(v[0], v[1], v[2]); }, Inputs{x, w, b});
  Var<double> x2 = random_var({2, 3, 4}, 23), w2 = random_var({5, 4}, 24, false);
  EXPECT_GRADCHECK([](const Inputs& v) { return linear(v[0], v[1], v[2]); }, Inputs{x2, w2, b});
  linear(x, w, b).backward(Tensor<double>::ones({2, 3, 5}));
  EXPECT_FALSE(x.has_grad());
  EXPECT_TRUE(w.has_grad());
  EXPECT_FALSE(b.has_grad());
}

TEST(Linear, BiasGradientIsTheColumnSumOfTheOutputGradient) {
  Var<double> x = random_var({2, 3, 4}, 30), w = random_var({5, 4}, 31), b = random_var({5}, 32);
  Tensor<double> seed = eigenformer::testing::random_var({2, 3, 5}, 33).value();
  linear(x, w, b).backward(seed);
  for (Index j = 0; j < 5; ++j) {
    double sum = 0;
    for (Index r = 0; r < 6; ++r) sum += seed[r * 5 + j];
    EXPECT_NEAR(b.grad()[j], sum, 1e-12);
  }
}

TEST(Linear, BadShapesThrowShapeErrorNamingLinear) {
  Var<float> x(Tensor<float>::zeros({2, 3})), w(Tensor<float>::zeros({4, 5})), b(Tensor<float>::zeros({4}));
  EXPECT_THROW_WITH(linear(x, w, b), ShapeError, {"linear", "x is (2, 3)", "weight is (4, 5)", "in_features = 5"});
  EXPECT_THROW_WITH(linear(x, Var<float>(Tensor<float>::zeros({3})), b), ShapeError,
                    {"linear", "weight is (3)", "(out_features, in_features)"});
  EXPECT_THROW_WITH(linear(x, Var<float>(Tensor<float>::zeros({4, 3})), Var<float>(Tensor<float>::zeros({3}))),
                    ShapeError, {"linear", "bias is (3)", "expected bias (4)"});
  EXPECT_THROW_WITH(linear(Var<float>(Tensor<float>::scalar(1.0f)), w, b), ShapeError, {"linear", "x is ()"});
}

TEST(LinearRelu, ValuesAreReluOfLinearInDoubleAndFloat) {
  // relu of the PyTorch-checked linear values above: negative entries become 0.
  Var<double> x(Tensor<double>::from(kX, {4, 3})), w(Tensor<double>::from(kW, {4, 3}));
  Var<double> b(Tensor<double>::from(kB, {4}));
  const Tensor<double> expected = Tensor<double>::from(
      {0, 2.240476, 4.204634, 2.163279, 0, 0, 0, 0, 0, 0, 2.567636, 0.6710379999999998, 0, 2.7329600000000003,
       0.194268, 0},
      {4, 4});
  const Var<double> y = linear_relu(x, w, b);
  EXPECT_STREQ(y.op_name(), "linear_relu");
  EXPECT_TRUE(y.value().allclose(expected, 1e-12, 1e-14));
  std::vector<float> xf(kX.begin(), kX.end()), wf(kW.begin(), kW.end()), bf(kB.begin(), kB.end());
  const Tensor<float> yf = linear_relu(Var<float>(Tensor<float>::from(xf, {4, 3})),
                                       Var<float>(Tensor<float>::from(wf, {4, 3})),
                                       Var<float>(Tensor<float>::from(bf, {4})))
                               .value();
  for (Index i = 0; i < 16; ++i) EXPECT_NEAR(yf[i], expected[i], 1e-5);
}

TEST(LinearRelu, PassesGradcheckAndMatchesReluOfLinear) {
  std::uint64_t seed = 40;
  for (const auto& [xs, out] : std::vector<std::pair<Shape, Index>>{{{1, 1}, 1}, {{2, 3, 4}, 5}, {{7, 17}, 19}}) {
    Var<double> x = random_var(xs, seed++), w = random_var({out, xs.back()}, seed++), b = random_var({out}, seed++);
    EXPECT_GRADCHECK([](const Inputs& v) { return linear_relu(v[0], v[1], v[2]); }, Inputs{x, w, b});
    EXPECT_GRADCHECK([](const Inputs& v) { return linear_relu(v[0], v[1]); }, Inputs{x, w});
  }
  // Float, through the packed kernel on machines that have it: the same values and gradients as relu(linear).
  Var<float> x(eigenformer::testing::random_tensor({37, 45}, 50), true);
  Var<float> w(eigenformer::testing::random_tensor({70, 45}, 51), true);
  Var<float> b(eigenformer::testing::random_tensor({70}, 52), true);
  const Tensor<float> dy = eigenformer::testing::random_tensor({37, 70}, 53);
  Var<float> fused = linear_relu(x, w, b);
  fused.backward(dy);
  const Tensor<float> gx = x.grad().clone(), gw = w.grad().clone(), gb = b.grad().clone();
  for (const Var<float>* p : {&x, &w, &b}) p->zero_grad();
  Var<float> ref = relu(linear(x, w, b));
  ref.backward(dy);
  EXPECT_TRUE(fused.value().allclose(ref.value(), 1e-6, 1e-6));
  EXPECT_TRUE(gx.allclose(x.grad(), 1e-5, 1e-5));
  EXPECT_TRUE(gw.allclose(w.grad(), 1e-5, 1e-5));
  EXPECT_TRUE(gb.allclose(b.grad(), 1e-5, 1e-5));
  EXPECT_THROW_WITH(linear_relu(x, Var<float>(Tensor<float>::zeros({3, 4}))), ShapeError, {"linear_relu", "(37, 45)"});
}

TEST(Linear, AddsTheInputGradientIntoAGradientAlreadyThere) {
  // x feeds two linears and a square: whichever backward runs second finds x's gradient and adds dz W into it.
  // A leaf's gradient kept from an earlier backward is added to the same way.
  Var<double> x = random_var({3, 4}, 80), w1 = random_var({5, 4}, 81), w2 = random_var({2, 4}, 82), b = random_var({5}, 83);
  EXPECT_GRADCHECK([](const Inputs& v) { return add(linear(v[0], v[1], v[2]), linear(v[0], v[1])); },
                   Inputs{x, w1, b});
  Var<double> square = random_var({4, 4}, 85);
  EXPECT_GRADCHECK([](const Inputs& v) { return add(mul(v[0], v[0]), linear_relu(v[0], v[1])); }, Inputs{x, square});
  const Tensor<double> dy = eigenformer::testing::random_tensor({3, 2}, 84).cast<double>();
  x.zero_grad();
  linear(x, w2).backward(dy);
  Tensor<double> twice = x.grad().clone();
  twice *= 2.0;
  linear(x, w2).backward(dy);
  EXPECT_TRUE(x.grad().allclose(twice, 1e-14, 1e-14));
}

TEST(LinearRelu, MasksTheOutputGradientInPlaceOnlyWhenNothingElseHoldsIt) {
  // add() hands the same gradient buffer to both of its inputs: whichever backward runs first must not mask the
  // buffer the other still reads (both orders), while the last one may.
  Var<double> x = random_var({3, 4}, 70), w = random_var({5, 4}, 71), b = random_var({5}, 72), w2 = random_var({5, 4}, 73);
  EXPECT_GRADCHECK([](const Inputs& v) { return add(linear_relu(v[0], v[1], v[2]), linear(v[0], v[3])); },
                   Inputs{x, w, b, w2});
  EXPECT_GRADCHECK([](const Inputs& v) { return add(linear(v[0], v[3]), linear_relu(v[0], v[1], v[2])); },
                   Inputs{x, w, b, w2});
}

TEST(LinearResidual, PassesGradcheckAndMatchesAddOfLinear) {
  std::uint64_t seed = 60;
  for (const auto& [xs, out] : std::vector<std::pair<Shape, Index>>{{{1, 1}, 1}, {{2, 3, 4}, 5}, {{7, 17}, 19}}) {
    Var<double> x = random_var(xs, seed++), w = random_var({out, xs.back()}, seed++), b = random_var({out}, seed++);
    Shape rs = xs;
    rs.back() = out;
    Var<double> r = random_var(rs, seed++);
    EXPECT_GRADCHECK([](const Inputs& v) { return linear_residual(v[0], v[1], v[2], v[3]); }, Inputs{x, w, b, r});
    EXPECT_GRADCHECK([](const Inputs& v) { return linear_residual(v[0], v[1], Var<double>(), v[2]); },
                     Inputs{x, w, r});
  }
  // The same Var as input and residual (a sublayer's skip connection): both paths reach its gradient.
  EXPECT_GRADCHECK([](const Inputs& v) { return linear_residual(v[0], v[1], v[2], v[0]); },
                   Inputs{random_var({3, 6}, 70), random_var({6, 6}, 71), random_var({6}, 72)});
  // Float, through the packed kernel or the BLAS where the build has them: add(residual, linear) to rounding.
  Var<float> x(eigenformer::testing::random_tensor({2, 37, 45}, 73), true);
  Var<float> w(eigenformer::testing::random_tensor({70, 45}, 74), true);
  Var<float> b(eigenformer::testing::random_tensor({70}, 75), true);
  Var<float> r(eigenformer::testing::random_tensor({2, 37, 70}, 76), true);
  const Tensor<float> r_before = r.value().clone();
  const Tensor<float> dy = eigenformer::testing::random_tensor({2, 37, 70}, 77);
  Var<float> fused = linear_residual(x, w, b, r);
  EXPECT_STREQ(fused.op_name(), "linear_residual");
  EXPECT_TRUE(r.value().equal(r_before));  // the residual is copied, not written
  fused.backward(dy);
  std::vector<Tensor<float>> grads;
  for (const Var<float>* p : {&x, &w, &b, &r}) {
    grads.push_back(p->grad().clone());
    p->zero_grad();
  }
  Var<float> ref = add(r, linear(x, w, b));
  ref.backward(dy);
  EXPECT_TRUE(fused.value().allclose(ref.value(), 1e-6, 1e-6));
  EXPECT_TRUE(grads[0].allclose(x.grad(), 1e-5, 1e-5));
  EXPECT_TRUE(grads[1].allclose(w.grad(), 1e-5, 1e-5));
  EXPECT_TRUE(grads[2].allclose(b.grad(), 1e-5, 1e-5));
  EXPECT_TRUE(grads[3].equal(dy));  // the residual's gradient is the output's, unchanged
  EXPECT_THROW_WITH(linear_residual(x, w, b, Var<float>(Tensor<float>::zeros({2, 37, 69}))), ShapeError,
                    {"linear_residual", "residual", "(2, 37, 69)", "(2, 37, 70)"});
  EXPECT_THROW_WITH(linear_residual(x, w, b, Var<float>()), ValueError, {"linear_residual", "residual"});
  EXPECT_THROW_WITH(linear_residual(x, Var<float>(Tensor<float>::zeros({3, 4})), b, r), ShapeError,
                    {"linear_residual", "(2, 37, 45)"});
}

TEST(LinearInOut, EqualsLinearOfTheTransposedWeightAndPassesGradcheck) {
  // transformers' Conv1D: the weight stored (in, out), y = x W + b.
  Var<double> x = random_var({2, 3, 4}, 60), w = random_var({4, 5}, 61), b = random_var({5}, 62), r = random_var({2, 3, 5}, 63);
  const Tensor<double> ref = linear(x, Var<double>(transpose(w, 0, 1).value().clone()), b).value();
  EXPECT_TRUE(linear_in_out(x, w, b).value().allclose(ref, 1e-12, 1e-12));
  EXPECT_GRADCHECK([](const Inputs& in) { return linear_in_out(in[0], in[1], in[2]); }, Inputs{x, w, b});
  EXPECT_GRADCHECK([](const Inputs& in) { return linear_in_out(in[0], in[1], in[2], in[3]); }, Inputs{x, w, b, r});
  EXPECT_GRADCHECK([](const Inputs& in) { return linear_in_out(in[0], in[1]); }, Inputs{random_var({1, 1}, 64), random_var({1, 3}, 65)});
  EXPECT_THROW_WITH(linear_in_out(x, random_var({5, 4}, 66)), ShapeError, {"linear_in_out", "in_features = 5"});
}

TEST(LinearOp, AnAddendBeforeReluGetsTheMaskedGradient) {
  // relu(addend + x W^T + b): an adapter's output enters before the activation.
  Var<double> x = random_var({3, 4}, 70), w = random_var({5, 4}, 71), b = random_var({5}, 72), a = random_var({3, 5}, 73);
  EXPECT_GRADCHECK([](const Inputs& in) { return detail::linear_op("f", in[0], in[1], in[2], true, in[3]); },
                   Inputs{x, w, b, a});
  EXPECT_TRUE(detail::linear_op("f", x, w, b, true, a).value().allclose(relu(add(a, linear(x, w, b))).value(), 1e-12, 1e-12));
}

}  // namespace linear_test
