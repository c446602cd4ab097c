#include "eigenformer/ops/embedding.hpp"

#include "eigenformer/ops/elementwise.hpp"
#include "support/test_support.hpp"

using namespace eigenformer;

namespace embedding_test {

using eigenformer::testing::random_var;
using Inputs = std::vector<Var<double>>;
using Ids = Tensor<std::int64_t>;

namespace {

const std::vector<double> kWeight = {-0.214, -1.378, -0.055, 0.452, 0.786, -1.088,
                                     -0.56,  -0.934, 0.048,  -0.084, -0.147, 0.759};

}  // namespace

TEST(Embedding, GathersRowsIntoTheIdsShapePlusChannels) {
  Var<float> w(Tensor<float>::from({0, 1, 10, 11, 20, 21}, {3, 2}));
  const Tensor<float> y = embedding(w, Ids::from({2, 0, 2, 1}, {2, 2})).value();
  EXPECT_TRUE(y.equal(Tensor<float>::from({20, 21, 0, 1, 20, 21, 10, 11}, {2, 2, 2})));
  // A rank-0 id gives one row.
  EXPECT_TRUE(embedding(w, Ids::scalar(1)).value().equal(Tensor<float>::from({10, 11}, {2})));
}

TEST(Embedding, RepeatedIdsAccumulateAndThePaddingRowGetsNoGradientLikePyTorch) {
  // torch.nn.functional.embedding([[2, 0, 2], [3, 2, 1]], w, padding_idx=0), backward with seed g.
  Var<double> w(Tensor<double>::from(kWeight, {4, 3}), true);
  const Tensor<double> g = Tensor<double>::from({1.61, -0.401, 0.62, -1.82, 0.97, 0.77, -0.155, 1.224, -0.798, 0.817,
                                                 -0.515, -0.856, -1.338, -0.048, -0.466, 0.57, 0.435, -0.161},
                                                {2, 3, 3});
  Var<double> y = embedding(w, Ids::from({2, 0, 2, 3, 2, 1}, {2, 3}), 0);
  for (Index c = 0; c < 3; ++c) EXPECT_EQ(y.value()[3 + c], kWeight[static_cast<std::size_t>(c)]);  // looked up
  y.backward(g);
  EXPECT_TRUE(w.grad().allclose(Tensor<double>::from({0.0, 0.0, 0.0, 0.57, 0.435, -0.161, 0.11699999999999999,
                                                      0.7749999999999999, -0.6440000000000001, 0.817, -0.515, -0.856},
                                                     {4, 3}),
                                1e-14, 1e-15));
}

TEST(Embedding, PassesGradcheckWithRepeatedIds) {
  Var<double> w = random_var({5, 3}, 1);
  const Ids ids = Ids::from({4, 1, 4, 4, 0, 1}, {2, 3});
  EXPECT_GRADCHECK([ids](const Inputs& v) { return embedding(v[0], ids); }, Inputs{w});
  Var<double> one = random_var({1, 1}, 2);
  EXPECT_GRADCHECK([](const Inputs& v) { return embedding(v[0], Ids::from({0, 0, 0}, {3})); }, Inputs{one});
}

TEST(Embedding, PassesGradcheckWithPaddingWhenPaddedOutputsAreMaskedDownstream) {
  // The padding row's gradient is deliberately dropped, which is exact when its outputs do not reach the loss:
  // the usual case, where a padding mask zeroes them.
  Var<double> w = random_var({4, 3}, 3);
  const Ids ids = Ids::from({2, 0, 2, 3, 0, 1}, {2, 3});
  Tensor<double> keep = Tensor<double>::ones({2, 3, 1});
  keep[1] = 0.0;
  keep[4] = 0.0;
  const Var<double> mask(keep);
  EXPECT_GRADCHECK([ids, mask](const Inputs& v) { return mul(embedding(v[0], ids, 0), mask); }, Inputs{w});
}

TEST(Embedding, OutOfRangeIdThrowsValueErrorNamingIdPositionAndV) {
  Var<float> w(Tensor<float>::zeros({4, 2}));
  EXPECT_THROW_WITH(embedding(w, Ids::from({0, 1, 2, 3, 0, 4}, {2, 3})), ValueError,
                    {"embedding", "id 4", "position (1, 2)", "V = 4"});
  EXPECT_THROW_WITH(embedding(w, Ids::from({0, -1}, {2})), ValueError, {"embedding", "id -1", "position (1)"});
  EXPECT_THROW_WITH(embedding(w, Ids::from({0}, {1}), 4), ValueError, {"embedding", "padding_idx is 4"});
  EXPECT_THROW_WITH(embedding(w, Ids::from({0}, {1}), -2), ValueError, {"embedding", "padding_idx is -2"});
}

TEST(Embedding, WeightThatIsNotAMatrixThrowsShapeError) {
  Var<float> w(Tensor<float>::zeros({4}));
  EXPECT_THROW_WITH(embedding(w, Ids::from({0}, {1})), ShapeError, {"embedding", "weight is (4)"});
}

}  // namespace embedding_test
