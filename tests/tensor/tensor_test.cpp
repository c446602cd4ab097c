#include "eigenformer/tensor/tensor.hpp"

#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/test_support.hpp"

using namespace eigenformer;

namespace tensor_test {

namespace {

template <typename T>
std::string print(const Tensor<T>& t) {
  std::ostringstream os;
  os << t;
  return os.str();
}

template <typename T>
bool aligned64(const Tensor<T>& t) {
  return reinterpret_cast<std::uintptr_t>(t.data()) % 64 == 0;
}

// Mean and (population) variance of a tensor's values, in double.
template <typename T>
std::pair<double, double> moments(const Tensor<T>& t) {
  double mean = 0;
  for (Index i = 0; i < t.numel(); ++i) mean += static_cast<double>(t[i]);
  mean /= static_cast<double>(t.numel());
  double var = 0;
  for (Index i = 0; i < t.numel(); ++i) var += (static_cast<double>(t[i]) - mean) * (static_cast<double>(t[i]) - mean);
  return {mean, var / static_cast<double>(t.numel())};
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// Factories

TEST(TensorFactory, ZerosOnesFullFillEveryElement) {
  const Tensor<float> z = Tensor<float>::zeros({2, 3});
  const Tensor<float> o = Tensor<float>::ones({2, 3});
  const Tensor<double> f = Tensor<double>::full({4}, 2.5);
  ASSERT_EQ(z.shape(), (Shape{2, 3}));
  EXPECT_EQ(z.numel(), 6);
  EXPECT_EQ(z.dim(), 2);
  for (Index i = 0; i < 6; ++i) {
    EXPECT_EQ(z[i], 0.0f);
    EXPECT_EQ(o[i], 1.0f);
  }
  for (Index i = 0; i < 4; ++i) EXPECT_EQ(f[i], 2.5);
  const Tensor<float> c = Tensor<float>(Shape{3});  // the shape constructor zero-fills
  for (Index i = 0; i < 3; ++i) EXPECT_EQ(c[i], 0.0f);
}

TEST(TensorFactory, ScalarHasRankZeroAndOneElement) {
  const Tensor<double> s = Tensor<double>::scalar(-4.25);
  EXPECT_TRUE(s.defined());
  EXPECT_EQ(s.dim(), 0);
  EXPECT_EQ(s.shape(), Shape{});
  EXPECT_EQ(s.numel(), 1);
  EXPECT_EQ(s.item(), -4.25);
}

TEST(TensorFactory, EmptyShapesHaveZeroElements) {
  const Tensor<float> e = Tensor<float>::zeros({3, 0});
  EXPECT_TRUE(e.defined());
  EXPECT_EQ(e.numel(), 0);
  EXPECT_EQ(e.size(0), 3);
  EXPECT_EQ(e.size(-1), 0);
}

TEST(TensorFactory, FromFillsRowMajor) {
  const Tensor<float> t = Tensor<float>::from({1, 2, 3, 4, 5, 6}, {2, 3});
  EXPECT_EQ(t.shape(), (Shape{2, 3}));
  EXPECT_EQ(t(0, 0), 1.0f);
  EXPECT_EQ(t(0, 2), 3.0f);
  EXPECT_EQ(t(1, 0), 4.0f);
  EXPECT_EQ(t(1, 2), 6.0f);
  const Tensor<double> v = Tensor<double>::from(std::vector<double>{7, 8, 9});
  EXPECT_EQ(v.shape(), Shape{3});
  EXPECT_EQ(v[2], 9.0);
}

TEST(TensorFactory, FromWithWrongValueCountThrowsShapeError) {
  EXPECT_THROW_WITH(Tensor<float>::from({1, 2, 3, 4, 5}, {2, 3}), ShapeError,
                    {"Tensor::from", "5 values", "(2, 3)", "expected 6"});
  EXPECT_THROW_WITH(Tensor<float>::from(std::vector<float>{}, Shape{}), ShapeError, {"0 values", "()", "expected 1"});
  EXPECT_THROW_WITH(Tensor<std::int64_t>::from({1, 2}, {3}), ShapeError, {"2 values", "(3)", "expected 3"});
}

TEST(TensorFactory, NegativeDimensionsThrowValueErrorNamingTheFactory) {
  EXPECT_THROW_WITH(Tensor<float>::zeros({2, -1}), ValueError, {"Tensor::zeros", "(2, -1)", "negative"});
  EXPECT_THROW_WITH(Tensor<float>::ones({-3}), ValueError, {"Tensor::ones", "(-3)"});
  EXPECT_THROW_WITH(Tensor<float>::full({-3}, 1.0f), ValueError, {"Tensor::full", "(-3)"});
  EXPECT_THROW_WITH(Tensor<float>::empty({-3}), ValueError, {"Tensor::empty", "(-3)"});
  EXPECT_THROW_WITH(Tensor<float>::from({1.0f}, {-1}), ValueError, {"Tensor::from", "(-1)"});
  Generator gen(1);
  EXPECT_THROW_WITH(Tensor<float>::uniform({-1}, 0.0f, 1.0f, gen), ValueError, {"Tensor::uniform", "(-1)"});
  EXPECT_THROW_WITH(Tensor<float>::normal({-1}, 0.0f, 1.0f, gen), ValueError, {"Tensor::normal", "(-1)"});
}

TEST(TensorFactory, UniformIsReproducibleForAFixedSeed) {
  Generator g1(42), g2(42), g3(43);
  const Tensor<double> a = Tensor<double>::uniform({5, 7}, -1.0, 2.0, g1);
  const Tensor<double> b = Tensor<double>::uniform({5, 7}, -1.0, 2.0, g2);
  const Tensor<double> c = Tensor<double>::uniform({5, 7}, -1.0, 2.0, g3);
  EXPECT_TRUE(a.equal(b));
  EXPECT_FALSE(a.equal(c));
  // One engine draw per element: the stream does not depend on the standard library's distributions.
  Generator g4(42);
  g4.discard(35);
  EXPECT_EQ(g1(), g4());
}

TEST(TensorFactory, UniformHasSaneMomentsAndStaysInRange) {
  Generator gen(7);
  const Tensor<double> u = Tensor<double>::uniform({100000}, -1.0, 3.0, gen);
  const auto [mean, var] = moments(u);
  EXPECT_NEAR(mean, 1.0, 0.02);        // std error of the mean: 4 / sqrt(12 * 1e5) = 0.0037
  EXPECT_NEAR(var, 16.0 / 12.0, 0.02);  // (b - a)^2 / 12
  EXPECT_GE(u.array().minCoeff(), -1.0);
  EXPECT_LT(u.array().maxCoeff(), 3.0);
  EXPECT_LT(u.array().minCoeff(), -0.99);  // the whole range is covered
  EXPECT_GT(u.array().maxCoeff(), 2.99);
}

TEST(TensorFactory, UniformNeverReturnsHighEvenWhenRoundingWouldReachIt) {
  // With a range of one ulp, low + (high - low) * u rounds to high for about half the draws.
  Generator gen(3);
  const float low = 1.0f, high = std::nextafter(1.0f, 2.0f);
  const Tensor<float> u = Tensor<float>::uniform({1000}, low, high, gen);
  for (Index i = 0; i < u.numel(); ++i) {
    ASSERT_GE(u[i], low);
    ASSERT_LT(u[i], high);
  }
  const Tensor<double> same = Tensor<double>::uniform({3}, 2.0, 2.0, gen);  // low == high gives low
  EXPECT_TRUE(same.equal(Tensor<double>::full({3}, 2.0)));
}

TEST(TensorFactory, NormalIsReproducibleForAFixedSeed) {
  Generator g1(9), g2(9);
  const Tensor<float> a = Tensor<float>::normal({3, 5}, 0.0f, 1.0f, g1);
  const Tensor<float> b = Tensor<float>::normal({3, 5}, 0.0f, 1.0f, g2);
  EXPECT_TRUE(a.equal(b));
  // Box-Muller takes two draws per pair of values: 15 values use 16 draws.
  Generator g3(9);
  g3.discard(16);
  EXPECT_EQ(g1(), g3());
}

TEST(TensorFactory, NormalHasSaneMoments) {
  Generator gen(11);
  const Tensor<double> n = Tensor<double>::normal({100000}, 2.0, 3.0, gen);
  const auto [mean, var] = moments(n);
  EXPECT_NEAR(mean, 2.0, 0.05);  // std error 3 / sqrt(1e5) = 0.0095
  EXPECT_NEAR(var, 9.0, 0.2);    // std error of the variance 9 * sqrt(2 / 1e5) = 0.04
  // A standard normal has about 68.3% of its mass within one sigma.
  Index inside = 0;
  for (Index i = 0; i < n.numel(); ++i) inside += std::abs(n[i] - 2.0) < 3.0;
  EXPECT_NEAR(static_cast<double>(inside) / 1e5, 0.6827, 0.01);
  EXPECT_TRUE(n.array().isFinite().all());
}

TEST(TensorFactory, RandomFactoriesRejectBadArgumentsWithValueError) {
  Generator gen(1);
  const double inf = std::numeric_limits<double>::infinity(), nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_THROW_WITH(Tensor<double>::uniform({2}, 1.0, 0.0, gen), ValueError, {"Tensor::uniform", "low is 1", "high is 0"});
  EXPECT_THROW_WITH(Tensor<double>::uniform({2}, nan, 1.0, gen), ValueError, {"Tensor::uniform"});
  EXPECT_THROW_WITH(Tensor<double>::uniform({2}, 0.0, inf, gen), ValueError, {"Tensor::uniform", "finite"});
  EXPECT_THROW_WITH(Tensor<double>::uniform({2}, -1e308, 1e308, gen), ValueError, {"Tensor::uniform", "finite"});
  EXPECT_THROW_WITH(Tensor<double>::normal({2}, 0.0, -1.0, gen), ValueError, {"Tensor::normal", "stddev is -1"});
  EXPECT_THROW_WITH(Tensor<double>::normal({2}, 0.0, nan, gen), ValueError, {"Tensor::normal", "stddev"});
  EXPECT_THROW_WITH(Tensor<double>::normal({2}, inf, 1.0, gen), ValueError, {"Tensor::normal", "mean"});
  EXPECT_THROW_WITH(Tensor<double>::normal({2}, 0.0, inf, gen), ValueError, {"Tensor::normal", "stddev"});
  // stddev 0 is allowed and gives the mean.
  EXPECT_TRUE(Tensor<double>::normal({3}, 1.5, 0.0, gen).equal(Tensor<double>::full({3}, 1.5)));
}

// ---------------------------------------------------------------------------------------------------------------
// Element access

TEST(TensorAccess, OperatorParenthesesIndexesRowMajor) {
  Tensor<int64_t> t = Tensor<int64_t>::zeros({2, 3, 4});
  for (Index i = 0; i < t.numel(); ++i) t[i] = i;
  EXPECT_EQ(t(0, 0, 0), 0);
  EXPECT_EQ(t(0, 1, 2), 6);
  EXPECT_EQ(t(1, 2, 3), 23);
  t(1, 0, 1) = -5;
  EXPECT_EQ(t[13], -5);
  Tensor<float> s = Tensor<float>::scalar(3.0f);
  EXPECT_EQ(s(), 3.0f);
}

TEST(TensorAccess, AtChecksIndicesAndNamesIndexAndShape) {
  Tensor<float> t = Tensor<float>::from({1, 2, 3, 4, 5, 6}, {2, 3});
  EXPECT_EQ(t.at({1, 2}), 6.0f);
  t.at({0, 1}) = 9.0f;
  EXPECT_EQ(t(0, 1), 9.0f);
  EXPECT_THROW_WITH(t.at({2, 0}), ValueError, {"Tensor::at", "(2, 0)", "(2, 3)"});
  EXPECT_THROW_WITH(t.at({0, 3}), ValueError, {"Tensor::at", "(0, 3)", "(2, 3)"});
  EXPECT_THROW_WITH(t.at({-1, 0}), ValueError, {"Tensor::at", "(-1, 0)", "(2, 3)"});
  EXPECT_THROW_WITH(t.at({1}), ValueError, {"Tensor::at", "1 indices", "(2, 3)"});
  const Tensor<float>& ct = t;
  EXPECT_THROW_WITH(ct.at({5, 5}), ValueError, {"(5, 5)", "(2, 3)"});
  EXPECT_EQ(Tensor<float>::scalar(2.0f).at({}), 2.0f);
}

TEST(TensorAccess, SizeAcceptsNegativeAxesAndRejectsBadOnes) {
  const Tensor<float> t = Tensor<float>::zeros({2, 3, 4});
  EXPECT_EQ(t.size(0), 2);
  EXPECT_EQ(t.size(-1), 4);
  EXPECT_EQ(t.size(-3), 2);
  EXPECT_THROW_WITH(t.size(3), ValueError, {"Tensor::size", "axis 3"});
}

TEST(TensorAccess, ItemReturnsTheOnlyElementAndRejectsOthers) {
  EXPECT_EQ(Tensor<double>::from({7.5}, {1, 1}).item(), 7.5);
  EXPECT_EQ(Tensor<double>::scalar(-1.0).item(), -1.0);
  EXPECT_THROW_WITH(Tensor<double>::zeros({2}).item(), ShapeError, {"Tensor::item", "(2)", "one element"});
  EXPECT_THROW_WITH(Tensor<double>::zeros({0}).item(), ShapeError, {"Tensor::item", "(0)"});
}

// ---------------------------------------------------------------------------------------------------------------
// Views, copies and casts

TEST(TensorView, CopiesAreShallow) {
  Tensor<float> a = Tensor<float>::zeros({3});
  Tensor<float> b = a;
  b[1] = 5.0f;
  EXPECT_EQ(a[1], 5.0f);
  EXPECT_TRUE(a.shares_buffer_with(b));
  EXPECT_FALSE(a.is_unique());
}

TEST(TensorView, ReshapeIsAViewSharingTheBuffer) {
  Tensor<float> a = Tensor<float>::from({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor<float> b = a.reshape({3, 2});
  EXPECT_EQ(b.shape(), (Shape{3, 2}));
  EXPECT_EQ(b.data(), a.data());
  EXPECT_TRUE(b.shares_buffer_with(a));
  b(2, 1) = 60.0f;  // the last element through the view ...
  EXPECT_EQ(a(1, 2), 60.0f);  // ... is the last element of the original
  a(0, 1) = 20.0f;
  EXPECT_EQ(b(0, 1), 20.0f);
  EXPECT_EQ(a.shape(), (Shape{2, 3}));  // the original keeps its shape
}

TEST(TensorView, ReshapeInfersOneMinusOneDimension) {
  const Tensor<float> a = Tensor<float>::zeros({2, 3, 4});
  EXPECT_EQ(a.reshape({-1}).shape(), (Shape{24}));
  EXPECT_EQ(a.reshape({4, -1}).shape(), (Shape{4, 6}));
  EXPECT_EQ(a.reshape({-1, 2, 3}).shape(), (Shape{4, 2, 3}));
  EXPECT_EQ(Tensor<float>::scalar(1.0f).reshape({1, -1}).shape(), (Shape{1, 1}));
  EXPECT_EQ(Tensor<float>::scalar(1.0f).reshape({}).shape(), Shape{});
  EXPECT_EQ(Tensor<float>::zeros({0, 4}).reshape({-1, 2}).shape(), (Shape{0, 2}));
}

TEST(TensorView, BadReshapeThrowsShapeErrorNamingBothShapes) {
  const Tensor<float> a = Tensor<float>::zeros({2, 3});
  EXPECT_THROW_WITH(a.reshape({4, 2}), ShapeError, {"reshape", "(2, 3)", "(4, 2)"});
  EXPECT_THROW_WITH(a.reshape({4, -1}), ShapeError, {"reshape", "(2, 3)", "(4, -1)"});
  EXPECT_THROW_WITH(a.reshape({-1, -1}), ShapeError, {"reshape", "(2, 3)", "(-1, -1)"});
  EXPECT_THROW_WITH(a.reshape({-2, -3}), ShapeError, {"reshape", "(2, 3)", "(-2, -3)"});
  EXPECT_THROW_WITH(Tensor<float>::zeros({0, 4}).reshape({0, -1}), ShapeError, {"reshape", "(0, 4)", "(0, -1)"});
}

TEST(TensorView, CloneIsDeep) {
  Tensor<double> a = Tensor<double>::from({1, 2, 3}, {3});
  Tensor<double> b = a.clone();
  EXPECT_TRUE(b.equal(a));
  EXPECT_FALSE(b.shares_buffer_with(a));
  EXPECT_TRUE(b.is_unique());
  b[0] = 100.0;
  EXPECT_EQ(a[0], 1.0);
  a[2] = -3.0;
  EXPECT_EQ(b[2], 3.0);
  EXPECT_TRUE(aligned64(b));
  EXPECT_FALSE(Tensor<double>().clone().defined());
}

TEST(TensorView, CastConvertsEveryElementIntoANewBuffer) {
  const Tensor<double> a = Tensor<double>::from({1.75, -2.5, 3.0}, {3, 1});
  const Tensor<float> f = a.cast<float>();
  EXPECT_EQ(f.shape(), (Shape{3, 1}));
  EXPECT_TRUE(f.equal(Tensor<float>::from({1.75f, -2.5f, 3.0f}, {3, 1})));
  const Tensor<int64_t> i = a.cast<int64_t>();  // truncates toward zero, like static_cast
  EXPECT_TRUE(i.equal(Tensor<int64_t>::from({1, -2, 3}, {3, 1})));
  const Tensor<double> back = Tensor<int64_t>::from({4, 5}, {2}).cast<double>();
  EXPECT_TRUE(back.equal(Tensor<double>::from({4.0, 5.0}, {2})));
  EXPECT_FALSE(Tensor<double>().cast<float>().defined());  // undefined stays undefined
}

TEST(TensorView, MatrixViewsTheLastTwoDimsForRanksZeroToFour) {
  // rank 0: a 1x1 matrix
  Tensor<float> s = Tensor<float>::scalar(5.0f);
  EXPECT_EQ(s.matrix().rows(), 1);
  EXPECT_EQ(s.matrix().cols(), 1);
  EXPECT_EQ(s.matrix()(0, 0), 5.0f);

  // rank 1: one row
  Tensor<float> v = Tensor<float>::from({1, 2, 3}, {3});
  EXPECT_EQ(v.matrix().rows(), 1);
  EXPECT_EQ(v.matrix().cols(), 3);
  EXPECT_EQ(v.matrix()(0, 2), 3.0f);

  // rank 2: the matrix itself, writable
  Tensor<float> m = Tensor<float>::from({1, 2, 3, 4, 5, 6}, {2, 3});
  EXPECT_EQ(m.matrix().rows(), 2);
  EXPECT_EQ(m.matrix().cols(), 3);
  EXPECT_EQ(m.matrix()(1, 0), 4.0f);
  m.matrix()(1, 2) = 60.0f;
  EXPECT_EQ(m(1, 2), 60.0f);
  EXPECT_EQ(m.matrix(0).rows(), 2);
  EXPECT_EQ(m.matrix(0)(0, 1), 2.0f);

  // rank 3: matrix() flattens the leading dims into rows; matrix(b) is the b-th (r, c) block
  Tensor<double> t3 = Tensor<double>::zeros({2, 3, 4});
  for (Index i = 0; i < t3.numel(); ++i) t3[i] = static_cast<double>(i);
  EXPECT_EQ(t3.matrix().rows(), 6);
  EXPECT_EQ(t3.matrix().cols(), 4);
  EXPECT_EQ(t3.matrix()(5, 3), 23.0);
  EXPECT_EQ(t3.matrix(1).rows(), 3);
  EXPECT_EQ(t3.matrix(1).cols(), 4);
  EXPECT_EQ(t3.matrix(1)(0, 0), 12.0);
  EXPECT_EQ(t3.matrix(1)(2, 1), t3(1, 2, 1));
  t3.matrix(0)(1, 1) = -1.0;
  EXPECT_EQ(t3(0, 1, 1), -1.0);

  // rank 4: leading dims (2, 3) flatten into b = 0..5
  Tensor<double> t4 = Tensor<double>::zeros({2, 3, 2, 5});
  for (Index i = 0; i < t4.numel(); ++i) t4[i] = static_cast<double>(i);
  EXPECT_EQ(t4.matrix().rows(), 12);
  EXPECT_EQ(t4.matrix().cols(), 5);
  const Tensor<double>& ct4 = t4;
  EXPECT_EQ(ct4.matrix(4).rows(), 2);
  EXPECT_EQ(ct4.matrix(4).cols(), 5);
  EXPECT_EQ(ct4.matrix(4)(1, 3), t4(1, 1, 1, 3));  // b = 4 is (1, 1)
  EXPECT_EQ(ct4.matrix(5)(1, 4), 59.0);
  // The views compute: the product of matrix(b) with a matrix equals the hand-written sum.
  const Eigen::MatrixXd p = ct4.matrix(2) * Eigen::MatrixXd::Ones(5, 1);
  EXPECT_EQ(p(1, 0), 25.0 + 26 + 27 + 28 + 29);
}

TEST(TensorView, MatrixOfEmptyTensorsKeepsTheLeadingRows) {
  Tensor<float> a = Tensor<float>::zeros({3, 0});
  EXPECT_EQ(a.matrix().rows(), 3);
  EXPECT_EQ(a.matrix().cols(), 0);
  Tensor<float> b = Tensor<float>::zeros({2, 4, 0});
  EXPECT_EQ(b.matrix().rows(), 8);
  EXPECT_EQ(b.matrix().cols(), 0);
  const Tensor<float> c = Tensor<float>::zeros({0});  // a rank-1 tensor is one row, even when empty
  EXPECT_EQ(c.matrix().rows(), 1);
  EXPECT_EQ(c.matrix().cols(), 0);
  const Tensor<float> d = Tensor<float>::zeros({0, 4});
  EXPECT_EQ(d.matrix().rows(), 0);
  EXPECT_EQ(d.matrix().cols(), 4);
}

TEST(TensorView, ArrayIsAFlatWritableView) {
  Tensor<float> t = Tensor<float>::from({1, 2, 3, 4}, {2, 2});
  EXPECT_EQ(t.array().size(), 4);
  EXPECT_EQ(t.array().sum(), 10.0f);
  t.array() *= 2.0f;
  EXPECT_EQ(t(1, 1), 8.0f);
  const Tensor<float>& ct = t;
  EXPECT_EQ(ct.array().maxCoeff(), 8.0f);
}

// ---------------------------------------------------------------------------------------------------------------
// Arithmetic and comparison

TEST(TensorArithmetic, PlusMinusTimesAssignWorkInPlace) {
  Tensor<double> a = Tensor<double>::from({1, 2, 3}, {3});
  const double* before = a.data();
  a += Tensor<double>::from({10, 20, 30}, {3});
  EXPECT_TRUE(a.equal(Tensor<double>::from({11, 22, 33}, {3})));
  a -= Tensor<double>::from({1, 2, 3}, {3});
  EXPECT_TRUE(a.equal(Tensor<double>::from({10, 20, 30}, {3})));
  a *= 0.5;
  EXPECT_TRUE(a.equal(Tensor<double>::from({5, 10, 15}, {3})));
  a += a;  // aliasing is fine coefficient-wise
  EXPECT_TRUE(a.equal(Tensor<double>::from({10, 20, 30}, {3})));
  EXPECT_EQ(a.data(), before);
  a.set_zero();
  EXPECT_TRUE(a.equal(Tensor<double>::zeros({3})));
  a.fill(4.0);
  EXPECT_TRUE(a.equal(Tensor<double>::full({3}, 4.0)));
}

TEST(TensorArithmetic, PlusMinusAssignOnMismatchedShapesThrowShapeError) {
  Tensor<float> a = Tensor<float>::zeros({2, 3});
  EXPECT_THROW_WITH(a += Tensor<float>::zeros({3, 2}), ShapeError, {"Tensor::operator+=", "(2, 3)", "(3, 2)"});
  EXPECT_THROW_WITH(a -= Tensor<float>::zeros({3}), ShapeError, {"Tensor::operator-=", "(2, 3)", "(3)"});
  EXPECT_THROW_WITH(a += Tensor<float>::zeros({6}), ShapeError, {"(6)"});  // same count, other shape
}

TEST(TensorCompare, EqualNeedsTheSameShapeAndValues) {
  const Tensor<float> a = Tensor<float>::from({1, 2, 3, 4}, {2, 2});
  EXPECT_TRUE(a.equal(a.clone()));
  EXPECT_FALSE(a.equal(a.reshape({4})));
  EXPECT_FALSE(a.equal(Tensor<float>::from({1, 2, 3, 5}, {2, 2})));
  const float nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_FALSE(Tensor<float>::scalar(nan).equal(Tensor<float>::scalar(nan)));  // as torch.equal
}

TEST(TensorCompare, AllcloseUsesPyTorchsFormulaAndDefaults) {
  // |a - b| <= atol + rtol * |b| with rtol = 1e-5, atol = 1e-8 (torch.allclose)
  const Tensor<double> b = Tensor<double>::from({1000.0, 0.0}, {2});
  EXPECT_TRUE(Tensor<double>::from({1000.0 + 0.9e-2, 0.9e-8}, {2}).allclose(b));
  EXPECT_FALSE(Tensor<double>::from({1000.0 + 1.1e-2, 0.0}, {2}).allclose(b));
  EXPECT_FALSE(Tensor<double>::from({1000.0, 1.1e-8}, {2}).allclose(b));
  EXPECT_TRUE(Tensor<double>::from({1000.0, 1.1e-8}, {2}).allclose(b, 1e-5, 2e-8));
  EXPECT_TRUE(Tensor<double>::from({1001.0, 0.0}, {2}).allclose(b, 1e-3, 0.0));
  EXPECT_FALSE(b.allclose(b.reshape({2, 1})));  // shapes must match
}

TEST(TensorCompare, AllcloseTreatsEqualInfinitiesAsCloseAndNaNsAsNot) {
  const double inf = std::numeric_limits<double>::infinity(), nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_TRUE(Tensor<double>::from({inf, -inf, 1.0}, {3}).allclose(Tensor<double>::from({inf, -inf, 1.0}, {3})));
  EXPECT_FALSE(Tensor<double>::scalar(inf).allclose(Tensor<double>::scalar(-inf)));
  EXPECT_FALSE(Tensor<double>::scalar(inf).allclose(Tensor<double>::scalar(1e308)));
  EXPECT_FALSE(Tensor<double>::scalar(nan).allclose(Tensor<double>::scalar(nan)));
}

// ---------------------------------------------------------------------------------------------------------------
// Printing

TEST(TensorPrint, SmallMatrixPrintsEveryValue) {
  EXPECT_EQ(print(Tensor<float>::from({1, 2.5f, -3, 4}, {2, 2})), "Tensor(shape=(2, 2)) [[1, 2.5],\n [-3, 4]]");
  EXPECT_EQ(print(Tensor<double>::from({1.0 / 3, 2}, {2})), "Tensor(shape=(2)) [0.333333, 2]");
  EXPECT_EQ(print(Tensor<float>::zeros({2, 1, 2})), "Tensor(shape=(2, 1, 2)) [[[0, 0]],\n [[0, 0]]]");
  EXPECT_EQ(print(Tensor<float>::zeros({2, 0})), "Tensor(shape=(2, 0)) []");
}

TEST(TensorPrint, ScalarAndUndefined) {
  EXPECT_EQ(print(Tensor<float>::scalar(2.5f)), "Tensor(shape=()) 2.5");
  EXPECT_EQ(print(Tensor<double>::scalar(1.0 / 3)), "Tensor(shape=()) 0.333333");
  EXPECT_EQ(print(Tensor<float>()), "Tensor(undefined)");
}

TEST(TensorPrint, UsesSixSignificantDigitsAndRestoresTheStreamsPrecision) {
  std::ostringstream os;
  os.precision(12);
  os << Tensor<double>::scalar(1.0 / 3) << ' ' << Tensor<double>::from({2.0 / 3}, {1}) << ' ' << 1.0 / 3;
  EXPECT_EQ(os.str(), "Tensor(shape=()) 0.333333 Tensor(shape=(1)) [0.666667] 0.333333333333");
}

TEST(TensorPrint, LongAxesAreElided) {
  Tensor<float> big = Tensor<float>::zeros({100, 100});
  for (Index i = 0; i < big.numel(); ++i) big[i] = static_cast<float>(i);
  const std::string s = print(big);
  EXPECT_NE(s.find("..."), std::string::npos);
  EXPECT_LT(s.size(), 400u);
  EXPECT_EQ(s.rfind("Tensor(shape=(100, 100)) [[0, 1, 2, ..., 97, 98, 99],\n [100, 101, 102, ..., 197, 198, 199],", 0),
            0u)
      << s;
  EXPECT_NE(s.find(",\n ...,\n [9700, 9701, 9702, ..., 9797, 9798, 9799],"), std::string::npos) << s;
  const std::string last = "[9900, 9901, 9902, ..., 9997, 9998, 9999]]";
  ASSERT_GE(s.size(), last.size());
  EXPECT_EQ(s.substr(s.size() - last.size()), last) << s;
  // Seven entries print in full; eight elide.
  EXPECT_EQ(print(Tensor<int64_t>::from({0, 1, 2, 3, 4, 5, 6}, {7})), "Tensor(shape=(7)) [0, 1, 2, 3, 4, 5, 6]");
  EXPECT_EQ(print(Tensor<int64_t>::from({0, 1, 2, 3, 4, 5, 6, 7}, {8})), "Tensor(shape=(8)) [0, 1, 2, ..., 5, 6, 7]");
}

// ---------------------------------------------------------------------------------------------------------------
// Element types and storage

TEST(TensorTypes, BoolTensorsHoldMasks) {
  Tensor<bool> m = Tensor<bool>::zeros({2, 3});
  EXPECT_FALSE(m(1, 2));
  m(1, 2) = true;
  EXPECT_TRUE(m[5]);
  EXPECT_TRUE(Tensor<bool>::ones({2}).equal(Tensor<bool>::from({true, true}, {2})));
  const Tensor<bool> f = Tensor<bool>::from(std::vector<bool>{true, false, true});
  EXPECT_EQ(f.shape(), Shape{3});
  EXPECT_FALSE(f[1]);
  EXPECT_EQ(print(f), "Tensor(shape=(3)) [true, false, true]");
  EXPECT_EQ(print(Tensor<bool>::scalar(true)), "Tensor(shape=()) true");
  EXPECT_TRUE(m.reshape({6}).shares_buffer_with(m));
  EXPECT_TRUE(m.clone().equal(m));
  EXPECT_TRUE(f.cast<float>().equal(Tensor<float>::from({1, 0, 1}, {3})));
  EXPECT_TRUE(aligned64(m));
}

TEST(TensorTypes, Int64TensorsHoldIds) {
  Tensor<std::int64_t> ids = Tensor<std::int64_t>::from({1, 5, 2, 9, 3, 7, 8, 0}, {2, 4});
  EXPECT_EQ(ids(1, 2), 8);
  ids += Tensor<std::int64_t>::ones({2, 4});
  EXPECT_EQ(ids(0, 3), 10);
  ids *= 2;
  EXPECT_EQ(ids(1, 3), 2);
  const std::int64_t big = std::int64_t(1) << 40;  // beyond float's and int32's exact range
  EXPECT_EQ(Tensor<std::int64_t>::scalar(big).item(), big);
  EXPECT_EQ(print(ids), "Tensor(shape=(2, 4)) [[4, 12, 6, 20],\n [8, 16, 18, 2]]");
  EXPECT_EQ(print(Tensor<std::int64_t>::scalar(-3)), "Tensor(shape=()) -3");
  EXPECT_TRUE(aligned64(ids));
}

TEST(TensorStorage, BuffersAre64ByteAligned) {
  for (Index n : {0, 1, 3, 7, 17, 1000}) {
    EXPECT_TRUE(aligned64(Tensor<float>::zeros({n})));
    EXPECT_TRUE(aligned64(Tensor<double>::empty({n, 3})));
    EXPECT_TRUE(aligned64(Tensor<std::int64_t>::zeros({n})));
    EXPECT_TRUE(aligned64(Tensor<bool>::zeros({n})));
  }
  EXPECT_TRUE(aligned64(Tensor<float>::scalar(1.0f)));
  EXPECT_TRUE(aligned64(Tensor<float>::from({1, 2, 3}, {3}).cast<double>()));
}

TEST(TensorStorage, UndefinedTensorHasNoBuffer) {
  const Tensor<float> u;
  EXPECT_FALSE(u.defined());
  EXPECT_EQ(u.data(), nullptr);
  EXPECT_EQ(u.numel(), 0);
  EXPECT_TRUE(Tensor<float>::zeros({0}).defined());
}

TEST(Tensor, DefaultIsOneDimensionalAndEmptyAndDistinctFromAScalar) {
  const Tensor<float> t;
  EXPECT_FALSE(t.defined());
  EXPECT_EQ(t.shape(), (Shape{0}));
  EXPECT_EQ(t.dim(), 1);
  EXPECT_EQ(t.size(0), 0);
  EXPECT_EQ(t.numel(), 0);
  const Tensor<float> copy = t;
  EXPECT_EQ(copy.shape(), (Shape{0}));
  const auto scalar = Tensor<float>::zeros({});
  EXPECT_EQ(scalar.shape(), Shape{});
  EXPECT_EQ(scalar.dim(), 0);
  EXPECT_EQ(scalar.numel(), 1);
  EXPECT_FALSE(t.equal(scalar));
  EXPECT_TRUE(t.equal(Tensor<float>::empty({0})));
}

TEST(TensorStorage, PartBuffersServeAPartFromItsOwnBuffersAndReturnThemAfterIt) {
  release_buffer_cache();  // else the part's first requests may get larger cached buffers (up to three times)
  detail::PartBuffers part;
  const std::size_t big = detail::BufferCache::size_class(3000 * sizeof(float)),
                    small = detail::BufferCache::size_class(1000 * sizeof(float));
  const auto run_part = [&] {
    ExecutionContext context;
    context.buffers = &part;
    ExecutionScope scope(context);
    EXPECT_EQ(detail::execution_context().buffers, &part);
    auto a = Tensor<float>::full({3000}, 1.0f);
    const Tensor<float> b = Tensor<float>::full({1000}, 2.0f);
    const float* freed = a.data();
    a = Tensor<float>();  // back to the part, not to the shared cache
    const Tensor<float> c = Tensor<float>::full({3000}, 3.0f);
    EXPECT_EQ(c.data(), freed);
    EXPECT_EQ(c.data()[2999], 3.0f);
    EXPECT_EQ(b.data()[999], 2.0f);
  };
  run_part();
  EXPECT_EQ(detail::execution_context().buffers, nullptr);
  const std::size_t cached_before = buffer_cache_bytes();
  part.release();  // the part's two buffers go to the shared cache
  EXPECT_EQ(buffer_cache_bytes(), cached_before + big + small);
  part.reserve();  // and come back from it, one of each class
  EXPECT_EQ(buffer_cache_bytes(), cached_before);
  const std::size_t fresh_before = detail::buffer_cache().system_allocations();
  run_part();
  EXPECT_EQ(detail::buffer_cache().system_allocations(), fresh_before);  // served by what reserve() took
  part.release();
  EXPECT_EQ(buffer_cache_bytes(), cached_before + big + small);
  // A copy carries the classes, never buffers.
  detail::PartBuffers copy(part);
  copy.reserve();
  EXPECT_EQ(buffer_cache_bytes(), cached_before);
  copy.release();
  EXPECT_EQ(buffer_cache_bytes(), cached_before + big + small);
}

TEST(TensorStorage, TheBufferCacheReusesAnExactClassFirstThenOneUpToThreeTimesTheSize) {
  detail::BufferCache cache;  // a private cache: the process-wide one holds other tests' buffers
  const std::size_t small = detail::BufferCache::size_class(5000), big = detail::BufferCache::size_class(9000);
  ASSERT_EQ(small, 5120u);
  ASSERT_EQ(big, 10240u);
  std::size_t bytes = big;
  void* b = cache.get(bytes);
  EXPECT_EQ(bytes, big);
  cache.put(b, bytes);
  bytes = small;
  void* s = cache.get(bytes);  // no 5120-byte buffer cached: the 10240-byte one (at most 3x the size) serves
  EXPECT_EQ(s, b);
  EXPECT_EQ(bytes, big);        // and must go back under its own class
  EXPECT_EQ(cache.cached_bytes(), 0u);
  const std::size_t fresh_before = cache.system_allocations();
  std::size_t other = small;
  void* s2 = cache.get(other);  // nothing cached now: a new buffer of the requested class
  EXPECT_EQ(other, small);
  EXPECT_EQ(cache.system_allocations(), fresh_before + 1);
  cache.put(s, bytes);
  cache.put(s2, other);
  std::size_t again = small;
  EXPECT_EQ(cache.get(again), s2);  // the exact class comes first
  EXPECT_EQ(again, small);
  cache.put(s2, again);
  std::size_t tiny = 1664;  // both cached buffers are over three times that: a new buffer is made
  void* t = cache.get(tiny);
  EXPECT_NE(t, s);
  EXPECT_NE(t, s2);
  EXPECT_EQ(tiny, 1664u);
  cache.put(t, tiny);
  EXPECT_EQ(cache.cached_bytes(), small + big + 1664);
  std::size_t medium = 2048;  // 5120 is 2.5 times that: the 5120-byte buffer serves
  EXPECT_EQ(cache.get(medium), s2);
  EXPECT_EQ(medium, small);
  cache.put(s2, medium);
  cache.release();
  EXPECT_EQ(cache.cached_bytes(), 0u);
}

TEST(TensorStorage, BuffersOutliveTheThreadThatMadeThemAndAnyThreadMayFreeThem) {
  // Buffer control blocks and shapes come from free lists per thread (detail::SmallObjectPool): blocks made on one
  // thread and freed on another join the second thread's list, and a thread's list is freed when it ends (LSan
  // checks it).
  std::vector<Tensor<float>> made;
  std::thread maker([&made] {
    for (int i = 0; i < 300; ++i) made.push_back(Tensor<float>::full({i % 7 + 1}, static_cast<float>(i)));
    std::vector<Tensor<float>> scratch(100, Tensor<float>::zeros({3}));  // made and freed here
  });
  maker.join();
  for (int i = 0; i < 300; ++i) {
    ASSERT_EQ(made[static_cast<std::size_t>(i)].numel(), i % 7 + 1);
    EXPECT_EQ(made[static_cast<std::size_t>(i)].data()[0], static_cast<float>(i));
  }
  std::thread freer([&made] { made.resize(150); });  // half freed on a third thread
  freer.join();
  made.clear();  // the rest on this one
  // More blocks than one list keeps: the surplus goes back to the system (ASan and LSan check the path;
  // small_object_pool_test checks the bound).
  std::vector<Tensor<float>> many;
  for (int i = 0; i < 20000; ++i) many.push_back(Tensor<float>::zeros({1}));
  many.clear();
  EXPECT_EQ(Tensor<float>::ones({2}).data()[1], 1.0f);
}

}  // namespace tensor_test
