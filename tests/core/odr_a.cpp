// First of two translation units that include the umbrella header: linked into one executable with odr_b.cpp,
// they prove every header function is inline or a template (a non-inline one is a duplicate symbol at link time).
#include <eigenformer/eigenformer.hpp>

#include <gtest/gtest.h>

namespace odr_a {

namespace {

// Uses non-template inline functions (to_string, broadcast_shapes, is_grad_enabled) and templates that odr_b.cpp
// instantiates too (Tensor<float>, Tensor<double>, Var<double>, mul), so both object files carry them.
double sum_of_squares_gradient(double v) {
  using namespace eigenformer;
  Var<double> x(Tensor<double>::from({v}, {1}), true);
  mul(x, x).backward();
  return x.grad()[0];
}

}  // namespace

TEST(OdrA, UmbrellaHeaderWorksInTheFirstTranslationUnit) {
  using namespace eigenformer;
  EXPECT_EQ(to_string(detail::broadcast_shapes("odr_a", {2, 1}, {3})), "(2, 3)");
  EXPECT_EQ(Tensor<float>::ones({2, 2}).array().sum(), 4.0f);
  EXPECT_EQ(sum_of_squares_gradient(1.5), 3.0);
  EXPECT_TRUE(is_grad_enabled());
}

}  // namespace odr_a
