#include "eigenformer/ops/masking.hpp"

#include <cmath>
#include <limits>

#include "support/test_support.hpp"

using namespace eigenformer;

namespace masking_test {

using eigenformer::testing::random_var;
using Inputs = std::vector<Var<double>>;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// 0, 1, ..., numel - 1 in the given shape.
Var<double> iota_var(const Shape& s, bool requires_grad = false) {
  Tensor<double> t = Tensor<double>::empty(s);
  for (Index i = 0; i < t.numel(); ++i) t[i] = static_cast<double>(i);
  return Var<double>(t, requires_grad);
}

// A mask of the given shape with a fixed pseudo-random pattern (about one entry in three true).
Tensor<bool> pattern_mask(const Shape& s, unsigned salt) {
  Tensor<bool> m = Tensor<bool>::empty(s);
  for (Index i = 0; i < m.numel(); ++i) m[i] = (static_cast<unsigned>(i) * 7u + salt) % 3u == 0u;
  return m;
}

// The mask entry that broadcasting pairs with x's element at multi-index idx.
bool broadcast_entry(const Tensor<bool>& m, const std::vector<Index>& idx) {
  std::vector<Index> mi(static_cast<std::size_t>(m.dim()));
  const std::size_t lead = idx.size() - mi.size();
  for (std::size_t d = 0; d < mi.size(); ++d) mi[d] = m.shape()[d] == 1 ? 0 : idx[lead + d];
  return m.at(mi);
}

// masked_fill by the definition, one element at a time.
Tensor<double> reference_fill(const Tensor<double>& x, const Tensor<bool>& m, double value) {
  Tensor<double> out = x.clone();
  const Shape st = detail::strides_of(x.shape());
  for (Index i = 0; i < x.numel(); ++i) {
    std::vector<Index> idx(x.shape().size());
    for (std::size_t d = 0; d < idx.size(); ++d) idx[d] = (i / st[d]) % x.shape()[d];
    if (broadcast_entry(m, idx)) out[i] = value;
  }
  return out;
}

}  // namespace

// Reference numbers: torch 1.13.1, torch.arange(24.).reshape(2, 3, 4).masked_fill(mask, value).
TEST(Masking, KeyPaddingMaskWithMinusInfinityMatchesPyTorch) {
  Var<double> x = iota_var({2, 3, 4}, true);
  const Tensor<bool> m = Tensor<bool>::from({true, false, false, true, false, false, true, false}, {2, 1, 4});
  const Tensor<double> y = masked_fill(x, m, -kInf).value();
  EXPECT_TRUE(y.equal(Tensor<double>::from({-kInf, 1, 2, -kInf, -kInf, 5, 6, -kInf, -kInf, 9, 10, -kInf,
                                            12, 13, -kInf, 15, 16, 17, -kInf, 19, 20, 21, -kInf, 23},
                                           {2, 3, 4})));
  Var<double> y2 = masked_fill(x, m, 7.5);
  Tensor<double> seed = Tensor<double>::empty({2, 3, 4});
  for (Index i = 0; i < 24; ++i) seed[i] = static_cast<double>(i + 1);
  y2.backward(seed);
  EXPECT_TRUE(x.grad().equal(Tensor<double>::from(
      {0, 2, 3, 0, 0, 6, 7, 0, 0, 10, 11, 0, 13, 14, 0, 16, 17, 18, 0, 20, 21, 22, 0, 24}, {2, 3, 4})));
}

TEST(Masking, ColumnMaskMatchesPyTorch) {
  Var<double> x = iota_var({2, 3, 4});
  const Tensor<bool> m = Tensor<bool>::from({true, false, true}, {3, 1});
  EXPECT_TRUE(masked_fill(x, m, -1.0).value().equal(Tensor<double>::from(
      {-1, -1, -1, -1, 4, 5, 6, 7, -1, -1, -1, -1, -1, -1, -1, -1, 16, 17, 18, 19, -1, -1, -1, -1}, {2, 3, 4})));
}

