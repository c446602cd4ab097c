#include "eigenformer/ops/layer_norm.hpp"

#include "eigenformer/ops/elementwise.hpp"
#include "support/test_support.hpp"

using namespace eigenformer;

namespace layer_norm_test {

using eigenformer::testing::random_var;
using Inputs = std::vector<Var<double>>;

namespace {

// torch.nn.functional.layer_norm(x, (5,), w, b, 1e-5), backward with seed kG.
const std::vector<double> kX = {-0.147, 0.786, 0.947, -1.114, 1.691, -0.895, -0.356, 1.232, 0.138, -1.682};
const std::vector<double> kW = {0.271, -1.273, 0.503, 0.418, -0.639};
const std::vector<double> kB = {0.045, 1.911, -0.231, 0.346, 1.318};
const std::vector<double> kG = {-0.601, -1.012, -0.302, -1.228, 0.92, -0.348, -0.869, -0.958, -1.192, 1.905};

}  // namespace

TEST(LayerNorm, ValuesAndGradientsMatchPyTorch) {
  Var<double> x(Tensor<double>::from(kX, {2, 5}), true), w(Tensor<double>::from(kW, {5}), true),
      b(Tensor<double>::from(kB, {5}), true);
  Var<double> y = layer_norm(x, w, b);
  EXPECT_TRUE(y.value().allclose(
      Tensor<double>::from({-0.11698928475335937, 1.4470367638444583, 0.03584407558588195, -0.320719116760828,
                            0.48870664027368454, -0.11599763980314305, 1.9673568856403583, 0.5615248119708697,
                            0.5381305037244651, 2.210606477065033},
                           {2, 5}),
      1e-12, 1e-14));
  y.backward(Tensor<double>::from(kG, {2, 5}));
  EXPECT_TRUE(x.grad().allclose(
      Tensor<double>::from({-0.07479941409016529, 1.3141956423699426, -0.18964146178952362, -0.32469812878102955,
                            -0.7250566377092241, 0.232826195134573, 1.376789222074959, -0.48087169295671683,
                            -0.3338401797344345, -0.7949035445183806},
                           {2, 5}),
      1e-10, 1e-12));
  EXPECT_TRUE(w.grad().allclose(Tensor<double>::from({0.5659879660083496, -0.3303665839496754, -1.6696335600298797,
                                                      1.410793097949125, -1.4670820780292289},
                                                     {5}),
                                1e-10, 1e-12));
  EXPECT_TRUE(b.grad().allclose(Tensor<double>::from({-0.949, -1.881, -1.26, -2.42, 2.825}, {5}), 1e-12, 1e-14));
}

TEST(LayerNorm, WithoutWeightAndBiasMatchesPyTorch) {
  Var<double> x(Tensor<double>::from(kX, {2, 5}), true);
  Var<double> y = layer_norm(x, Var<double>(), Var<double>());
  EXPECT_TRUE(y.value().allclose(
      Tensor<double>::from({-0.5977464382042781, 0.3644644431701034, 0.5305051204490695, -1.5950218104326028,
                            1.2977986850177081, -0.5940872317459153, -0.044270923519527314, 1.5755960476558046,
                            0.4596423534078115, -1.3968802457981735},
                           {2, 5}),
      1e-12, 1e-14));
  y.backward(Tensor<double>::from(kG, {2, 5}));
  EXPECT_TRUE(x.grad().allclose(
      Tensor<double>::from({0.2064663060700831, -0.8094008980574171, -0.17932820323111642, 0.17340862738167362,
                            0.608854167836777, -0.5988705156016884, -0.6285717974830397, 0.7589076179578019,
                            -0.49819013426850767, 0.9667248293954339},
                           {2, 5}),
      1e-10, 1e-12));
}

TEST(LayerNorm, FloatValuesMatchPyTorch) {
  std::vector<float> xf(kX.begin(), kX.end()), wf(kW.begin(), kW.end()), bf(kB.begin(), kB.end());
  Var<float> x(Tensor<float>::from(xf, {2, 5})), w(Tensor<float>::from(wf, {5})), b(Tensor<float>::from(bf, {5}));
  EXPECT_TRUE(layer_norm(x, w, b).value().allclose(
      Tensor<float>::from({-0.116989285f, 1.447036764f, 0.035844076f, -0.320719117f, 0.488706640f, -0.115997640f,
                           1.967356886f, 0.561524812f, 0.538130504f, 2.210606477f},
                          {2, 5}),
      1e-5, 1e-6));
}

TEST(LayerNorm, PassesGradcheckWithAndWithoutWeightAndBias) {
  std::uint64_t seed = 1;
  for (const Shape& s : {Shape{1, 1}, Shape{7}, Shape{3, 7}, Shape{2, 3, 5}}) {
    const Index c = s.back();
    Var<double> x = random_var(s, seed++), w = random_var({c}, seed++), b = random_var({c}, seed++);
    EXPECT_GRADCHECK([](const Inputs& v) { return layer_norm(v[0], v[1], v[2]); }, Inputs{x, w, b});
    EXPECT_GRADCHECK([](const Inputs& v) { return layer_norm(v[0], Var<double>(), Var<double>()); }, Inputs{x});
    EXPECT_GRADCHECK([](const Inputs& v) { return layer_norm(v[0], v[1], Var<double>()); }, Inputs{x, w});
    EXPECT_GRADCHECK([](const Inputs& v) { return layer_norm(v[0], Var<double>(), v[1]); }, Inputs{x, b});
    EXPECT_GRADCHECK([](const Inputs& v) { return layer_norm(v[0], v[1], v[2], 0.5); }, Inputs{x, w, b});
  }
}

TEST(LayerNorm, WritesDxOverTheOutputGradientOnlyWhenNothingElseHoldsIt) {
  // add() hands the same gradient buffer to both of its inputs (see LinearRelu's test of the same name).
  Var<double> x = random_var({3, 6}, 43), w = random_var({6}, 44), b = random_var({6}, 45);
  EXPECT_GRADCHECK([](const Inputs& v) { return add(layer_norm(v[0], v[1], v[2]), mul(v[0], v[0])); },
                   Inputs{x, w, b});
  EXPECT_GRADCHECK([](const Inputs& v) { return add(mul(v[0], v[0]), layer_norm(v[0], v[1], v[2])); },
                   Inputs{x, w, b});
  EXPECT_GRADCHECK([](const Inputs& v) { return add(layer_norm(v[0], v[1], v[2]), layer_norm(v[0], v[2], v[1])); },
                   Inputs{x, w, b});
}

TEST(LayerNorm, GradientsOfParametersAloneWhenXIsConstant) {
  Var<double> x = random_var({4, 6}, 40, false), w = random_var({6}, 41), b = random_var({6}, 42);
  EXPECT_GRADCHECK([](const Inputs& v) { return layer_norm(v[0], v[1], v[2]); }, Inputs{x, w, b});
}

TEST(LayerNorm, BadArgumentsThrowNamingLayerNorm) {
  Var<float> x(Tensor<float>::zeros({2, 5}));
  Var<float> w(Tensor<float>::ones({5})), bad(Tensor<float>::ones({4}));
  EXPECT_THROW_WITH(layer_norm(x, bad, w), ShapeError, {"layer_norm", "weight is (4)", "x is (2, 5)", "weight (5)"});
  EXPECT_THROW_WITH(layer_norm(x, w, bad), ShapeError, {"layer_norm", "bias is (4)", "bias (5)"});
  EXPECT_THROW_WITH(layer_norm(Var<float>(Tensor<float>::scalar(1.0f)), Var<float>(), Var<float>()), ShapeError,
                    {"layer_norm", "x is ()"});
  EXPECT_THROW_WITH(layer_norm(x, w, w, -1.0f), ValueError, {"layer_norm", "eps is -1", "eps >= 0"});
}

}  // namespace layer_norm_test
