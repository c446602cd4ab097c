#include "eigenformer/ops/reduction.hpp"

#include <cmath>
#include <limits>

#include "support/test_support.hpp"

using namespace eigenformer;

namespace reduction_test {

using eigenformer::testing::random_var;
using Inputs = std::vector<Var<double>>;

namespace {

// (2, 3, 4) with ties along every axis, so the first-maximum rule is exercised.
Tensor<double> tied_input() {
  return Tensor<double>::from({1, 5, 2, 5, 3, -1, 7, 0, 7, 2, -3, 4, 0, 0, 0, 0, -2, 8, 1, 8, 6, 6, -5, 2}, {2, 3, 4});
}

Tensor<std::int64_t> ids(const std::vector<std::int64_t>& v, const Shape& s) {
  return Tensor<std::int64_t>::from(v, s);
}

// The gradient of sum(w * y) where y = max(x, axis, keepdim = true) and w = 1, 2, ..., numel(y).
Tensor<double> weighted_max_grad(Index axis) {
  Var<double> x(tied_input(), true);
  Var<double> y = max(x, axis, true);
  Tensor<double> w = Tensor<double>::empty(y.shape());
  for (Index i = 0; i < w.numel(); ++i) w[i] = static_cast<double>(i + 1);
  y.backward(w);
  return x.grad();
}

}  // namespace

// Reference numbers: torch 1.13.1 on tied_input() (float64).
TEST(Reduction, SumAndMeanAlongEachAxisMatchPyTorch) {
  Var<double> x(tied_input());
  EXPECT_TRUE(sum(x, 0).value().equal(Tensor<double>::from({1, 5, 2, 5, 1, 7, 8, 8, 13, 8, -8, 6}, {3, 4})));
  EXPECT_TRUE(sum(x, 1).value().equal(Tensor<double>::from({11, 6, 6, 9, 4, 14, -4, 10}, {2, 4})));
  EXPECT_TRUE(sum(x, 2).value().equal(Tensor<double>::from({13, 9, 10, 0, 15, 9}, {2, 3})));
  EXPECT_TRUE(sum(x, -1, true).value().equal(Tensor<double>::from({13, 9, 10, 0, 15, 9}, {2, 3, 1})));
  EXPECT_TRUE(sum(x, -3, true).value().equal(Tensor<double>::from({1, 5, 2, 5, 1, 7, 8, 8, 13, 8, -8, 6}, {1, 3, 4})));
  EXPECT_TRUE(mean(x, 0).value().allclose(
      Tensor<double>::from({0.5, 2.5, 1.0, 2.5, 0.5, 3.5, 4.0, 4.0, 6.5, 4.0, -4.0, 3.0}, {3, 4}), 1e-15));
  EXPECT_TRUE(mean(x, 1, true).value().allclose(
      Tensor<double>::from({3.6666666666666665, 2.0, 2.0, 3.0, 1.3333333333333333, 4.666666666666667,
                            -1.3333333333333333, 3.3333333333333335},
                           {2, 1, 4}),
      1e-15));
  EXPECT_TRUE(mean(x, 2).value().allclose(Tensor<double>::from({3.25, 2.25, 2.5, 0.0, 3.75, 2.25}, {2, 3}), 1e-15));
  EXPECT_EQ(sum(x).value().dim(), 0);
  EXPECT_DOUBLE_EQ(sum(x).item(), 56.0);
  EXPECT_EQ(mean(x).value().dim(), 0);
  EXPECT_DOUBLE_EQ(mean(x).item(), 2.3333333333333335);
}

TEST(Reduction, MaxAndArgmaxPickTheFirstMaximumLikePyTorch) {
  Var<double> x(tied_input());
  EXPECT_TRUE(max(x, 0).value().equal(Tensor<double>::from({1, 5, 2, 5, 3, 8, 7, 8, 7, 6, -3, 4}, {3, 4})));
  EXPECT_TRUE(max(x, 1).value().equal(Tensor<double>::from({7, 5, 7, 5, 6, 8, 1, 8}, {2, 4})));
  EXPECT_TRUE(max(x, -1, true).value().equal(Tensor<double>::from({5, 7, 7, 0, 8, 6}, {2, 3, 1})));
  EXPECT_TRUE(argmax(x.value(), 0).equal(ids({0, 0, 0, 0, 0, 1, 0, 1, 0, 1, 0, 0}, {3, 4})));
  EXPECT_TRUE(argmax(x.value(), 1).equal(ids({2, 0, 1, 0, 2, 1, 1, 1}, {2, 4})));
  EXPECT_TRUE(argmax(x.value(), 2).equal(ids({1, 2, 0, 0, 1, 0}, {2, 3})));
  EXPECT_TRUE(argmax(x.value(), -1, true).equal(ids({1, 2, 0, 0, 1, 0}, {2, 3, 1})));
  const Tensor<float> xf = tied_input().cast<float>();
  EXPECT_TRUE(argmax(xf, 1).equal(ids({2, 0, 1, 0, 2, 1, 1, 1}, {2, 4})));
}

TEST(Reduction, MaxGradientGoesToTheFirstMaximalElement) {
  EXPECT_TRUE(weighted_max_grad(0).equal(Tensor<double>::from(
      {1, 2, 3, 4, 5, 0, 7, 0, 9, 0, 11, 12, 0, 0, 0, 0, 0, 6, 0, 8, 0, 10, 0, 0}, {2, 3, 4})));
  EXPECT_TRUE(weighted_max_grad(1).equal(Tensor<double>::from(
      {0, 2, 0, 4, 0, 0, 3, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 6, 7, 8, 5, 0, 0, 0}, {2, 3, 4})));
  EXPECT_TRUE(weighted_max_grad(-1).equal(Tensor<double>::from(
      {0, 1, 0, 0, 0, 0, 2, 0, 3, 0, 0, 0, 4, 0, 0, 0, 0, 5, 0, 0, 6, 0, 0, 0}, {2, 3, 4})));
}

TEST(Reduction, MaxPropagatesTheFirstNan) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  Var<double> x(Tensor<double>::from({1.0, nan, 3.0, nan}, {1, 4}));
  EXPECT_TRUE(std::isnan(max(x, 1).value()[0]));
  EXPECT_EQ(argmax(x.value(), 1)[0], 1);  // torch.argmax gives 1
  Var<double> col(Tensor<double>::from({1.0, nan, 3.0, nan}, {4, 1}));
  EXPECT_TRUE(std::isnan(max(col, 0).value()[0]));
  EXPECT_EQ(argmax(col.value(), 0)[0], 1);
}

