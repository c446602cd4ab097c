#include "eigenformer/optim/clip_grad.hpp"

#include <cmath>
#include <limits>

#include "optim/tiny_problem.hpp"
#include "support/test_support.hpp"

using namespace eigenformer;
using namespace eigenformer::optim;

namespace clip_grad_test {

using eigenformer::testing::all_near;
using eigenformer::testing::TinyProblem;

namespace {

// torch.nn.utils.clip_grad_norm_ on the first step's gradients (layer.weight then layer.bias, flattened), from
// tests/optim/make_reference.py: total norm 2.4109127521514893 (float32).
constexpr double kTorchNorm = 2.4109127521514893;
const std::vector<float> kClipped1 = {0.37330243f, -0.1659122f, 0.103695124f, -0.62217075f, 0.2488683f, 0.0f, 0.12443415f, -0.3318244f, 0.4977366f};
const std::vector<float> kClipped100 = {0.9f, -0.4f, 0.25f, -1.5f, 0.6f, 0.0f, 0.3f, -0.8f, 1.2f};

std::vector<float> grads(const TinyProblem<float>& pb) {
  std::vector<float> out(pb.w.grad().data(), pb.w.grad().data() + 6);
  out.insert(out.end(), pb.b.grad().data(), pb.b.grad().data() + 3);
  return out;
}

}  // namespace

TEST(ClipGradNorm, ScalesAllGradientsTogetherLikeTorch) {
  TinyProblem<float> pb;
  pb.set_grads(0);
  const float norm = clip_grad_norm(pb.params(), 1.0f);
  EXPECT_NEAR(norm, kTorchNorm, 1e-6);
  EXPECT_TRUE(all_near(grads(pb), kClipped1, 1e-6, 1e-7));
  // The clipped gradients have norm max_norm (up to the 1e-6 guard).
  double sq = 0;
  for (float g : grads(pb)) sq += static_cast<double>(g) * g;
  EXPECT_NEAR(std::sqrt(sq), 1.0, 1e-6);
}

TEST(ClipGradNorm, LeavesGradientsBelowMaxNormUntouched) {
  TinyProblem<float> pb;
  pb.set_grads(0);
  const float norm = clip_grad_norm(pb.params(), 100.0);  // a double max_norm converts
  EXPECT_NEAR(norm, kTorchNorm, 1e-6);
  EXPECT_EQ(grads(pb), kClipped100);
}

TEST(ClipGradNorm, IgnoresParametersWithoutGradientAndReturnsZeroForNone) {
  TinyProblem<float> pb;
  pb.set_grads(0);
  pb.b.zero_grad();
  const float norm = clip_grad_norm(pb.params(), 0.5f);
  EXPECT_NEAR(norm, std::sqrt(0.81 + 0.16 + 0.0625 + 2.25 + 0.36), 1e-6);
  EXPECT_FALSE(pb.b.has_grad());
  EXPECT_NEAR(pb.w.grad()[0], 0.9 * 0.5 / (norm + 1e-6), 1e-7);
  pb.w.zero_grad();
  EXPECT_EQ(clip_grad_norm(pb.params(), 0.5f), 0.0f);
}

TEST(ClipGradNorm, AccumulatesInDouble) {
  // 1e4^2 + 1000 * 1^2: in float, 1e8 + 1 rounds back to 1e8 (its spacing is 8), so a float sum loses the ones.
  Var<float> p(Tensor<float>::zeros({1001}), true);
  p.grad() = Tensor<float>::ones({1001});
  p.grad()[0] = 1e4f;
  const float norm = clip_grad_norm(NamedParameters<float>{{"p", p}}, 1e9f);
  EXPECT_EQ(norm, static_cast<float>(std::sqrt(1e8 + 1000)));
}

TEST(ClipGradNorm, NonFiniteNormIsReturnedWithGradientsUntouched) {
  TinyProblem<float> pb;
  pb.set_grads(0);
  pb.b.grad()[2] = std::numeric_limits<float>::infinity();
  Tensor<float> w_grad = pb.w.grad().clone(), b_grad = pb.b.grad().clone();
  EXPECT_TRUE(std::isinf(clip_grad_norm(pb.params(), 1.0f)));
  EXPECT_TRUE(pb.w.grad().equal(w_grad));
  EXPECT_TRUE(pb.b.grad().equal(b_grad));
  pb.b.grad()[2] = std::nanf("");
  w_grad = pb.w.grad().clone();
  b_grad = pb.b.grad().clone();
  EXPECT_TRUE(std::isnan(clip_grad_norm(pb.params(), 1.0f)));
  EXPECT_TRUE(pb.w.grad().equal(w_grad));
  EXPECT_EQ(pb.b.grad()[0], b_grad[0]);  // equal() is false for the NaN element: compare the others one by one
  EXPECT_EQ(pb.b.grad()[1], b_grad[1]);
  EXPECT_TRUE(std::isnan(pb.b.grad()[2]));
}

TEST(ClipGradNorm, InvalidMaxNormThrowsValueError) {
  TinyProblem<float> pb;
  pb.set_grads(0);
  EXPECT_THROW_WITH(clip_grad_norm(pb.params(), -1.0f), ValueError, {"clip_grad_norm", "max_norm is -1"});
  EXPECT_THROW_WITH(clip_grad_norm(pb.params(), std::nanf("")), ValueError, {"clip_grad_norm", "max_norm"});
}

}  // namespace clip_grad_test
