#include "eigenformer/ops/dropout.hpp"

#include <cstdint>

#include <cmath>
#include <limits>

#include "support/test_support.hpp"

using namespace eigenformer;

namespace dropout_test {

using eigenformer::testing::random_var;
using Inputs = std::vector<Var<double>>;

TEST(Dropout, EvalModeAndZeroProbabilityReturnTheInputItself) {
  Generator gen(1);
  Var<float> x(Tensor<float>::ones({3, 4}), true);
  EXPECT_EQ(dropout(x, 0.5f, false, gen).node_ptr(), x.node_ptr());
  EXPECT_EQ(dropout(x, 0.0f, true, gen).node_ptr(), x.node_ptr());
  EXPECT_EQ(gen(), Generator(1)());  // nothing was drawn
}

TEST(Dropout, ZeroesAboutAFractionPAndScalesSurvivors) {
  Generator gen(42);
  const Index n = 100000;
  for (float p : {0.1f, 0.5f, 0.8f}) {
    Var<float> x(Tensor<float>::full({n}, 2.0f));
    const Tensor<float> y = dropout(x, p, true, gen).value();
    Index zeros = 0;
    for (Index i = 0; i < n; ++i) {
      if (y[i] == 0.0f)
        ++zeros;
      else
        EXPECT_FLOAT_EQ(y[i], 2.0f / (1.0f - p));
    }
    // The zero count is Binomial(n, p): its standard deviation is at most 158, so 0.01 n is over 6 sigma.
    EXPECT_NEAR(static_cast<double>(zeros) / n, p, 0.01) << "p = " << p;
  }
}

TEST(Dropout, MeanIsPreservedInExpectation) {
  Generator gen(7);
  Var<double> x(Tensor<double>::ones({100000}));
  const Tensor<double> y = dropout(x, 0.3, true, gen).value();
  EXPECT_NEAR(y.array().mean(), 1.0, 0.02);
}

TEST(Dropout, GradientUsesTheSameMaskAsTheForward) {
  Generator gen(3);
  Var<double> x = random_var({4, 6}, 1);
  Var<double> y = dropout(x, 0.4, true, gen);
  const Tensor<double> g = random_var({4, 6}, 2, false).value();
  y.backward(g);
  for (Index i = 0; i < x.numel(); ++i) {
    const double kept = y.value()[i] == 0.0 ? 0.0 : 1.0 / 0.6;
    EXPECT_NEAR(x.grad()[i], g[i] * kept, 1e-15);
    EXPECT_NEAR(y.value()[i], x.value()[i] * kept, 1e-15);
  }
}

TEST(Dropout, DropsExactlyTheElementsWhoseKeyedDrawIsBelowP) {
  // The documented streams: one key per call from gen; row r, element i draws keyed_uniform(keyed_stream(key, r),
  // i) and is dropped when it is below p.
  Generator gen(11), reference(11);
  Var<double> x(Tensor<double>::ones({4, 250}));
  const Tensor<double> y = dropout(x, 0.3, true, gen).value();
  const std::uint64_t call = reference();
  for (Index r = 0; r < 4; ++r)
    for (Index i = 0; i < 250; ++i) {
      const double u = detail::keyed_uniform(detail::keyed_stream(call, r), i);
      ASSERT_EQ(y(r, i), u < 0.3 ? 0.0 : 1.0 / (1.0 - 0.3)) << "row " << r << ", element " << i;
    }
  EXPECT_EQ(gen(), reference());  // one draw per call, whatever the size
}

TEST(Dropout, AnExampleGetsTheSameMaskInAnyBatchPositionUnderItsKey) {
  // What makes N data-parallel ranks equal to one process: rows keyed by the examples' global indices.
  Var<float> x(Tensor<float>::ones({4, 3, 40}));  // (batch, time, channels)
  const std::int64_t all[] = {10, 11, 12, 13}, half[] = {13, 12};
  Generator g1(5), g2(5);
  Tensor<float> whole, part;
  {
    ExecutionContext c = detail::execution_context();
    c.example_keys = all;
    c.example_count = 4;
    ExecutionScope scope(c);
    whole = dropout(x, 0.5f, true, g1).value();
  }
  {
    ExecutionContext c = detail::execution_context();
    c.example_keys = half;
    c.example_count = 2;
    ExecutionScope scope(c);
    Var<float> x2(Tensor<float>::ones({2, 3, 40}));
    part = dropout(x2, 0.5f, true, g2).value();
    // A flattened (batch * time, channels) tensor splits its rows among the examples in order.
    Generator g3(5);
    Var<float> flat(Tensor<float>::ones({6, 40}));
    const Tensor<float> f = dropout(flat, 0.5f, true, g3).value();
    for (Index i = 0; i < 240; ++i) ASSERT_EQ(f[i], part[i]);
  }
  for (Index t = 0; t < 3; ++t)
    for (Index c = 0; c < 40; ++c) {
      ASSERT_EQ(part(0, t, c), whole(3, t, c));
      ASSERT_EQ(part(1, t, c), whole(2, t, c));
    }
  // Without keys, rows are keyed by position: row 0 differs from the keyed example 13's mask.
  Generator g4(5);
  const Tensor<float> unkeyed = dropout(Var<float>(Tensor<float>::ones({2, 3, 40})), 0.5f, true, g4).value();
  EXPECT_FALSE(unkeyed.equal(part));
}

TEST(Dropout, SameSeedGivesTheSameMask) {
  Var<float> x(Tensor<float>::ones({64}));
  Generator g1(9), g2(9), g3(10);
  const Tensor<float> a = dropout(x, 0.5f, true, g1).value();
  EXPECT_TRUE(a.equal(dropout(x, 0.5f, true, g2).value()));
  EXPECT_FALSE(a.equal(dropout(x, 0.5f, true, g3).value()));
}

TEST(Dropout, ProbabilityOneGivesZerosAndZeroGradient) {
  Generator gen(5);
  Var<double> x = random_var({3, 5}, 3);
  Var<double> y = dropout(x, 1.0, true, gen);
  EXPECT_TRUE(y.value().equal(Tensor<double>::zeros({3, 5})));
  y.backward(Tensor<double>::ones({3, 5}));
  EXPECT_TRUE(x.grad().equal(Tensor<double>::zeros({3, 5})));
}

TEST(Dropout, PassesGradcheckWithAFixedSeed) {
  std::uint64_t seed = 20;
  for (const Shape& s : {Shape{1, 1}, Shape{3, 7}, Shape{2, 3, 5}}) {
    Var<double> x = random_var(s, seed++);
    for (double p : {0.25, 0.5}) {
      EXPECT_GRADCHECK(
          [p](const Inputs& v) {
            Generator gen(1234);  // re-created on every call: the same mask for every evaluation
            return dropout(v[0], p, true, gen);
          },
          Inputs{x});
    }
  }
}

TEST(Dropout, ProbabilityOutsideTheUnitIntervalThrowsValueError) {
  Generator gen(1);
  Var<float> x(Tensor<float>::ones({2, 2}));
  EXPECT_THROW_WITH(dropout(x, -0.1f, true, gen), ValueError, {"dropout", "p is -0.1", "0 <= p <= 1"});
  EXPECT_THROW_WITH(dropout(x, 1.5f, false, gen), ValueError, {"dropout", "p is 1.5"});
  EXPECT_THROW_WITH(dropout(x, std::numeric_limits<float>::quiet_NaN(), true, gen), ValueError, {"dropout", "p is"});
}

}  // namespace dropout_test