TEST(Reduction, LongRowsFindTheFirstMaximumAndTheFirstNan) {
  // Rows long enough for the vectorized path: ties at 11 and 29, then a NaN at 20 in a second row.
  Tensor<double> t = Tensor<double>::zeros({3, 37});
  for (Index k = 0; k < 37; ++k) t.at({0, k}) = t.at({1, k}) = static_cast<double>(k % 7);
  t.at({0, 11}) = t.at({0, 29}) = 9.0;
  t.at({1, 20}) = t.at({1, 33}) = std::numeric_limits<double>::quiet_NaN();
  t.at({2, 36}) = 1.0;
  EXPECT_TRUE(argmax(t, 1).equal(ids({11, 20, 36}, {3})));
  EXPECT_TRUE(argmax(t.cast<float>(), -1).equal(ids({11, 20, 36}, {3})));
  Tensor<std::int64_t> n = Tensor<std::int64_t>::zeros({2, 37});  // integer tensors take the scalar path
  for (Index k = 0; k < 37; ++k) n.at({0, k}) = n.at({1, k}) = k % 7;
  n.at({0, 11}) = n.at({0, 29}) = 9;
  EXPECT_TRUE(argmax(n, 1).equal(ids({11, 6}, {2})));
  const Tensor<double> m = max(Var<double>(t), 1).value();
  EXPECT_EQ(m[0], 9.0);
  EXPECT_TRUE(std::isnan(m[1]));
  EXPECT_EQ(m[2], 1.0);
}

