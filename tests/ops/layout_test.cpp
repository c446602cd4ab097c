#include "eigenformer/ops/layout.hpp"

#include "eigenformer/ops/elementwise.hpp"
#include "support/test_support.hpp"

using namespace eigenformer;

namespace layout_test {

using eigenformer::testing::random_var;
using Inputs = std::vector<Var<double>>;

namespace {

// 0, 1, ..., numel - 1 in the given shape.
Var<double> iota_var(const Shape& s, bool requires_grad = false) {
  Tensor<double> t = Tensor<double>::empty(s);
  for (Index i = 0; i < t.numel(); ++i) t[i] = static_cast<double>(i);
  return Var<double>(t, requires_grad);
}

Tensor<double> values(const std::vector<double>& v, const Shape& s) { return Tensor<double>::from(v, s); }

Tensor<std::int64_t> ids(const std::vector<std::int64_t>& v) { return Tensor<std::int64_t>::from(v); }

}  // namespace

// Reference numbers: torch 1.13.1 on torch.arange(numel).reshape(shape).
TEST(Layout, ReshapeIsAViewAndInfersMinusOne) {
  Var<double> x = iota_var({2, 3, 4});
  Var<double> y = reshape(x, {4, -1});
  EXPECT_EQ(y.shape(), (Shape{4, 6}));
  EXPECT_TRUE(y.value().shares_buffer_with(x.value()));
  EXPECT_EQ(reshape(x, {-1}).shape(), (Shape{24}));
  EXPECT_EQ(reshape(reshape(x, {24}), {1, 2, 1, 12}).shape(), (Shape{1, 2, 1, 12}));
}

TEST(Layout, TransposeAndPermuteMatchPyTorch) {
  Var<double> x = iota_var({2, 3, 4});
  EXPECT_TRUE(transpose(x, 0, 2).value().equal(values(
      {0, 12, 4, 16, 8, 20, 1, 13, 5, 17, 9, 21, 2, 14, 6, 18, 10, 22, 3, 15, 7, 19, 11, 23}, {4, 3, 2})));
  EXPECT_TRUE(transpose(x, -1, -2).value().equal(values(
      {0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11, 12, 16, 20, 13, 17, 21, 14, 18, 22, 15, 19, 23}, {2, 4, 3})));
  EXPECT_TRUE(permute(x, {2, 0, 1}).value().equal(values(
      {0, 4, 8, 12, 16, 20, 1, 5, 9, 13, 17, 21, 2, 6, 10, 14, 18, 22, 3, 7, 11, 15, 19, 23}, {4, 2, 3})));
  EXPECT_TRUE(permute(x, {-3, -2, -1}).value().equal(x.value()));
  EXPECT_TRUE(transpose(x, 1, 1).value().equal(x.value()));
}

TEST(Layout, HeadSplitPermuteMatchesPyTorch) {
  // (B, T, H, D) = (2, 3, 2, 2) -> (B, H, T, D)
  Var<double> x = iota_var({2, 3, 2, 2});
  Var<double> y = permute(x, {0, 2, 1, 3});
  EXPECT_TRUE(y.value().equal(values(
      {0, 1, 4, 5, 8, 9, 2, 3, 6, 7, 10, 11, 12, 13, 16, 17, 20, 21, 14, 15, 18, 19, 22, 23}, {2, 2, 3, 2})));
  EXPECT_TRUE(permute(y, {0, 2, 1, 3}).value().equal(x.value()));  // the head merge is its own inverse
}

TEST(Layout, EveryPermuteKernelPathAgreesWithElementwiseIndexing) {
  Var<double> x = random_var({2, 3, 4, 5}, 9);
  const std::vector<std::vector<Index>> perms = {{0, 1, 2, 3}, {0, 2, 1, 3}, {1, 0, 2, 3}, {0, 1, 3, 2},
                                                 {3, 1, 0, 2}, {3, 2, 1, 0}, {2, 3, 0, 1}, {1, 2, 3, 0}};
  for (const auto& p : perms) {
    const Tensor<double> y = permute(x, p).value();
    const Shape& s = x.shape();
    for (Index i0 = 0; i0 < s[0]; ++i0)
      for (Index i1 = 0; i1 < s[1]; ++i1)
        for (Index i2 = 0; i2 < s[2]; ++i2)
          for (Index i3 = 0; i3 < s[3]; ++i3) {
            const Index in[4] = {i0, i1, i2, i3};
            ASSERT_EQ(y.at({in[p[0]], in[p[1]], in[p[2]], in[p[3]]}), x.value()(i0, i1, i2, i3))
                << to_string(p) << " at " << to_string({i0, i1, i2, i3});
          }
  }
  Var<double> s(Tensor<double>::scalar(2.5));
  EXPECT_EQ(permute(s, {}).item(), 2.5);
}

TEST(Layout, ConcatMatchesPyTorch) {
  Var<double> x = iota_var({2, 3, 4});
  Var<double> b(values({100, 101, 102, 103, 104, 105, 106, 107}, {2, 1, 4}));
  EXPECT_TRUE(concat({x, b}, 1).value().equal(
      values({0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 100, 101, 102, 103,
              12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 104, 105, 106, 107},
             {2, 4, 4})));
  Var<double> c(values({100, 101, 102, 103, 104, 105}, {2, 3, 1}));
  EXPECT_TRUE(concat({x, c}, -1).value().equal(
      values({0,  1,  2,  3,  100, 4,  5,  6,  7,  101, 8,  9,  10, 11, 102,
              12, 13, 14, 15, 103, 16, 17, 18, 19, 104, 20, 21, 22, 23, 105},
             {2, 3, 5})));
  Var<double> empty(Tensor<double>::zeros({2, 0, 4}));
  EXPECT_TRUE(concat({empty, x, empty}, 1).value().equal(x.value()));
}

TEST(Layout, SplitAndChunkMatchPyTorch) {
  Var<double> x = iota_var({2, 3, 4});
  const std::vector<Var<double>> p = split(x, {1, 3}, 2);
  ASSERT_EQ(p.size(), 2u);
  EXPECT_TRUE(p[0].value().equal(values({0, 4, 8, 12, 16, 20}, {2, 3, 1})));
  EXPECT_TRUE(p[1].value().equal(
      values({1, 2, 3, 5, 6, 7, 9, 10, 11, 13, 14, 15, 17, 18, 19, 21, 22, 23}, {2, 3, 3})));

  const std::vector<Var<double>> c = chunk(iota_var({5, 2}), 3, 0);  // sizes 2, 2, 1
  ASSERT_EQ(c.size(), 3u);
  EXPECT_TRUE(c[0].value().equal(values({0, 1, 2, 3}, {2, 2})));
  EXPECT_TRUE(c[1].value().equal(values({4, 5, 6, 7}, {2, 2})));
  EXPECT_TRUE(c[2].value().equal(values({8, 9}, {1, 2})));
  EXPECT_EQ(chunk(iota_var({6}), 4, 0).size(), 3u);  // torch: sizes 2, 2, 2
  EXPECT_EQ(chunk(iota_var({2}), 5, -1).size(), 2u);  // torch: sizes 1, 1
  const std::vector<Var<double>> e = chunk(Var<double>(Tensor<double>::zeros({0, 3})), 3, 0);
  ASSERT_EQ(e.size(), 3u);  // torch: three (0, 3) chunks
  EXPECT_EQ(e[2].shape(), (Shape{0, 3}));
}

TEST(Layout, IndexSelectMatchesPyTorchAndScatterAddsRepeats) {
  Var<double> x = iota_var({2, 3, 4}, true);
  EXPECT_TRUE(index_select(x, 2, ids({3, 0, 3})).value().equal(
      values({3, 0, 3, 7, 4, 7, 11, 8, 11, 15, 12, 15, 19, 16, 19, 23, 20, 23}, {2, 3, 3})));
  EXPECT_TRUE(index_select(x, -3, ids({1, 1})).value().equal(values(
      {12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23}, {2, 3, 4})));
  EXPECT_EQ(index_select(x, 1, Tensor<std::int64_t>::scalar(2)).shape(), (Shape{2, 1, 4}));  // as torch

  Var<double> y = index_select(x, 1, ids({2, 0, 2, 2}));  // (2, 4, 4)
  Tensor<double> seed = Tensor<double>::empty(y.shape());
  for (Index i = 0; i < seed.numel(); ++i) seed[i] = static_cast<double>(i + 1);
  y.backward(seed);
  EXPECT_TRUE(x.grad().equal(
      values({5, 6, 7, 8, 0, 0, 0, 0, 23, 26, 29, 32, 21, 22, 23, 24, 0, 0, 0, 0, 71, 74, 77, 80}, {2, 3, 4})));
}

TEST(Layout, IndexSelectKeepsItsOwnCopyOfTheIndex) {
  Var<double> x = iota_var({4, 2}, true);
  Tensor<std::int64_t> index = ids({1, 3});
  Var<double> y = index_select(x, 0, index);
  index[0] = 0;  // reused by the caller before backward
  y.backward(Tensor<double>::ones({2, 2}));
  EXPECT_TRUE(x.grad().equal(values({0, 0, 1, 1, 0, 0, 1, 1}, {4, 2})));
}

TEST(Layout, SelectRemovesTheAxis) {
  Var<double> x = iota_var({2, 3, 4});
  EXPECT_TRUE(select(x, 1, 0).value().equal(values({0, 1, 2, 3, 12, 13, 14, 15}, {2, 4})));  // CLS pooling
  EXPECT_TRUE(select(x, -1, -1).value().equal(values({3, 7, 11, 15, 19, 23}, {2, 3})));
  EXPECT_EQ(select(iota_var({5}), 0, 2).value().dim(), 0);
  EXPECT_EQ(select(iota_var({5}), 0, 2).item(), 2.0);
}

TEST(Layout, SliceGradientsAccumulateIntoAnExistingGradient) {
  // The second backward finds x.grad defined and adds the slice gradients in place.
  Var<double> x = iota_var({3, 4}, true);
  Var<double> y = select(x, 0, 1);
  y.backward(Tensor<double>::ones({4}), true);
  y.backward(Tensor<double>::ones({4}));
  EXPECT_TRUE(x.grad().equal(values({0, 0, 0, 0, 2, 2, 2, 2, 0, 0, 0, 0}, {3, 4})));
}

TEST(Layout, ReshapeTransposePermutePassGradcheck) {
  std::uint64_t seed = 40;
  for (const Shape& s : {Shape{1, 1}, Shape{3, 5}, Shape{2, 3, 5}, Shape{2, 3, 1, 4}}) {
    Var<double> x = random_var(s, seed++);
    const Index r = x.dim();
    EXPECT_GRADCHECK([](const Inputs& v) { return reshape(v[0], {-1}); }, Inputs{x});
    EXPECT_GRADCHECK([s](const Inputs& v) { return reshape(v[0], {s.back(), -1}); }, Inputs{x});
    EXPECT_GRADCHECK([](const Inputs& v) { return transpose(v[0], 0, -1); }, Inputs{x});
    EXPECT_GRADCHECK([](const Inputs& v) { return transpose(v[0], -1, -2); }, Inputs{x});
    std::vector<Index> rev(static_cast<std::size_t>(r));
    for (Index i = 0; i < r; ++i) rev[static_cast<std::size_t>(i)] = r - 1 - i;
    EXPECT_GRADCHECK([rev](const Inputs& v) { return permute(v[0], rev); }, Inputs{x});
  }
  Var<double> x4 = random_var({2, 3, 2, 3}, 50);
  for (const std::vector<Index>& p : {std::vector<Index>{0, 2, 1, 3}, {0, 1, 3, 2}, {3, 1, 0, 2}, {1, 2, 3, 0}})
    EXPECT_GRADCHECK([p](const Inputs& v) { return permute(v[0], p); }, Inputs{x4});
}

TEST(Layout, ConcatSplitChunkPassGradcheck) {
  Var<double> a = random_var({2, 3, 4}, 60), b = random_var({2, 1, 4}, 61), c = random_var({2, 5, 4}, 62);
  EXPECT_GRADCHECK([](const Inputs& v) { return concat({v[0], v[1], v[2]}, 1); }, Inputs{a, b, c});
  EXPECT_GRADCHECK([](const Inputs& v) { return concat({v[0], v[1], v[0]}, -2); }, Inputs{a, b});  // a used twice
  Var<double> d = random_var({2, 3, 3}, 63), e = random_var({1, 1}, 64), f = random_var({1, 1}, 65);
  EXPECT_GRADCHECK([](const Inputs& v) { return concat({v[0], v[1]}, -1); }, Inputs{a, d.detach()});
  EXPECT_GRADCHECK([](const Inputs& v) { return concat({v[0], v[1]}, 0); }, Inputs{e, f});

  // Slices recombined in another order (and one scaled, one repeated): every slice's backward reaches x, the
  // first through a zero tensor and the rest in place.
  for (const auto& [shape, slice_axis] : std::vector<std::pair<Shape, Index>>{{{5}, 0}, {{3, 5}, 1},
                                                                              {{2, 5, 3}, -2}, {{2, 3, 5, 2}, 2}}) {
    const Index axis = slice_axis;  // a lambda cannot capture a structured binding before C++20
    Var<double> x = random_var(shape, 70 + static_cast<std::uint64_t>(axis + 5));
    EXPECT_GRADCHECK(
        [axis](const Inputs& v) {
          const std::vector<Var<double>> p = split(v[0], {2, 0, 1, 2}, axis);
          return concat({p[3], scale(p[0], 3.0), p[2], p[3], p[1]}, axis);
        },
        Inputs{x});
    EXPECT_GRADCHECK(
        [axis](const Inputs& v) {
          const std::vector<Var<double>> p = chunk(v[0], 2, axis);
          return concat({scale(p[1], -2.0), p[0]}, axis);
        },
        Inputs{x});
  }
  Var<double> one = random_var({1, 1}, 80);
  EXPECT_GRADCHECK([](const Inputs& v) { return split(v[0], {1}, 0)[0]; }, Inputs{one});
}

TEST(Layout, IndexSelectAndSelectPassGradcheck) {
  Var<double> x = random_var({3, 4, 5}, 90);
  EXPECT_GRADCHECK([](const Inputs& v) { return index_select(v[0], 0, ids({2, 0, 2})); }, Inputs{x});
  EXPECT_GRADCHECK([](const Inputs& v) { return index_select(v[0], 1, ids({3, 3, 3, 1, 0})); }, Inputs{x});
  EXPECT_GRADCHECK([](const Inputs& v) { return index_select(v[0], -1, ids({4})); }, Inputs{x});
  EXPECT_GRADCHECK([](const Inputs& v) { return index_select(v[0], 2, ids({})); }, Inputs{x});
  Var<double> one = random_var({1, 1}, 91);
  EXPECT_GRADCHECK([](const Inputs& v) { return index_select(v[0], 1, ids({0, 0})); }, Inputs{one});
  EXPECT_GRADCHECK([](const Inputs& v) { return select(v[0], 1, 0); }, Inputs{x});
  EXPECT_GRADCHECK([](const Inputs& v) { return select(v[0], 0, -1); }, Inputs{x});
  EXPECT_GRADCHECK([](const Inputs& v) { return select(v[0], -1, 3); }, Inputs{x});
  EXPECT_GRADCHECK([](const Inputs& v) { return select(v[0], 0, 0); }, Inputs{one});
  Var<double> x4 = random_var({2, 3, 1, 3}, 92);
  EXPECT_GRADCHECK([](const Inputs& v) { return index_select(v[0], 2, ids({0, 0, 0})); }, Inputs{x4});
  // Two selects of the same input: the second accumulates in place into the first's gradient.
  EXPECT_GRADCHECK([](const Inputs& v) { return add(select(v[0], 1, 0), scale(select(v[0], 1, 2), 2.0)); },
                   Inputs{x4});
  EXPECT_GRADCHECK([](const Inputs& v) { return add(select(v[0], -1, 1), scale(select(v[0], -1, 1), 2.0)); },
                   Inputs{x4});  // the same slice twice: the in-place path must add, not overwrite
}

TEST(Layout, BadShapesThrowShapeErrorNamingTheOp) {
  Var<double> x = iota_var({2, 3});
  EXPECT_THROW_WITH(reshape(x, {4, 2}), ShapeError, {"reshape", "(2, 3)", "(4, 2)"});
  EXPECT_THROW_WITH(reshape(x, {-1, 4}), ShapeError, {"reshape", "(2, 3)"});
  EXPECT_THROW_WITH(concat({x, iota_var({2, 4})}, 0), ShapeError, {"concat", "xs[1]", "(2, 4)", "(2, 3)", "axis 0"});
  EXPECT_THROW_WITH(concat({x, iota_var({2, 3, 1})}, 1), ShapeError, {"concat", "xs[1]", "(2, 3, 1)"});
  EXPECT_THROW_WITH(index_select(x, 0, Tensor<std::int64_t>::zeros({2, 2})), ShapeError, {"index_select", "(2, 2)"});
}

TEST(Layout, BadAxesAndValuesThrowValueErrorNamingTheOp) {
  Var<double> x = iota_var({2, 3, 4});
  EXPECT_THROW_WITH(transpose(x, 0, 3), ValueError, {"transpose", "axis 3", "rank 3"});
  EXPECT_THROW_WITH(permute(x, {0, 1}), ValueError, {"permute", "(0, 1)", "expected 3"});
  EXPECT_THROW_WITH(permute(x, {0, 2, -1}), ValueError, {"permute", "(0, 2, -1)", "not a permutation", "axis 2"});
  EXPECT_THROW_WITH(permute(x, {0, 1, 3}), ValueError, {"permute", "axis 3"});
  EXPECT_THROW_WITH(concat(std::vector<Var<double>>{}, 0), ValueError, {"concat", "empty"});
  EXPECT_THROW_WITH(concat({x, x}, -4), ValueError, {"concat", "axis -4"});
  EXPECT_THROW_WITH(split(x, {1, 2}, 2), ValueError, {"split", "(1, 2)", "sum to 3", "expected 4", "axis 2"});
  EXPECT_THROW_WITH(split(x, {5, -1}, 2), ValueError, {"split", "(5, -1)", "negative"});
  EXPECT_THROW_WITH(split(x, {2}, 3), ValueError, {"split", "axis 3"});
  EXPECT_THROW_WITH(chunk(x, 0, 1), ValueError, {"chunk", "n is 0"});
  EXPECT_THROW_WITH(chunk(x, 2, 5), ValueError, {"chunk", "axis 5"});
  EXPECT_THROW_WITH(index_select(x, 2, ids({0, 3, 4})), ValueError,
                    {"index_select", "index 4", "position 2", "axis 2", "size 4"});
  EXPECT_THROW_WITH(index_select(x, 1, ids({-1})), ValueError, {"index_select", "index -1", "position 0", "size 3"});
  EXPECT_THROW_WITH(index_select(x, -5, ids({0})), ValueError, {"index_select", "axis -5"});
  EXPECT_THROW_WITH(select(x, 1, 3), ValueError, {"select", "index 3", "axis 1", "size 3"});
  EXPECT_THROW_WITH(select(x, 1, -4), ValueError, {"select", "index -4", "-3 <= index < 3"});
  EXPECT_THROW_WITH(select(x, 3, 0), ValueError, {"select", "axis 3"});
}

TEST(Select, InPlaceGradientAddLeavesASharedGradientBufferAlone) {
  // z = h + u hands the same dz to h and u (non-leaf gradients share buffers until written); select(h) then adds
  // its gradient into h's. The add must not reach u's gradient, so k.grad stays dz exactly.
  Var<double> x(Tensor<double>::from({1, 2, 3, 4}, {2, 2}), true), k(Tensor<double>::from({5, 6, 7, 8}, {2, 2}), true);
  const Var<double> h = x * 2.0, u = k * 1.0;
  const Var<double> loss = add(h + u, reshape(select(h, 0, 1), {1, 2}));  // (2, 2) + (1, 2) broadcast
  loss.backward(Tensor<double>::ones({2, 2}));
  EXPECT_TRUE(k.grad().equal(Tensor<double>::ones({2, 2})));
  // dh = ones + row 1 gets the select's gradient summed over the broadcast rows (2 each): x.grad = 2 * dh.
  EXPECT_TRUE(x.grad().equal(Tensor<double>::from({2, 2, 6, 6}, {2, 2})));
}

}  // namespace layout_test