TEST(Masking, EveryBroadcastPatternMatchesTheDefinition) {
  const Shape xs = {2, 3, 4, 5};  // (B, H, T, S) attention scores
  const std::vector<Shape> masks = {{2, 3, 4, 5}, {2, 1, 1, 5}, {4, 5},    {5},       {2, 1, 4, 1}, {1},
                                    {},           {3, 1, 1},    {1, 1, 1, 1}, {2, 3, 1, 5}, {1, 4, 1}};
  Var<double> x = random_var(xs, 3, false);
  unsigned salt = 0;
  for (const Shape& ms : masks) {
    for (unsigned k = 0; k < 3; ++k, ++salt) {
      const Tensor<bool> m = pattern_mask(ms, salt);
      EXPECT_TRUE(masked_fill(x, m, -kInf).value().equal(reference_fill(x.value(), m, -kInf)))
          << "mask " << to_string(ms) << " salt " << salt;
    }
  }
  Var<double> s(Tensor<double>::scalar(2.0));
  EXPECT_EQ(masked_fill(s, Tensor<bool>::scalar(true), 5.0).item(), 5.0);
  EXPECT_EQ(masked_fill(s, Tensor<bool>::scalar(false), 5.0).item(), 2.0);
}

TEST(Masking, FloatMaskedFillMatchesDouble) {
  const Tensor<float> xf = eigenformer::testing::random_tensor({3, 4}, 5);
  const Tensor<bool> m = pattern_mask({4}, 1);
  const Tensor<float> y = masked_fill(Var<float>(xf), m, -std::numeric_limits<float>::infinity()).value();
  for (Index i = 0; i < 12; ++i) {
    if (m[i % 4])
      EXPECT_TRUE(std::isinf(y[i]) && y[i] < 0) << i;
    else
      EXPECT_EQ(y[i], xf[i]) << i;
  }
}

TEST(Masking, PassesGradcheck) {
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{1, 1}, {1, 1}}, {{1, 1}, {}},         {{7}, {7}},          {{3, 5}, {5}},
      {{3, 5}, {3, 1}}, {{2, 3, 5}, {2, 1, 5}}, {{2, 3, 4, 5}, {2, 1, 1, 5}}, {{2, 3, 4, 5}, {4, 5}}};
  std::uint64_t seed = 30;
  unsigned salt = 2;
  for (const auto& [xs, ms] : cases) {
    Var<double> x = random_var(xs, seed++);
    const Tensor<bool> m = pattern_mask(ms, salt++);
    EXPECT_GRADCHECK([m](const Inputs& v) { return masked_fill(v[0], m, 0.25); }, Inputs{x});
    EXPECT_GRADCHECK([m](const Inputs& v) { return masked_fill(v[0], m, -1e9); }, Inputs{x});
  }
}

TEST(Masking, KeepsItsOwnCopyOfTheMask) {
  Var<double> x = iota_var({2, 2}, true);
  Tensor<bool> m = Tensor<bool>::from({true, false}, {2});
  Var<double> y = masked_fill(x, m, 0.0);
  m[0] = false;  // reused by the caller before backward
  y.backward(Tensor<double>::ones({2, 2}));
  EXPECT_TRUE(x.grad().equal(Tensor<double>::from({0, 1, 0, 1}, {2, 2})));
}

TEST(Masking, MaskThatDoesNotBroadcastToXThrowsShapeError) {
  Var<double> x = iota_var({2, 3});
  EXPECT_THROW_WITH(masked_fill(x, Tensor<bool>::zeros({4}), 0.0), ShapeError, {"masked_fill", "(4)", "(2, 3)"});
  EXPECT_THROW_WITH(masked_fill(x, Tensor<bool>::zeros({2, 1, 3}), 0.0), ShapeError,
                    {"masked_fill", "mask is (2, 1, 3)", "x is (2, 3)"});
  // Broadcastable, but to a larger shape than x's: masked_fill does not grow x.
  EXPECT_THROW_WITH(masked_fill(iota_var({1, 3}), Tensor<bool>::zeros({2, 3}), 0.0), ShapeError,
                    {"masked_fill", "(2, 3)", "(1, 3)", "broadcasts to x"});
}

}  // namespace masking_test
