#include <cmath>

#include "eigenformer/nn/dropout.hpp"
#include "eigenformer/nn/embedding.hpp"
#include "eigenformer/nn/layer_norm.hpp"
#include "eigenformer/nn/linear.hpp"
#include "eigenformer/nn/positional_encoding.hpp"
#include "eigenformer/ops/reduction.hpp"
#include "support/test_support.hpp"

using namespace eigenformer;

namespace layers_test {

using eigenformer::testing::random_var;
using Inputs = std::vector<Var<double>>;

template <typename M>
std::vector<std::string> names_of(M& m) {
  std::vector<std::string> out;
  for (auto& [name, p] : m.named_parameters()) out.push_back(name);
  return out;
}

TEST(Linear, NamesShapesInitAndGradcheck) {
  Generator gen(1);
  nn::Linear<double> fc({5, 3, true}, gen);
  EXPECT_EQ(names_of(fc), (std::vector<std::string>{"weight", "bias"}));
  EXPECT_EQ(fc.weight.shape(), (Shape{3, 5}));
  EXPECT_EQ(fc.parameter_count(), 18);
  const double bound = 1.0 / std::sqrt(5.0);  // torch.nn.Linear: U(-1/sqrt(in), 1/sqrt(in))
  for (Index i = 0; i < 15; ++i) EXPECT_LE(std::abs(fc.weight.value()[i]), bound);
  Var<double> x = random_var({2, 4, 5}, 2);
  EXPECT_EQ(fc.forward(x).shape(), (Shape{2, 4, 3}));
  EXPECT_GRADCHECK([&](const Inputs&) { return fc.forward(x); }, Inputs{x, fc.weight, fc.bias});
  nn::Linear<double> nobias({5, 3, false}, gen);
  EXPECT_EQ(names_of(nobias), (std::vector<std::string>{"weight"}));
  EXPECT_THROW_WITH((nn::Linear<double>({0, 3, true}, gen)), ValueError, {"Linear", "in_features is 0"});
  EXPECT_THROW_WITH(fc.forward(random_var({2, 4}, 3)), ShapeError, {"(2, 4)"});
}

TEST(Embedding, LooksUpRowsAndKeepsPaddingRowZero) {
  Generator gen(4);
  nn::Embedding<double> emb({7, 3, 0}, gen);
  for (Index j = 0; j < 3; ++j) EXPECT_EQ(emb.weight.value()(0, j), 0.0);
  const Tensor<std::int64_t> ids = Tensor<std::int64_t>::from({1, 0, 6, 1}, {2, 2});
  Var<double> y = emb.forward(ids);
  EXPECT_EQ(y.shape(), (Shape{2, 2, 3}));
  EXPECT_EQ(y.value().at({1, 0, 2}), emb.weight.value()(6, 2));
  // The padding row never receives a gradient (torch.nn.Embedding's padding_idx), so check it directly and
  // gradcheck a table without one.
  sum(emb.forward(ids)).backward();
  for (Index j = 0; j < 3; ++j) EXPECT_EQ(emb.weight.grad()(0, j), 0.0);
  EXPECT_EQ(emb.weight.grad()(1, 0), 2.0);
  nn::Embedding<double> plain({7, 3}, gen);
  EXPECT_GRADCHECK([&](const Inputs&) { return plain.forward(ids); }, Inputs{plain.weight});
  EXPECT_THROW_WITH((nn::Embedding<double>({7, 3, 7}, gen)), ValueError, {"Embedding", "padding_idx is 7"});
}

TEST(LayerNorm, NormalizesLastAxisAndPassesGradcheck) {
  nn::LayerNorm<double> ln({6, 1e-5, true});
  EXPECT_EQ(names_of(ln), (std::vector<std::string>{"weight", "bias"}));
  Var<double> x = random_var({3, 6}, 5);
  const Tensor<double> y = ln.forward(x).value();
  for (Index r = 0; r < 3; ++r) {
    double m = 0, v = 0;
    for (Index c = 0; c < 6; ++c) m += y(r, c) / 6;
    for (Index c = 0; c < 6; ++c) v += (y(r, c) - m) * (y(r, c) - m) / 6;
    EXPECT_NEAR(m, 0.0, 1e-12);
    EXPECT_NEAR(v, 1.0, 1e-4);
  }
  ln.weight.value() = random_var({6}, 6, false).value();
  EXPECT_GRADCHECK([&](const Inputs&) { return ln.forward(x); }, Inputs{x, ln.weight, ln.bias});
  EXPECT_THROW_WITH(nn::LayerNorm<double>(nn::LayerNorm<double>::Options(0)), ValueError, {"LayerNorm", "dim is 0"});
}

TEST(Dropout, ActiveInTrainingIdentityInEval) {
  nn::Dropout<float> drop({0.5f, 7});
  Var<float> x(Tensor<float>::ones({1000}));
  const Tensor<float> y = drop.forward(x).value();
  Index zeros = 0;
  for (Index i = 0; i < 1000; ++i) {
    EXPECT_TRUE(y[i] == 0.0f || y[i] == 2.0f);
    zeros += y[i] == 0.0f;
  }
  EXPECT_GT(zeros, 400);
  EXPECT_LT(zeros, 600);
  EXPECT_TRUE(drop.active());
  drop.eval();
  EXPECT_FALSE(drop.is_training());
  EXPECT_FALSE(drop.active());
  EXPECT_FALSE(nn::Dropout<float>(nn::Dropout<float>::Options(0.0f)).active());  // training, but p = 0
  EXPECT_TRUE(drop.forward(x).value().equal(x.value()));
  EXPECT_THROW_WITH(nn::Dropout<float>(nn::Dropout<float>::Options(1.5f)), ValueError, {"Dropout", "1.5"});
}

TEST(PositionalEncoding, SinusoidsMatchTheFormula) {
  Generator gen(8);
  nn::PositionalEncoding<double> pe({nn::PositionalKind::sinusoidal, 10, 4}, gen);
  EXPECT_TRUE(pe.named_parameters().empty());
  Var<double> x(Tensor<double>::zeros({2, 3, 4}));
  const Tensor<double> y = pe.forward(x).value();
  EXPECT_NEAR(y.at({1, 2, 0}), std::sin(2.0), 1e-12);
  EXPECT_NEAR(y.at({1, 2, 1}), std::cos(2.0), 1e-12);
  EXPECT_NEAR(y.at({0, 2, 2}), std::sin(2.0 / 100.0), 1e-12);  // 10000^(2/4) = 100
  EXPECT_NEAR(y.at({0, 1, 3}), std::cos(1.0 / 100.0), 1e-12);
  EXPECT_THROW_WITH(pe.forward(Var<double>(Tensor<double>::zeros({1, 11, 4}))), ValueError,
                    {"PositionalEncoding", "11", "max_len 10"});
}

TEST(PositionalEncoding, LearnedTableIsAParameterWithGradients) {
  Generator gen(9);
  nn::PositionalEncoding<double> pe({nn::PositionalKind::learned, 5, 3}, gen);
  EXPECT_EQ(names_of(pe), (std::vector<std::string>{"weight"}));
  Var<double> x = random_var({2, 4, 3}, 10);
  EXPECT_GRADCHECK([&](const Inputs&) { return pe.forward(x); }, Inputs{x, pe.weight});
  Var<double> full = random_var({1, 5, 3}, 11);
  EXPECT_GRADCHECK([&](const Inputs&) { return pe.forward(full); }, Inputs{full, pe.weight});
  nn::PositionalEncoding<double> none({nn::PositionalKind::none, 5, 3}, gen);
  EXPECT_TRUE(none.forward(x).value().equal(x.value()));
}

TEST(Module, FreezeUnfreezeAndCounts) {
  Generator gen(12);
  nn::Linear<float> fc({4, 2, true}, gen);
  EXPECT_EQ(fc.freeze("bias"), 1);
  EXPECT_FALSE(fc.bias.requires_grad());
  EXPECT_TRUE(fc.weight.requires_grad());
  EXPECT_EQ(fc.trainable_parameter_count(), 8);
  EXPECT_EQ(fc.unfreeze(), 2);
  EXPECT_EQ(fc.trainable_parameter_count(), 10);
  EXPECT_THROW_WITH(fc.freeze("encoder."), ValueError, {"freeze", "encoder."});
}

}  // namespace layers_test
