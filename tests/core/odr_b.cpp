// Second of two translation units that include the umbrella header (see odr_a.cpp).
#include <eigenformer/eigenformer.hpp>

#include <gtest/gtest.h>

#include <sstream>

namespace odr_b {

TEST(OdrB, UmbrellaHeaderWorksInTheSecondTranslationUnit) {
  using namespace eigenformer;
  EXPECT_EQ(to_string(detail::broadcast_shapes("odr_b", {4}, {1, 4})), "(1, 4)");
  EXPECT_EQ(numel({2, 3}), 6);
  std::ostringstream os;
  os << Tensor<float>::from({1, 2}, {2});
  EXPECT_EQ(os.str(), "Tensor(shape=(2)) [1, 2]");
  Var<double> x(Tensor<double>::from({0.5, 2.0}, {2}), true);
  const GradcheckResult r = gradcheck([](const std::vector<Var<double>>& v) { return mul(v[0], exp(v[0])); }, {x});
  EXPECT_TRUE(r.passed) << r.message;
  {
    NoGradGuard no_grad;
    EXPECT_FALSE(is_grad_enabled());
  }
  EXPECT_TRUE(is_grad_enabled());
}

}  // namespace odr_b
