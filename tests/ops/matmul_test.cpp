#include "eigenformer/ops/matmul.hpp"

#include "support/test_support.hpp"

using namespace eigenformer;

namespace matmul_test {

using eigenformer::testing::random_var;
using Inputs = std::vector<Var<double>>;

namespace {

/// A copy of t with its last two axes swapped (a reference for the transpose flags).
Tensor<double> transposed_copy(const Tensor<double>& t) {
  Shape s = t.shape();
  std::swap(s[s.size() - 2], s[s.size() - 1]);
  Tensor<double> out = Tensor<double>::empty(s);
  const Index r = t.shape()[t.dim() - 2], c = t.shape()[t.dim() - 1];
  for (Index b = 0; b < t.numel() / (r * c); ++b)
    for (Index i = 0; i < r; ++i)
      for (Index j = 0; j < c; ++j) out[b * r * c + j * r + i] = t[b * r * c + i * c + j];
  return out;
}

/// (..., rows, cols), or (..., cols, rows) when the operand is passed transposed.
Shape stored(Shape batch, Index rows, Index cols, bool transposed) {
  batch.push_back(transposed ? cols : rows);
  batch.push_back(transposed ? rows : cols);
  return batch;
}

}  // namespace

TEST(Matmul, BatchedTransposedBMatchesPyTorch) {
  // torch: a @ b.transpose(-1, -2)
  Var<double> a(Tensor<double>::from({0.661, 0.267, 0.062, 0.621, -0.452, -0.166, -1.523, 0.382, -1.028, -0.563,
                                      -0.892, -0.058},
                                     {2, 2, 3}));
  Var<double> b(Tensor<double>::from({-0.786, -0.439, 1.366, -0.509, -1.615, 0.435, -0.055, -0.526, -0.992, -0.25,
                                      -0.32, -0.139, -0.439, 0.629, -0.184, 0.387, -0.343, 0.476, -2.005, 0.176, 0.471,
                                      -0.883, 0.157, 0.473},
                                     {2, 4, 3}));
  const Tensor<double> expected = Tensor<double>::from(
      {-0.5520670000000001, -0.740684, -0.238301, -0.25930800000000004, -0.5164340000000001, 0.34168099999999996,
       0.36826900000000007, 0.012464000000000024, 1.098027, -1.209755, 2.636659, 0.9185389999999999,
       -0.30323900000000004, 0.060467000000000014, 0.9445049999999999, 0.3296509999999999},
      {2, 2, 4});
  EXPECT_TRUE(matmul(a, b, false, true).value().allclose(expected, 1e-12, 1e-14));
}

TEST(Matmul, BatchedTimesSharedWeightMatchesPyTorch) {
  Var<float> a(Tensor<float>::from({0.661f, 0.267f, 0.062f, 0.621f, -0.452f, -0.166f, -1.523f, 0.382f, -1.028f,
                                    -0.563f, -0.892f, -0.058f},
                                   {2, 2, 3}));
  Var<float> w(Tensor<float>::from({0.803f, 0.175f, 0.089f, -0.614f, 0.046f, -1.368f}, {3, 2}));
  const Tensor<float> expected = Tensor<float>::from(
      {0.557398f, -0.133079f, 0.450799f, 0.613291f, -1.236259f, 0.905231f, -0.534145f, 0.528507f}, {2, 2, 2});
  const Var<float> y = matmul(a, w);
  EXPECT_EQ(y.shape(), (Shape{2, 2, 2}));
  EXPECT_TRUE(y.value().allclose(expected, 1e-5, 1e-6));
}

TEST(Matmul, TransposeFlagsEqualProductsOfTransposedCopies) {
  const Var<double> a = random_var({2, 3, 4, 5}, 1, false), b = random_var({2, 3, 5, 6}, 2, false);
  const Var<double> at(transposed_copy(a.value())), bt(transposed_copy(b.value()));
  const Tensor<double> reference = matmul(a, b).value();
  EXPECT_TRUE(matmul(at, b, true, false).value().allclose(reference, 1e-12, 1e-12));
  EXPECT_TRUE(matmul(a, bt, false, true).value().allclose(reference, 1e-12, 1e-12));
  EXPECT_TRUE(matmul(at, bt, true, true).value().allclose(reference, 1e-12, 1e-12));

  const Var<double> w = random_var({5, 6}, 3, false);
  const Tensor<double> shared = matmul(a, w).value();
  EXPECT_TRUE(matmul(at, Var<double>(transposed_copy(w.value())), true, true).value().allclose(shared, 1e-12, 1e-12));
}

TEST(Matmul, PassesGradcheckIn2DForEveryTransposeCombination) {
  std::uint64_t seed = 10;
  for (const auto& [m, k, n] : {std::tuple<Index, Index, Index>{1, 1, 1}, {3, 5, 7}, {4, 1, 2}})
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        Var<double> a = random_var(stored({}, m, k, ta), seed++), b = random_var(stored({}, k, n, tb), seed++);
        EXPECT_GRADCHECK([ta, tb](const Inputs& v) { return matmul(v[0], v[1], ta, tb); }, Inputs{a, b});
      }
}

