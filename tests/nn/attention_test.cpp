#include "eigenformer/nn/attention.hpp"

#include "support/test_support.hpp"

using namespace eigenformer;

namespace attention_test {

using eigenformer::testing::random_var;
using Inputs = std::vector<Var<double>>;

TEST(MultiHeadAttention, NamesShapesAndPyTorchInit) {
  Generator gen(1);
  nn::MultiHeadAttention<double> mha({8, 2}, gen);
  std::vector<std::string> names;
  for (auto& [n, p] : mha.named_parameters()) names.push_back(n);
  EXPECT_EQ(names, (std::vector<std::string>{"in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"}));
  EXPECT_EQ(mha.in_proj_weight.shape(), (Shape{24, 8}));
  const double xavier = std::sqrt(6.0 / (8 + 24));
  for (Index i = 0; i < mha.in_proj_weight.numel(); ++i) EXPECT_LE(std::abs(mha.in_proj_weight.value()[i]), xavier);
  for (Index i = 0; i < 24; ++i) EXPECT_EQ(mha.in_proj_bias.value()[i], 0.0);
  for (Index i = 0; i < 8; ++i) EXPECT_EQ(mha.out_proj.bias.value()[i], 0.0);
  EXPECT_THROW_WITH((nn::MultiHeadAttention<double>({8, 3}, gen)), ValueError, {"MultiHeadAttention", "num_heads is 3"});
}

TEST(MultiHeadAttention, SelfAttentionPassesGradcheckWithPaddingAndWeights) {
  Generator gen(2);
  nn::MultiHeadAttention<double> mha({6, 3}, gen);
  mha.in_proj_bias.value() = random_var({18}, 3, false).value();
  Var<double> x = random_var({2, 4, 6}, 4);
  AttentionMask<double> m;
  m.key_padding = Tensor<bool>::from({false, false, false, false, false, false, true, true}, {2, 4});
  EXPECT_GRADCHECK([&](const Inputs&) { return mha.forward(x, m).output; },
                   Inputs{x, mha.in_proj_weight, mha.in_proj_bias, mha.out_proj.weight, mha.out_proj.bias});
  auto r = mha.forward(x, m, true);
  ASSERT_EQ(r.attn_weights.shape(), (Shape{2, 4, 4}));
  for (Index t = 0; t < 4; ++t) {
    EXPECT_EQ(r.attn_weights.at({1, t, 2}), 0.0);  // padded keys get no weight
    EXPECT_NEAR(r.attn_weights.at({1, t, 0}) + r.attn_weights.at({1, t, 1}), 1.0, 1e-12);
  }
  EXPECT_EQ(mha.forward(x, m, true, false).attn_weights.shape(), (Shape{2, 3, 4, 4}));
}

TEST(MultiHeadAttention, CrossAttentionEqualsSelfAttentionOnTheSameInput) {
  Generator gen(5);
  nn::MultiHeadAttention<double> mha({4, 2}, gen);
  Var<double> x = random_var({2, 3, 4}, 6), mem = random_var({2, 5, 4}, 7);
  EXPECT_TRUE(mha.forward(x, x, x).output.value().allclose(mha.forward(x).output.value(), 1e-12, 1e-12));
  EXPECT_GRADCHECK([&](const Inputs&) { return mha.forward(x, mem, mem).output; },
                   Inputs{x, mem, mha.in_proj_weight, mha.out_proj.weight});
  EXPECT_THROW_WITH(mha.forward(x, random_var({2, 5, 4}, 8), random_var({2, 4, 4}, 9)), ShapeError,
                    {"MultiHeadAttention", "(2, 5, 4)", "(2, 4, 4)"});
  EXPECT_THROW_WITH(mha.forward(random_var({2, 3, 5}, 10)), ShapeError, {"MultiHeadAttention", "(2, 3, 5)", "(B, T, 4)"});
}

}  // namespace attention_test
