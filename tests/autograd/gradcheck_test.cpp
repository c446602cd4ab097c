#include "eigenformer/autograd/gradcheck.hpp"

#include <gtest/gtest-spi.h>

#include <cmath>
#include <string>

#include "eigenformer/ops/elementwise.hpp"
#include "support/test_support.hpp"

using namespace eigenformer;

namespace gradcheck_test {

using eigenformer::testing::random_var;
using Inputs = std::vector<Var<double>>;

namespace {

// x^2 with a backward scaled by `factor` (factor 2 is correct): a deliberately wrong op when factor != 2.
Var<double> square_with_backward_factor(const Var<double>& x, double factor) {
  Tensor<double> y = x.value().clone();
  y.array() *= x.value().array();
  Var<double> out(y, {x}, "square");
  out.on_backward([x, factor](const Tensor<double>& dy) {
    Tensor<double> dx = dy.clone();
    dx.array() *= factor * x.value().array();
    x.accumulate_grad(std::move(dx));
  });
  return out;
}

Var<double> leaf(std::initializer_list<double> values) {
  return Var<double>(Tensor<double>::from(std::vector<double>(values)), true);
}

}  // namespace

TEST(Gradcheck, PassesOnCorrectOps) {
  Var<double> a = random_var({3, 4}, 1), b = random_var({4}, 2), c = random_var({1, 1}, 3);
  EXPECT_GRADCHECK([](const Inputs& v) { return mul(exp(v[0]), v[1]); }, Inputs{a, b});
  EXPECT_GRADCHECK([](const Inputs& v) { return square_with_backward_factor(v[0], 2.0); }, Inputs{a});
  EXPECT_GRADCHECK([](const Inputs& v) { return sub(mul(v[0], v[0]), v[1]); }, Inputs{c, c});
  const GradcheckResult r = gradcheck([](const Inputs& v) { return add(v[0], scale(v[1], 3.0)); }, Inputs{a, b});
  EXPECT_TRUE(r.passed);
  EXPECT_TRUE(static_cast<bool>(r));
  EXPECT_LE(r.worst_ratio, 1.0);
  EXPECT_NE(r.message.find("gradcheck passed"), std::string::npos) << r.message;
}

TEST(Gradcheck, ChecksOnlyInputsThatRequireGrad) {
  Var<double> a = random_var({2, 3}, 4), k = random_var({2, 3}, 5, /*requires_grad=*/false);
  // A wrong gradient for an input that does not require grad is never computed, so it cannot fail.
  const GradcheckResult r =
      gradcheck([](const Inputs& v) { return add(v[0], square_with_backward_factor(v[1], 5.0)); }, Inputs{a, k});
  EXPECT_TRUE(r.passed) << r.message;
  EXPECT_EQ(r.input, 0);
}

TEST(Gradcheck, AWrongBackwardFailsNamingInputElementAndBothValues) {
  // Input 0 is correct; input 1 goes through a backward that returns x instead of 2x. The worst entry is the
  // largest |x|: element 1 of input 1 (x = -3), analytic -3, numeric -6, on the diagonal (output element 1).
  Var<double> a = leaf({0.1, 0.2, 0.3}), b = leaf({0.5, -3.0, 1.0});
  const GradcheckResult r =
      gradcheck([](const Inputs& v) { return add(v[0], square_with_backward_factor(v[1], 1.0)); }, Inputs{a, b});
  EXPECT_FALSE(r.passed);
  EXPECT_FALSE(static_cast<bool>(r));
  EXPECT_EQ(r.input, 1);
  EXPECT_EQ(r.input_element, 1);
  EXPECT_EQ(r.output_element, 1);
  EXPECT_NEAR(r.analytic, -3.0, 1e-12);
  EXPECT_NEAR(r.numeric, -6.0, 1e-6);
  EXPECT_NEAR(r.worst_ratio, 3.0 / (1e-5 + 1e-3 * 6.0), 1e-3);
  for (const char* w : {"FAILED", "input 1", "element 1", "(of (3))", "output element 1", "analytic -3", "numeric -6"})
    EXPECT_NE(r.message.find(w), std::string::npos) << "message \"" << r.message << "\" lacks \"" << w << "\"";
  // The inputs come back unperturbed and without gradients.
  EXPECT_TRUE(b.value().equal(Tensor<double>::from({0.5, -3.0, 1.0}, {3})));
  EXPECT_FALSE(a.has_grad());
  EXPECT_FALSE(b.has_grad());
}

TEST(Gradcheck, AWrongBackwardFailsTheSharedAssertion) {
  Var<double> x = random_var({2, 2}, 6);
  EXPECT_NONFATAL_FAILURE(
      EXPECT_GRADCHECK([](const Inputs& v) { return square_with_backward_factor(v[0], 2.5); }, Inputs{x}),
      "gradcheck FAILED");
}

TEST(Gradcheck, ToleranceOptionsAreUsed) {
  Var<double> x = leaf({1.0, -2.0, 0.5});
  // A backward off by a relative 1e-4: inside the default rtol (1e-3), outside rtol 1e-5.
  auto slightly_wrong = [](const Inputs& v) { return square_with_backward_factor(v[0], 2.0 * (1 + 1e-4)); };
  EXPECT_TRUE(gradcheck(slightly_wrong, Inputs{x}).passed);
  GradcheckOptions tight;
  tight.rtol = 1e-5;
  tight.atol = 1e-8;
  const GradcheckResult r = gradcheck(slightly_wrong, Inputs{x}, tight);
  EXPECT_FALSE(r.passed);
  EXPECT_NE(r.message.find("rtol 1e-05"), std::string::npos) << r.message;

  // A backward off by an absolute 0.05 at small x: fails by default, passes with atol 0.1.
  Var<double> small = leaf({0.025, -0.01});
  auto absolutely_wrong = [](const Inputs& v) { return square_with_backward_factor(v[0], 4.0); };
  EXPECT_FALSE(gradcheck(absolutely_wrong, Inputs{small}).passed);
  GradcheckOptions loose;
  loose.atol = 0.1;
  EXPECT_TRUE(gradcheck(absolutely_wrong, Inputs{small}, loose).passed);

  // eps sets the step: central differences of exp are off by about eps^2 / 6 relative, 1.7e-3 at eps = 0.1.
  auto exp_f = [](const Inputs& v) { return exp(v[0]); };
  EXPECT_TRUE(gradcheck(exp_f, Inputs{x}).passed);
  GradcheckOptions coarse;
  coarse.eps = 0.1;
  EXPECT_FALSE(gradcheck(exp_f, Inputs{x}, coarse).passed);

  // Zero tolerances pass exact gradients: scale's numeric derivative is exact for a power-of-two step.
  GradcheckOptions exact;
  exact.eps = 0.25;
  exact.atol = 0;
  exact.rtol = 0;
  Var<double> ints = leaf({1.0, 2.0, -3.0});
  EXPECT_TRUE(gradcheck([](const Inputs& v) { return scale(v[0], 4.0); }, Inputs{ints}, exact).passed);
}

TEST(Gradcheck, BadOptionsThrowValueError) {
  Var<double> x = leaf({1.0});
  auto f = [](const Inputs& v) { return exp(v[0]); };
  GradcheckOptions o;
  o.eps = 0;
  EXPECT_THROW_WITH(gradcheck(f, Inputs{x}, o), ValueError, {"gradcheck", "eps is 0"});
  o.eps = -1e-6;
  EXPECT_THROW_WITH(gradcheck(f, Inputs{x}, o), ValueError, {"gradcheck", "eps"});
  o = GradcheckOptions{};
  o.atol = -1;
  EXPECT_THROW_WITH(gradcheck(f, Inputs{x}, o), ValueError, {"gradcheck", "atol is -1"});
  o = GradcheckOptions{};
  o.rtol = std::nan("");
  EXPECT_THROW_WITH(gradcheck(f, Inputs{x}, o), ValueError, {"gradcheck", "rtol"});
}

TEST(Gradcheck, NaNGradientsFail) {
  Var<double> x = leaf({1.0, 2.0});
  auto nan_backward = [](const Inputs& v) { return square_with_backward_factor(v[0], std::nan("")); };
  const GradcheckResult r = gradcheck(nan_backward, Inputs{x});
  EXPECT_FALSE(r.passed);
  EXPECT_TRUE(std::isinf(r.worst_ratio));
}

TEST(Gradcheck, NoInputRequiringGradThrowsValueError) {
  Var<double> k = random_var({2}, 7, /*requires_grad=*/false);
  EXPECT_THROW_WITH(gradcheck([](const Inputs& v) { return exp(v[0]); }, Inputs{k}), ValueError,
                    {"gradcheck", "no input requires grad"});
  EXPECT_THROW_WITH(gradcheck([](const Inputs& v) { return exp(v[0]); }, Inputs{}), ValueError, {"gradcheck"});
}

TEST(Gradcheck, AnOutputIndependentOfTheInputsThrowsValueError) {
  Var<double> x = random_var({2}, 8), k = random_var({2}, 9, /*requires_grad=*/false);
  EXPECT_THROW_WITH(gradcheck([k](const Inputs&) { return exp(k); }, Inputs{x}), ValueError,
                    {"gradcheck", "does not require grad"});
}

TEST(Gradcheck, WorksInsideANoGradGuard) {
  Var<double> x = random_var({3}, 10);
  NoGradGuard no_grad;
  EXPECT_GRADCHECK([](const Inputs& v) { return exp(v[0]); }, Inputs{x});
  EXPECT_FALSE(is_grad_enabled());  // the caller's mode is restored
}

}  // namespace gradcheck_test
