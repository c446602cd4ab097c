#include "eigenformer/optim/sgd.hpp"

#include "optim/tiny_problem.hpp"
#include "support/test_support.hpp"

using namespace eigenformer;
using namespace eigenformer::optim;

namespace sgd_test {

using eigenformer::testing::all_near;
using eigenformer::testing::expect_trajectory;
using eigenformer::testing::pair_state;
using eigenformer::testing::TinyProblem;

namespace {

// Parameters after each of the five steps (layer.weight then layer.bias, flattened), from
// tests/optim/make_reference.py with torch 1.13 (torch.optim.SGD, float32 unless named Double).
const std::vector<std::vector<float>> kSgdPlain = {
    {0.41f, -1.21f, 1.975f, 0.9f, -0.36f, 1.1f, 0.17f, -0.32f, -0.07000001f},
    {0.29999998f, -1.19f, 1.94f, 1.02f, -0.45000002f, 1.09f, 0.120000005f, -0.26f, -0.14f},
    {0.295f, -1.2f, 1.942f, 0.98999995f, -0.435f, 1.0860001f, 0.11800001f, -0.26999998f, -0.135f},
    {0.325f, -1.22f, 1.932f, 0.96999997f, -0.44f, 1.093f, 0.10300001f, -0.26799998f, -0.13800001f},
    {0.32099998f, -1.2175f, 1.9350001f, 0.97099996f, -0.4435f, 1.0910001f, 0.105500005f, -0.27099997f, -0.13920002f}};
const std::vector<std::vector<float>> kSgdMomentum = {
    {0.41f, -1.21f, 1.975f, 0.9f, -0.36f, 1.1f, 0.17f, -0.32f, -0.07000001f},
    {0.2465f, -1.159f, 1.92625f, 1.125f, -0.48150003f, 1.0925f, 0.105500005f, -0.203f, -0.23050001f},
    {0.0956f, -1.1206f, 1.883875f, 1.305f, -0.57960004f, 1.08275f, 0.04595001f, -0.10519999f, -0.3712f},
    {-0.017709991f, -1.10104f, 1.8382375f, 1.4519999f, -0.67164004f, 1.079225f, -0.018894987f, -0.015679996f, -0.50008f},
    {-0.12268899f, -1.081561f, 1.7994138f, 1.5850499f, -0.75710106f, 1.0745524f, -0.07538048f, 0.062638f, -0.61697197f}};
const std::vector<float> kSgdMomentumBuffer = {1.0497899f, -0.19478996f, 0.38823745f, -1.3304999f, 0.85461f, 0.046725f, 0.5648549f, -0.78317994f, 1.1689199f};
const std::vector<std::vector<float>> kSgdNesterov = {
    {0.329f, -1.174f, 1.9525f, 1.035f, -0.414f, 1.1f, 0.143f, -0.24800001f, -0.178f},
    {0.047099993f, -1.1036f, 1.86575f, 1.3844999f, -0.6336f, 1.081f, 0.023700008f, -0.06920001f, -0.4082f},
    {-0.11711f, -1.07724f, 1.8229749f, 1.5340499f, -0.72174f, 1.0653f, -0.04246999f, 0.018719984f, -0.54288f},
    {-0.20339899f, -1.082516f, 1.7636775f, 1.6576449f, -0.824066f, 1.0680699f, -0.12872298f, 0.11064798f, -0.67429197f},
    {-0.31565908f, -1.0645144f, 1.7250097f, 1.7887803f, -0.9183094f, 1.060463f, -0.18810068f, 0.18588316f, -0.79214275f}};
const std::vector<std::vector<float>> kSgdMomentumWeightDecay = {
    {0.4075f, -1.20375f, 1.965f, 0.89625f, -0.3585f, 1.0945001f, 0.169f, -0.31800002f, -0.07025001f},
    {0.2214625f, -1.1407312f, 1.8921751f, 1.1287688f, -0.4935075f, 1.0746275f, 0.093355f, -0.19081001f, -0.23609877f},
    {0.06652518f, -1.0946126f, 1.8264542f, 1.27914f, -0.58404595f, 1.0493563f, 0.030372225f, -0.098103955f, -0.3625973f},
    {-0.02775729f, -1.0722446f, 1.7547451f, 1.3730413f, -0.6585565f, 1.0308926f, -0.03516586f, -0.02144859f, -0.4649831f},
    {-0.10704448f, -1.046489f, 1.6916043f, 1.4422971f, -0.71837217f, 1.0089672f, -0.0849205f, 0.036982946f, -0.54576683f}};
const std::vector<double> kSgdNesterovWeightDecayDouble = {-0.33080947622017615, -0.9693659910570371, 1.5679604612669906, 1.6913288755099003, -0.8749922211254351, 0.9708604565257756, -0.19407973671881174, 0.19973759994873583, -0.7690904218336786};


// Float results agree with torch to float rounding (torch's CPU kernels fuse multiply-adds; ours round each
// product), far below the differences between configurations (>= 1e-4).
constexpr double kRtol = 1e-6, kAtol = 1e-7;

SGD<float>::Options options(float lr, float momentum = 0, float dampening = 0, float weight_decay = 0,
                            bool nesterov = false) {
  SGD<float>::Options o;
  o.lr = lr;
  o.momentum = momentum;
  o.dampening = dampening;
  o.weight_decay = weight_decay;
  o.nesterov = nesterov;
  return o;
}

std::vector<std::string> state_names(const SGD<float>& opt) {
  std::vector<std::string> names;
  opt.visit_state([&names](const std::string& n, const Tensor<float>&) { names.push_back(n); });
  return names;
}

}  // namespace

TEST(SGD, PlainMatchesTorch) {
  TinyProblem<float> pb;
  SGD<float> opt(pb.params(), options(0.1f));
  expect_trajectory(pb, opt, kSgdPlain, kRtol, kAtol);
}

TEST(SGD, MomentumWithDampeningMatchesTorchIncludingTheBuffer) {
  TinyProblem<float> pb;
  SGD<float> opt(pb.params(), options(0.1f, 0.9f, 0.25f));
  expect_trajectory(pb, opt, kSgdMomentum, kRtol, kAtol);
  EXPECT_TRUE(all_near(pair_state(opt, "momentum_buffer"), kSgdMomentumBuffer, kRtol, kAtol));
}

TEST(SGD, FirstMomentumStepStoresTheGradientUndamped) {
  TinyProblem<float> pb;
  SGD<float> opt(pb.params(), options(0.1f, 0.9f, 0.25f));
  pb.set_grads(0);
  opt.step();
  EXPECT_TRUE(pair_state(opt, "momentum_buffer") == std::vector<float>({0.9f, -0.4f, 0.25f, -1.5f, 0.6f, 0.0f, 0.3f,
                                                                        -0.8f, 1.2f}));
}

TEST(SGD, NesterovMatchesTorch) {
  TinyProblem<float> pb;
  SGD<float> opt(pb.params(), options(0.1f, 0.9f, 0, 0, true));
  expect_trajectory(pb, opt, kSgdNesterov, kRtol, kAtol);
}

TEST(SGD, MomentumWithWeightDecayMatchesTorch) {
  TinyProblem<float> pb;
  SGD<float> opt(pb.params(), options(0.1f, 0.8f, 0, 0.05f));
  expect_trajectory(pb, opt, kSgdMomentumWeightDecay, kRtol, kAtol);
}

TEST(SGD, DoubleNesterovWithWeightDecayMatchesTorchFloat64) {
  TinyProblem<double> pb;
  SGD<double>::Options o;
  o.lr = 0.1;
  o.momentum = 0.9;
  o.weight_decay = 0.05;
  o.nesterov = true;
  SGD<double> opt(pb.params(), o);
  for (std::size_t k = 0; k < eigenformer::testing::kGrads.size(); ++k) {
    pb.set_grads(k);
    opt.step();
  }
  EXPECT_TRUE(all_near(pb.values(), kSgdNesterovWeightDecayDouble, 1e-13, 1e-15));
}

TEST(SGD, DefaultsAreTorchsWithLrOneThousandth) {
  const SGD<float>::Options o;
  EXPECT_EQ(o.lr, 1e-3f);
  EXPECT_EQ(o.momentum, 0.0f);
  EXPECT_EQ(o.dampening, 0.0f);
  EXPECT_EQ(o.weight_decay, 0.0f);
  EXPECT_FALSE(o.nesterov);
  TinyProblem<float> pb;
  SGD<float> opt(pb.params());
  pb.set_grads(0);
  opt.step();
  EXPECT_FLOAT_EQ(pb.w.value()[0], 0.5f - 1e-3f * 0.9f);
}

TEST(SGD, StateIsTheStepCountAndOneMomentumBufferPerParameter) {
  TinyProblem<float> pb;
  SGD<float> plain(pb.params(), options(0.1f));
  EXPECT_EQ(state_names(plain), std::vector<std::string>({"step"}));
  SGD<float> momentum(pb.params(), options(0.1f, 0.9f));
  EXPECT_EQ(state_names(momentum),
            std::vector<std::string>({"step", "layer.weight.momentum_buffer", "layer.bias.momentum_buffer"}));
  pb.set_grads(0);
  momentum.step();
  momentum.step();
  float step = -1;
  momentum.visit_state([&step](const std::string& n, const Tensor<float>& t) {
    if (n == "step") step = t.item();
  });
  EXPECT_EQ(step, 2.0f);
  EXPECT_EQ(momentum.step_count(), 2);
}

TEST(SGD, InvalidOptionsThrowValueErrorNamingTheOption) {
  TinyProblem<float> pb;
  EXPECT_THROW_WITH(SGD<float>(pb.params(), options(-0.1f)), ValueError, {"SGD", "lr", "-0.1"});
  EXPECT_THROW_WITH(SGD<float>(pb.params(), options(0.1f, -0.9f)), ValueError, {"SGD", "momentum"});
  EXPECT_THROW_WITH(SGD<float>(pb.params(), options(0.1f, 0.9f, -1.0f)), ValueError, {"SGD", "dampening"});
  EXPECT_THROW_WITH(SGD<float>(pb.params(), options(0.1f, 0, 0, -0.01f)), ValueError, {"SGD", "weight_decay"});
  EXPECT_THROW_WITH(SGD<float>(pb.params(), options(0.1f, 0, 0, 0, true)), ValueError,
                    {"SGD", "nesterov", "momentum > 0", "dampening == 0"});
  EXPECT_THROW_WITH(SGD<float>(pb.params(), options(0.1f, 0.9f, 0.1f, 0, true)), ValueError,
                    {"SGD", "nesterov", "dampening 0.1"});
  EXPECT_THROW_WITH(SGD<float>(pb.params(), options(std::nanf(""))), ValueError, {"SGD", "lr", "nan"});
}

}  // namespace sgd_test