TEST(Reduction, EmptyInputsFollowPyTorch) {
  Var<double> e(Tensor<double>::zeros({2, 0}));
  EXPECT_EQ(sum(e).item(), 0.0);
  EXPECT_TRUE(std::isnan(mean(e).item()));
  const Tensor<double> m = mean(e, 1).value();
  ASSERT_EQ(m.shape(), (Shape{2}));
  EXPECT_TRUE(std::isnan(m[0]) && std::isnan(m[1]));
  EXPECT_TRUE(sum(e, 1).value().equal(Tensor<double>::zeros({2})));
  EXPECT_EQ(sum(e, 0).value().shape(), (Shape{0}));
}

TEST(Reduction, AllReductionsPassGradcheck) {
  const std::vector<std::pair<Shape, std::vector<Index>>> cases = {
      {{1, 1}, {0, 1}},   {{7}, {0, -1}},         {{3, 5}, {0, 1, -1}},
      {{2, 3, 5}, {0, 1, 2, -2}}, {{2, 3, 1, 5}, {0, 2, 3, -4}}, {{3, 1, 4, 2}, {1, -1}}};
  std::uint64_t seed = 100;
  for (const auto& [shape, axes] : cases) {
    Var<double> x = random_var(shape, seed++);
    EXPECT_GRADCHECK([](const Inputs& v) { return sum(v[0]); }, Inputs{x});
    EXPECT_GRADCHECK([](const Inputs& v) { return mean(v[0]); }, Inputs{x});
    for (Index axis : axes)
      for (bool keepdim : {false, true}) {
        SCOPED_TRACE(::testing::Message() << to_string(shape) << " axis " << axis << " keepdim " << keepdim);
        auto f_sum = [axis, keepdim](const Inputs& v) { return sum(v[0], axis, keepdim); };
        auto f_mean = [axis, keepdim](const Inputs& v) { return mean(v[0], axis, keepdim); };
        auto f_max = [axis, keepdim](const Inputs& v) { return max(v[0], axis, keepdim); };
        EXPECT_GRADCHECK(f_sum, Inputs{x});
        EXPECT_GRADCHECK(f_mean, Inputs{x});
        EXPECT_GRADCHECK(f_max, Inputs{x});
        const Shape got = sum(x, axis, keepdim).shape();
        EXPECT_EQ(static_cast<Index>(got.size()), x.dim() - (keepdim ? 0 : 1));
      }
  }
}

TEST(Reduction, FloatSumMatchesDouble) {
  const Tensor<float> xf = eigenformer::testing::random_tensor({5, 17, 3}, 8);
  Var<double> xd(xf.cast<double>());
  for (Index axis : {0, 1, 2})
    EXPECT_TRUE(sum(Var<float>(xf), axis).value().cast<double>().allclose(sum(xd, axis).value(), 1e-5, 1e-5));
}

TEST(Reduction, BadAxisThrowsValueErrorNamingTheOp) {
  Var<double> x(Tensor<double>::zeros({2, 3}));
  EXPECT_THROW_WITH(sum(x, 2), ValueError, {"sum", "axis 2", "rank 2"});
  EXPECT_THROW_WITH(mean(x, -3, true), ValueError, {"mean", "axis -3", "rank 2"});
  EXPECT_THROW_WITH(max(x, 5), ValueError, {"max", "axis 5"});
  EXPECT_THROW_WITH(argmax(x.value(), -4), ValueError, {"argmax", "axis -4"});
  Var<double> s(Tensor<double>::scalar(1.0));
  EXPECT_THROW_WITH(sum(s, 0), ValueError, {"sum", "rank 0"});
}

TEST(Reduction, MaxOverAnEmptyAxisThrows) {
  Var<double> e(Tensor<double>::zeros({2, 0}));
  EXPECT_THROW_WITH(max(e, 1), ValueError, {"max", "axis 1", "size 0", "(2, 0)"});
  EXPECT_THROW_WITH(argmax(e.value(), -1), ValueError, {"argmax", "size 0"});
}

}  // namespace reduction_test
