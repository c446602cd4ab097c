#include "eigenformer/ops/embedding.hpp"

#include "eigenformer/ops/elementwise.hpp"
#include "eigenformer/ops/layout.hpp"
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

// ---------------------------------------------------------------------------------------------------------------
// embedding_with_positions

TEST(EmbeddingWithPositions, EqualsEmbeddingPlusTheFirstRowsOfThePositionTableBitForBit) {
  Var<float> w(eigenformer::testing::random_tensor({11, 6}, 60), true);
  Var<float> p(eigenformer::testing::random_tensor({9, 6}, 61), true);  // P = 9 > T = 4
  const Ids ids = Ids::from({3, 10, 0, 3, 7, 7, 1, 2}, {2, 4});
  const Tensor<float> dy = eigenformer::testing::random_tensor({2, 4, 6}, 62);
  Var<float> fused = embedding_with_positions(w, ids, p, 0);
  fused.backward(dy);
  const Tensor<float> gw = w.grad().clone(), gp = p.grad().clone();
  w.zero_grad();
  p.zero_grad();
  Var<float> ref = add(embedding(w, ids, 0), split(p, {4, 5}, 0)[0]);
  ref.backward(dy);
  EXPECT_TRUE(fused.value().equal(ref.value()));
  EXPECT_TRUE(gw.allclose(w.grad(), 1e-6, 1e-6));
  EXPECT_TRUE(gp.allclose(p.grad(), 1e-6, 1e-6));
  for (Index i = 4 * 6; i < gp.numel(); ++i) EXPECT_EQ(gp[i], 0.0f);  // rows T.. are not used
}

TEST(EmbeddingWithPositions, PassesGradcheckWithRepeatedIdsAndWithAConstantTable) {
  Var<double> w = random_var({5, 3}, 63), p = random_var({4, 3}, 64);
  const Ids ids = Ids::from({4, 1, 4, 4, 0, 1}, {2, 3});
  EXPECT_GRADCHECK([ids](const Inputs& v) { return embedding_with_positions(v[0], ids, v[1]); }, Inputs{w, p});
  const Var<double> table = random_var({3, 3}, 65, false);  // sinusoids: no gradient, exactly T rows
  EXPECT_GRADCHECK([ids, table](const Inputs& v) { return embedding_with_positions(v[0], ids, table); }, Inputs{w});
  const Var<double> tokens = random_var({5, 3}, 66, false);  // a frozen token table: positions alone
  EXPECT_GRADCHECK([ids, tokens](const Inputs& v) { return embedding_with_positions(tokens, ids, v[0]); }, Inputs{p});
  const Ids flat = Ids::from({2, 2, 0}, {3});  // one sequence without a batch axis
  EXPECT_GRADCHECK([flat](const Inputs& v) { return embedding_with_positions(v[0], flat, v[1]); }, Inputs{w, p});
}

TEST(EmbeddingWithPositions, BadArgumentsThrowNamingTheOp) {
  Var<float> w(Tensor<float>::zeros({4, 2})), p(Tensor<float>::zeros({3, 2}));
  const char* fn = "embedding_with_positions";
  EXPECT_THROW_WITH(embedding_with_positions(w, Ids::zeros({2, 4}), p), ShapeError,
                    {fn, "positions is (3, 2)", "ids is (2, 4)", "P >= 4"});
  EXPECT_THROW_WITH(embedding_with_positions(w, Ids::zeros({2, 3}), Var<float>(Tensor<float>::zeros({3, 5}))),
                    ShapeError, {fn, "positions is (3, 5)", "weight is (4, 2)", "(P, 2)"});
  EXPECT_THROW_WITH(embedding_with_positions(w, Ids::scalar(1), p), ShapeError, {fn, "ids is a scalar"});
  EXPECT_THROW_WITH(embedding_with_positions(w, Ids::from({0, 5}, {1, 2}), p), ValueError,
                    {fn, "id 5", "position (0, 1)", "V = 4"});
  EXPECT_THROW_WITH(embedding_with_positions(w, Ids::zeros({1, 2}), p, 9), ValueError, {fn, "padding_idx is 9"});
  EXPECT_THROW_WITH(embedding_with_positions(Var<float>(Tensor<float>::zeros({4})), Ids::zeros({1, 2}), p), ShapeError,
                    {fn, "weight is (4)"});
  EXPECT_THROW_WITH(embedding_with_positions(w, Ids::zeros({1, 2}), Var<float>()), ValueError,
                    {fn, "positions is an undefined Var"});
  EXPECT_THROW_WITH(embedding_with_positions(Var<float>(), Ids::zeros({1, 2}), p), ValueError,
                    {fn, "weight is an undefined Var"});
  EXPECT_THROW_WITH(embedding(Var<float>(), Ids::zeros({1, 2})), ValueError, {"embedding", "weight is an undefined Var"});
}

}  // namespace embedding_test
