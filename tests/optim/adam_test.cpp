#include "eigenformer/optim/adam.hpp"

#include "optim/tiny_problem.hpp"
#include "support/test_support.hpp"

using namespace eigenformer;
using namespace eigenformer::optim;

namespace adam_test {

using eigenformer::testing::all_near;
using eigenformer::testing::expect_trajectory;
using eigenformer::testing::kGrads;
using eigenformer::testing::pair_state;
using eigenformer::testing::TinyProblem;

namespace {

// Parameters after each of the five steps (layer.weight then layer.bias, flattened) and final state, from
// tests/optim/make_reference.py with torch 1.13 (torch.optim.Adam / AdamW with foreach=False, float32 unless
// named Double).
const std::vector<std::vector<float>> kAdam = {
    {0.4f, -1.15f, 1.9f, 0.85f, -0.4f, 1.1f, 0.10000002f, -0.3f, -0.049999986f},
    {0.29997754f, -1.056782f, 1.8005034f, 0.9488126f, -0.49908072f, 1.0255864f, 0.0017208382f, -0.2017425f, -0.14537975f},
    {0.22046024f, -1.0004159f, 1.7266445f, 1.014414f, -0.56616306f, 0.94844705f, -0.07639574f, -0.1325283f, -0.21676114f},
    {0.16873902f, -0.9813797f, 1.6545548f, 1.0619136f, -0.62371624f, 0.92717f, -0.15284976f, -0.07468574f, -0.27647433f},
    {0.12353626f, -0.9625814f, 1.5974624f, 1.1023407f, -0.67408526f, 0.90099895f, -0.21514973f, -0.02744766f, -0.32741532f}};
const std::vector<float> kAdamExpAvg = {0.12028898f, -0.017223997f, 0.046297498f, -0.14459501f, 0.10082599f, 0.0062299995f, 0.06875299f, -0.086928f, 0.129612f};
const std::vector<float> kAdamExpAvgSq = {0.0021071439f, 0.00024980612f, 0.00019567247f, 0.0038065778f, 0.0011923125f, 1.6861934e-05f, 0.00036239304f, 0.0010076447f, 0.0019263185f};
const std::vector<std::vector<float>> kAdamWeightDecay = {
    {0.4f, -1.15f, 1.9f, 0.85f, -0.4f, 1.0f, 0.10000002f, -0.3f, -0.05f},
    {0.29993868f, -1.054251f, 1.7999387f, 0.94863176f, -0.4990414f, 0.902511f, 0.0013577417f, -0.2017425f, -0.14522867f},
    {0.21926227f, -0.9796731f, 1.7103355f, 1.0094876f, -0.56204224f, 0.80539274f, -0.07698695f, -0.13085459f, -0.21579902f},
    {0.16500789f, -0.9289819f, 1.6211714f, 1.0493572f, -0.6133043f, 0.7235725f, -0.15281361f, -0.07098888f, -0.27395675f},
    {0.117142156f, -0.87669456f, 1.537659f, 1.0802515f, -0.6552504f, 0.6402357f, -0.21322083f, -0.021588303f, -0.32250613f}};
const std::vector<std::vector<float>> kAdamBetasEps = {
    {0.400111f, -1.1502494f, 1.9003984f, 0.8499334f, -0.39983362f, 1.1f, 0.10033222f, -0.30012482f, -0.049916733f},
    {0.29965162f, -1.0590456f, 1.8003428f, 0.9480766f, -0.49984342f, 1.0227194f, 0.0009814799f, -0.20277038f, -0.1438171f},
    {0.22442046f, -1.0101053f, 1.7312624f, 1.0073423f, -0.5618479f, 0.9449329f, -0.07335774f, -0.139676f, -0.20923969f},
    {0.18213254f, -1.0029514f, 1.6644988f, 1.045496f, -0.6123535f, 0.9314423f, -0.1452782f, -0.09004886f, -0.260766f},
    {0.14701301f, -0.994f, 1.6165879f, 1.0758779f, -0.65423155f, 0.91089255f, -0.19907469f, -0.05299431f, -0.30190915f}};
const std::vector<std::vector<float>> kAdamAmsgrad = {
    {0.4f, -1.15f, 1.9f, 0.85f, -0.4f, 1.1f, 0.10000002f, -0.3f, -0.049999986f},
    {0.29997754f, -1.056782f, 1.8005034f, 0.9488126f, -0.49908072f, 1.0255864f, 0.0017208382f, -0.2017425f, -0.14537975f},
    {0.22046024f, -1.0004159f, 1.7266445f, 1.014414f, -0.56616306f, 0.94844705f, -0.07639574f, -0.1325283f, -0.21676114f},
    {0.16873902f, -0.9813797f, 1.6545548f, 1.0619136f, -0.62371624f, 0.92717f, -0.15284976f, -0.07470318f, -0.27645838f},
    {0.123541705f, -0.9625814f, 1.5974624f, 1.102321f, -0.67408526f, 0.90099895f, -0.21514973f, -0.027481876f, -0.3273622f}};
const std::vector<float> kAdamAmsgradMaxExpAvgSq = {0.0021076514f, 0.00024980612f, 0.00019567247f, 0.0038102882f, 0.0011923125f, 1.6861934e-05f, 0.00036239304f, 0.0010083608f, 0.0019291317f};
const std::vector<std::vector<float>> kAdamW = {
    {0.3995f, -1.14875f, 1.898f, 0.84925f, -0.39970002f, 1.0989001f, 0.09980001f, -0.2996f, -0.050049987f},
    {0.29907805f, -1.0543833f, 1.7966055f, 0.94721335f, -0.49838102f, 1.0233876f, 0.0014210343f, -0.20104289f, -0.14537969f},
    {0.21926168f, -0.9969627f, 1.72095f, 1.0118675f, -0.564965f, 0.9452248f, -0.07669697f, -0.13162765f, -0.2166157f},
    {0.1673212f, -0.97692955f, 1.6471394f, 1.0583553f, -0.62195325f, 0.92300254f, -0.1530743f, -0.07365346f, -0.27611226f},
    {0.12195112f, -0.95715433f, 1.5883999f, 1.0977241f, -0.6717003f, 0.89590853f, -0.2152212f, -0.026341733f, -0.32677713f}};
const std::vector<std::vector<float>> kAdamWCustom = {
    {0.390111f, -1.1252494f, 1.8603984f, 0.8349334f, -0.39383364f, 1.0780001f, 0.09633223f, -0.29212487f, -0.05091673f},
    {0.28184938f, -1.0115407f, 1.7231349f, 0.916378f, -0.48596674f, 0.97915953f, -0.004945159f, -0.18892795f, -0.14379877f},
    {0.20131096f, -0.9423696f, 1.6198617f, 0.95731616f, -0.53825194f, 0.88178986f, -0.07885786f, -0.12205502f, -0.20606071f},
    {0.15499683f, -0.91636837f, 1.5207009f, 0.9763234f, -0.5777936f, 0.85066354f, -0.14920117f, -0.070225015f, -0.25299704f},
    {0.11693947f, -0.88912284f, 1.4425024f, 0.9870272f, -0.6077642f, 0.8131005f, -0.19979234f, -0.032111347f, -0.28850353f}};
const std::vector<double> kAdamWAmsgradDouble = {0.09333068177771273, -0.8583403531811074, 1.4232849740375322, 1.0131394981793846, -0.6278641073323473, 0.803168177425681, -0.21620034772912883, -0.006489105767840904, -0.31477324992472533};


// Float results agree with torch to float rounding (torch's CPU kernels fuse multiply-adds; ours round each
// product), far below the differences between configurations (>= 1e-5).
constexpr double kRtol = 1e-6, kAtol = 1e-7;

template <typename Opt>
typename Opt::Options options(float lr, float weight_decay, bool amsgrad = false) {
  typename Opt::Options o;
  o.lr = lr;
  o.weight_decay = weight_decay;
  o.amsgrad = amsgrad;
  return o;
}

template <typename Opt>
std::vector<std::string> state_names(const Opt& opt) {
  std::vector<std::string> names;
  opt.visit_state([&names](const std::string& n, const Tensor<float>&) { names.push_back(n); });
  return names;
}

}  // namespace

TEST(Adam, MatchesTorchIncludingTheMoments) {
  TinyProblem<float> pb;
  Adam<float> opt(pb.params(), options<Adam<float>>(0.1f, 0));
  expect_trajectory(pb, opt, kAdam, kRtol, kAtol);
  EXPECT_TRUE(all_near(pair_state(opt, "exp_avg"), kAdamExpAvg, kRtol, kAtol));
  EXPECT_TRUE(all_near(pair_state(opt, "exp_avg_sq"), kAdamExpAvgSq, kRtol, 1e-10));
}

TEST(Adam, L2WeightDecayMatchesTorch) {
  TinyProblem<float> pb;
  Adam<float> opt(pb.params(), options<Adam<float>>(0.1f, 0.1f));
  expect_trajectory(pb, opt, kAdamWeightDecay, kRtol, kAtol);
}

TEST(Adam, BetasAndEpsMatchTorch) {
  TinyProblem<float> pb;
  Adam<float>::Options o;
  o.lr = 0.1f;
  o.beta1 = 0.8;
  o.beta2 = 0.99;
  o.eps = 1e-3f;  // large enough that adding it inside the sqrt would be caught
  Adam<float> opt(pb.params(), o);
  expect_trajectory(pb, opt, kAdamBetasEps, kRtol, kAtol);
}

TEST(Adam, AmsgradMatchesTorchIncludingTheRunningMax) {
  TinyProblem<float> pb;
  Adam<float> opt(pb.params(), options<Adam<float>>(0.1f, 0, true));
  expect_trajectory(pb, opt, kAdamAmsgrad, kRtol, kAtol);
  EXPECT_TRUE(all_near(pair_state(opt, "max_exp_avg_sq"), kAdamAmsgradMaxExpAvgSq, kRtol, 1e-10));
  EXPECT_TRUE(all_near(pair_state(opt, "exp_avg_sq"), kAdamExpAvgSq, kRtol, 1e-10));  // v itself is Adam's
}

TEST(Adam, AdamWWithItsDefaultWeightDecayMatchesTorch) {
  const AdamW<float>::Options defaults;
  EXPECT_EQ(defaults.weight_decay, 0.01f);
  TinyProblem<float> pb;
  AdamW<float>::Options o;
  o.lr = 0.1f;
  AdamW<float> opt(pb.params(), o);
  expect_trajectory(pb, opt, kAdamW, kRtol, kAtol);
}

TEST(Adam, AdamWWithBetasEpsAndAmsgradMatchesTorch) {
  TinyProblem<float> pb;
  AdamW<float>::Options o;
  o.lr = 0.1f;
  o.weight_decay = 0.2f;
  o.beta1 = 0.8;
  o.beta2 = 0.99;
  o.eps = 1e-3f;
  o.amsgrad = true;
  AdamW<float> opt(pb.params(), o);
  expect_trajectory(pb, opt, kAdamWCustom, kRtol, kAtol);
}

TEST(Adam, DoubleAdamWWithAmsgradMatchesTorchFloat64) {
  TinyProblem<double> pb;
  AdamW<double>::Options o;
  o.lr = 0.1;
  o.weight_decay = 0.2;
  o.amsgrad = true;
  AdamW<double> opt(pb.params(), o);
  for (std::size_t k = 0; k < kGrads.size(); ++k) {
    pb.set_grads(k);
    opt.step();
  }
  EXPECT_TRUE(all_near(pb.values(), kAdamWAmsgradDouble, 1e-13, 1e-15));
}

TEST(Adam, AdamAndAdamWAgreeWithoutWeightDecay) {
  TinyProblem<float> a, b;
  Adam<float> adam(a.params(), options<Adam<float>>(0.1f, 0));
  AdamW<float> adamw(b.params(), options<AdamW<float>>(0.1f, 0));
  for (std::size_t k = 0; k < kGrads.size(); ++k) {
    a.set_grads(k);
    b.set_grads(k);
    adam.step();
    adamw.step();
  }
  EXPECT_EQ(a.values(), b.values());
}

TEST(Adam, DefaultsAreTorchs) {
  const Adam<float>::Options o;
  EXPECT_EQ(o.lr, 1e-3f);
  EXPECT_EQ(o.beta1, 0.9);
  EXPECT_EQ(o.beta2, 0.999);
  EXPECT_EQ(o.eps, 1e-8f);
  EXPECT_EQ(o.weight_decay, 0.0f);
  EXPECT_FALSE(o.amsgrad);
  // The first step of Adam moves every parameter with a nonzero gradient by lr (m / sqrt(v) = sign(g)).
  TinyProblem<float> pb;
  Adam<float> opt(pb.params());
  pb.set_grads(0);
  opt.step();
  EXPECT_FLOAT_EQ(pb.w.value()[0], 0.5f - 1e-3f);
  EXPECT_FLOAT_EQ(pb.w.value()[1], -1.25f + 1e-3f);
  EXPECT_EQ(pb.w.value()[5], 1.1f);  // zero gradient: m = 0, no move
}

TEST(Adam, StateNamesFollowTorchsStateKeys) {
  TinyProblem<float> pb;
  Adam<float> adam(pb.params());
  EXPECT_EQ(state_names(adam), std::vector<std::string>({"step", "layer.weight.exp_avg", "layer.weight.exp_avg_sq",
                                                         "layer.bias.exp_avg", "layer.bias.exp_avg_sq"}));
  AdamW<float>::Options o;
  o.amsgrad = true;
  AdamW<float> amsgrad(pb.params(), o);
  EXPECT_EQ(state_names(amsgrad),
            std::vector<std::string>({"step", "layer.weight.exp_avg", "layer.weight.exp_avg_sq",
                                      "layer.weight.max_exp_avg_sq", "layer.bias.exp_avg", "layer.bias.exp_avg_sq",
                                      "layer.bias.max_exp_avg_sq"}));
}

TEST(Adam, LargeParametersAreUpdatedInBlocksOnEveryThreadAsOneElementAtATime) {
  // 100003 elements: split across threads and into blocks, with a partial last block. Every variant must give the
  // element-by-element formula (torch's, in its order of operations), and the same bits on one and two threads.
  const Index n = 100003;
  const Tensor<float> w0 = eigenformer::testing::random_tensor({n}, 80);
  std::vector<Tensor<float>> grads;
  for (std::uint64_t s = 0; s < 3; ++s) grads.push_back(eigenformer::testing::random_tensor({n}, 81 + s));
  struct Variant {
    bool amsgrad;
    float wd;
    bool decoupled;
  };
  for (const Variant var : {Variant{false, 0.0f, false}, Variant{true, 0.1f, false}, Variant{false, 0.05f, true},
                            Variant{true, 0.05f, true}}) {
    std::vector<Tensor<float>> results;
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      Var<float> w(w0.clone(), true);
      NamedParameters<float> params{{"w", w}};
      auto run = [&](auto& opt) {
        for (const Tensor<float>& g : grads) {
          w.grad() = g.clone();
          opt.step();
        }
      };
      if (var.decoupled) {
        AdamW<float>::Options o;
        o.weight_decay = var.wd;
        o.amsgrad = var.amsgrad;
        AdamW<float> opt(params, o);
        run(opt);
      } else {
        Adam<float>::Options o;
        o.weight_decay = var.wd;
        o.amsgrad = var.amsgrad;
        Adam<float> opt(params, o);
        run(opt);
      }
      results.push_back(w.value().clone());
    }
    set_num_threads(2);
    EXPECT_TRUE(results[0].equal(results[1])) << "amsgrad " << var.amsgrad << ", weight decay " << var.wd;
    // The reference, one element at a time in double from the same float inputs.
    const double lr = 1e-3, b1 = 0.9, b2 = 0.999, eps = 1e-8;
    double worst = 0;
    for (Index e = 0; e < n; e += 997) {
      double w = w0[e], m = 0, v = 0, v_max = 0;
      for (std::size_t t = 1; t <= grads.size(); ++t) {
        double g = grads[t - 1][e];
        if (var.decoupled) w *= 1 - lr * var.wd;
        else g += var.wd * w;
        m = b1 * m + (1 - b1) * g;
        v = b2 * v + (1 - b2) * g * g;
        v_max = std::max(v_max, v);
        const double denom = std::sqrt(var.amsgrad ? v_max : v) / std::sqrt(1 - std::pow(b2, double(t))) + eps;
        w -= lr / (1 - std::pow(b1, double(t))) * m / denom;
      }
      worst = std::max(worst, std::abs(w - double(results[1][e])));
    }
    EXPECT_LT(worst, 1e-6) << "amsgrad " << var.amsgrad << ", weight decay " << var.wd;
  }
}

