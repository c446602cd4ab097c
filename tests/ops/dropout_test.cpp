#include "eigenformer/ops/dropout.hpp"

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

TEST(Dropout, DropsExactlyTheElementsWhoseUniformDrawIsBelowP) {
  // The documented stream: one draw per element, u = (gen() >> 11) * 2^-53, dropped when u < p.
  Generator gen(11), reference(11);
  Var<double> x(Tensor<double>::ones({1000}));
  const Tensor<double> y = dropout(x, 0.3, true, gen).value();
  for (Index i = 0; i < 1000; ++i) {
    const double u = static_cast<double>(reference() >> 11) * 0x1.0p-53;
    EXPECT_EQ(y[i], u < 0.3 ? 0.0 : 1.0 / (1.0 - 0.3)) << "element " << i;
  }
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