TEST(Matmul, PassesGradcheckBatchedIn3DAnd4DForEveryTransposeCombination) {
  std::uint64_t seed = 30;
  for (const Shape& batch : {Shape{3}, Shape{2, 2}})
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        Var<double> a = random_var(stored(batch, 3, 4, ta), seed++), b = random_var(stored(batch, 4, 2, tb), seed++);
        EXPECT_GRADCHECK([ta, tb](const Inputs& v) { return matmul(v[0], v[1], ta, tb); }, Inputs{a, b});
      }
}

TEST(Matmul, PassesGradcheckWithASharedTwoDimensionalB) {
  std::uint64_t seed = 50;
  for (const Shape& batch : {Shape{3}, Shape{2, 2}, Shape{1}})
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        Var<double> a = random_var(stored(batch, 3, 5, ta), seed++), b = random_var(stored({}, 5, 2, tb), seed++);
        EXPECT_GRADCHECK([ta, tb](const Inputs& v) { return matmul(v[0], v[1], ta, tb); }, Inputs{a, b});
      }
}

TEST(Matmul, GradientReachesOnlyTheInputsThatRequireIt) {
  Var<double> a = random_var({2, 3, 4}, 70), w = random_var({4, 5}, 71, false);
  EXPECT_GRADCHECK([](const Inputs& v) { return matmul(v[0], v[1]); }, Inputs{a, w});
  Var<double> c = random_var({2, 3, 4}, 72, false), d = random_var({2, 4, 5}, 73);
  EXPECT_GRADCHECK([](const Inputs& v) { return matmul(v[0], v[1], false, false); }, Inputs{c, d});
  matmul(a, w).backward(Tensor<double>::ones({2, 3, 5}));
  EXPECT_TRUE(a.has_grad());
  EXPECT_FALSE(w.has_grad());
  matmul(c, d).backward(Tensor<double>::ones({2, 3, 5}));
  EXPECT_FALSE(c.has_grad());
  EXPECT_TRUE(d.has_grad());
}

TEST(Matmul, EmptyInnerDimensionGivesZerosAndZeroGradients) {
  Var<double> a(Tensor<double>::zeros({2, 0}), true), b(Tensor<double>::zeros({0, 3}), true);
  Var<double> y = matmul(a, b);
  EXPECT_TRUE(y.value().equal(Tensor<double>::zeros({2, 3})));
  y.backward(Tensor<double>::ones({2, 3}));
  EXPECT_EQ(a.grad().shape(), (Shape{2, 0}));
  EXPECT_EQ(b.grad().shape(), (Shape{0, 3}));
}

TEST(Matmul, BadShapesThrowShapeErrorNamingMatmulAndTheShapes) {
  Var<float> a(Tensor<float>::zeros({2, 3})), b(Tensor<float>::zeros({4, 5}));
  EXPECT_THROW_WITH(matmul(a, b), ShapeError, {"matmul: inner dimensions differ: a is (2, 3), b is (4, 5)"});
  EXPECT_THROW_WITH(matmul(a, b, true, false), ShapeError,
                    {"inner dimensions differ", "a is (2, 3) (transposed: (3, 2))", "b is (4, 5)"});
  EXPECT_THROW_WITH(matmul(a, Var<float>(Tensor<float>::zeros({2, 5})), false, true), ShapeError,
                    {"b is (2, 5) (transposed: (5, 2))"});
  Var<float> a3(Tensor<float>::zeros({2, 2, 3})), b3(Tensor<float>::zeros({3, 3, 4}));
  EXPECT_THROW_WITH(matmul(a3, b3), ShapeError, {"matmul", "batch dimensions differ", "(2, 2, 3)", "(3, 3, 4)"});
  EXPECT_THROW_WITH(matmul(Var<float>(Tensor<float>::zeros({3, 4})), b3), ShapeError, {"matmul", "batch"});
  EXPECT_THROW_WITH(matmul(Var<float>(Tensor<float>::zeros({3})), b), ShapeError, {"matmul", "a is (3)", "rank >= 2"});
}

}  // namespace matmul_test