TEST(Adam, ANonFiniteGradientDeepInALargeParameterChangesNothing) {
  set_num_threads(2);
  const Index n = 200000;
  Var<float> w(eigenformer::testing::random_tensor({n}, 90), true);
  Adam<float> opt({{"big", w}});
  w.grad() = Tensor<float>::full({n}, 1e-3f);
  opt.step();  // moments that a half-done update would change
  const Tensor<float> before = w.value().clone();
  const auto state_before = eigenformer::testing::saved_state(opt);
  w.grad()[n - 5] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW_WITH(opt.step(), ValueError, {"Adam::step", "'big'", "element 199995", "not finite"});
  EXPECT_TRUE(w.value().equal(before));
  EXPECT_EQ(opt.step_count(), 1);
  const auto state_after = eigenformer::testing::saved_state(opt);
  ASSERT_EQ(state_after.size(), state_before.size());
  for (const auto& [name, t] : state_before) EXPECT_TRUE(state_after.at(name).equal(t)) << name;
  w.grad()[n - 5] = 1e-3f;
  opt.step();
  EXPECT_FALSE(w.value().equal(before));
}

TEST(Adam, InvalidOptionsThrowValueErrorNamingTheOptimizerAndOption) {
  TinyProblem<float> pb;
  EXPECT_THROW_WITH(Adam<float>(pb.params(), options<Adam<float>>(-1e-3f, 0)), ValueError, {"Adam", "lr"});
  EXPECT_THROW_WITH(AdamW<float>(pb.params(), options<AdamW<float>>(1e-3f, -0.1f)), ValueError,
                    {"AdamW", "weight_decay", "-0.1"});
  Adam<float>::Options o;
  o.beta1 = 1.0;
  EXPECT_THROW_WITH(Adam<float>(pb.params(), o), ValueError, {"Adam", "beta1 is 1", "0 <= beta1 < 1"});
  o = Adam<float>::Options();
  o.beta2 = -0.5;
  EXPECT_THROW_WITH(Adam<float>(pb.params(), o), ValueError, {"Adam", "beta2 is -0.5"});
  o = Adam<float>::Options();
  o.eps = -1e-8f;
  EXPECT_THROW_WITH(Adam<float>(pb.params(), o), ValueError, {"Adam", "eps"});
  o = Adam<float>::Options();
  o.eps = std::numeric_limits<float>::infinity();
  EXPECT_THROW_WITH(Adam<float>(pb.params(), o), ValueError, {"Adam", "eps", "inf"});
}

}  // namespace adam_test
