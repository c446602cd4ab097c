#include "eigenformer/nn/module.hpp"

#include <algorithm>
#include <type_traits>

#include "eigenformer/nn/encoder_classifier.hpp"
#include "support/test_support.hpp"

using namespace eigenformer;

namespace module_test {

namespace {

nn::EncoderClassifier<float> seed_model(nn::PositionalKind positional = nn::PositionalKind::learned) {
  nn::EncoderClassifier<float>::Options o;
  o.positional = positional;
  o.max_len = 8;
  return nn::EncoderClassifier<float>(o);
}

/// A module with a buffer of each kind and a child list.
struct WithBuffers : nn::Module<WithBuffers, double> {
  WithBuffers() {
    Generator gen(1);
    typename nn::Linear<double>::Options lo;
    lo.in_features = 2;
    lo.out_features = 2;
    blocks.emplace_back(lo, gen);
    blocks.emplace_back(lo, gen);
    ids = Tensor<std::int64_t>::from({0, 1, 2}, {1, 3});
    cache = Tensor<double>::zeros({4});
  }
  template <class V>
  void visit(V& v) {
    v.modules("blocks", blocks);
    v.buffer("position_ids", ids);
    v.buffer("cache", cache, nn::Persistence::non_persistent);
  }
  std::vector<nn::Linear<double>> blocks;
  Tensor<std::int64_t> ids;
  Tensor<double> cache;
};

}  // namespace

TEST(Module, NamedModulesListTheTreeUnderStateDictNames) {
  auto model = seed_model();
  std::vector<std::string> paths;
  for (const auto& [path, m] : model.named_modules()) paths.push_back(path);
  const std::vector<std::string> expected_prefix = {"",
                                                    "embedding",
                                                    "pos_embedding",
                                                    "encoder",
                                                    "encoder.layers.0",
                                                    "encoder.layers.0.self_attn",
                                                    "encoder.layers.0.self_attn.out_proj",
                                                    "encoder.layers.0.self_attn.attention",
                                                    "encoder.layers.0.linear1",
                                                    "encoder.layers.0.dropout",
                                                    "encoder.layers.0.linear2",
                                                    "encoder.layers.0.norm1",
                                                    "encoder.layers.0.norm2",
                                                    "encoder.layers.0.dropout1",
                                                    "encoder.layers.0.dropout2"};
  ASSERT_GE(paths.size(), expected_prefix.size());
  EXPECT_EQ(std::vector<std::string>(paths.begin(), paths.begin() + expected_prefix.size()), expected_prefix);
  EXPECT_EQ(paths.back(), "classifier.1");
  EXPECT_EQ(paths.size(), expected_prefix.size() + 11 + 2);  // the second layer, then the head's norm and linear
}

TEST(Module, EvalAndTrainReachEveryModule) {
  auto model = seed_model();
  model.eval();
  for (const auto& [path, m] : model.named_modules()) EXPECT_FALSE(m->is_training()) << "'" << path << "'";
  // Modules whose parts are declared in their parent's namespace are switched too.
  EXPECT_FALSE(model.head.is_training());
  EXPECT_FALSE(model.encoder.layers[1].ff.is_training());
  EXPECT_FALSE(model.encoder.layers[1].ff.dropout.active());
  model.train();
  for (const auto& [path, m] : model.named_modules()) EXPECT_TRUE(m->is_training()) << "'" << path << "'";
  EXPECT_TRUE(model.encoder.layers[1].ff.dropout.active());
  model.encoder.layers[0].train(false);  // a subtree alone
  EXPECT_FALSE(model.encoder.layers[0].self_attn.attention.is_training());
  EXPECT_TRUE(model.encoder.layers[1].self_attn.attention.is_training());
}

TEST(Module, ApplySeesConcreteTypes) {
  auto model = seed_model();
  std::vector<std::string> linears;
  model.apply([&](const std::string& path, auto& m) {
    if constexpr (std::is_same_v<std::decay_t<decltype(m)>, nn::Linear<float>>) linears.push_back(path);
  });
  EXPECT_EQ(linears, (std::vector<std::string>{"encoder.layers.0.self_attn.out_proj", "encoder.layers.0.linear1",
                                               "encoder.layers.0.linear2", "encoder.layers.1.self_attn.out_proj",
                                               "encoder.layers.1.linear1", "encoder.layers.1.linear2",
                                               "classifier.1"}));
}

TEST(Module, GeneratorsAreNamedAfterTheirModules) {
  auto model = seed_model();
  std::vector<std::string> names;
  model.visit_generators([&](const std::string& name, Generator&) { names.push_back(name); });
  EXPECT_EQ(names, (std::vector<std::string>{"encoder.layers.0.self_attn.attention", "encoder.layers.0.dropout",
                                             "encoder.layers.0.dropout1", "encoder.layers.0.dropout2",
                                             "encoder.layers.1.self_attn.attention", "encoder.layers.1.dropout",
                                             "encoder.layers.1.dropout1", "encoder.layers.1.dropout2"}));
}

TEST(Module, BuffersAreListedWithTheirPersistence) {
  WithBuffers m;
  const auto buffers = m.named_buffers();
  ASSERT_EQ(buffers.size(), 2u);
  EXPECT_EQ(buffers[0].first, "position_ids");
  EXPECT_EQ(std::get<Tensor<std::int64_t>*>(buffers[0].second), &m.ids);
  EXPECT_EQ(buffers[1].first, "cache");
  std::vector<std::string> persistent;
  m.visit_buffers([&](const std::string& name, auto&, nn::Persistence p) {
    if (p == nn::Persistence::persistent) persistent.push_back(name);
  });
  EXPECT_EQ(persistent, (std::vector<std::string>{"position_ids"}));
  std::vector<std::string> names;
  for (auto& [name, p] : m.named_parameters()) names.push_back(name);
  EXPECT_EQ(names, (std::vector<std::string>{"blocks.0.weight", "blocks.0.bias", "blocks.1.weight", "blocks.1.bias"}));
  // The sinusoidal positions of a classifier are a buffer that is not part of the state dict.
  auto model = seed_model(nn::PositionalKind::sinusoidal);
  const auto model_buffers = model.named_buffers();
  ASSERT_EQ(model_buffers.size(), 1u);
  EXPECT_EQ(model_buffers[0].first, "pos_embedding.table");
}

TEST(Module, FreezeUnfreezeAndZeroGradGoThroughTheTree) {
  auto model = seed_model();
  EXPECT_EQ(model.freeze(), static_cast<Index>(model.named_parameters().size()));
  EXPECT_EQ(model.trainable_parameter_count(), 0);
  EXPECT_EQ(model.unfreeze("classifier."), 4);
  EXPECT_EQ(model.trainable_parameter_count(), 32 + 32 + 2 * 32 + 2);
  EXPECT_THROW_WITH(model.freeze("decoder."), ValueError, {"freeze", "no parameter name starts with \"decoder.\""});
  model.unfreeze();
  for (auto& [name, p] : model.named_parameters()) p.grad() = Tensor<float>::ones(p.shape());
  model.zero_grad(false);
  for (auto& [name, p] : model.named_parameters()) EXPECT_EQ(p.grad().matrix().maxCoeff(), 0.0f) << name;
  model.zero_grad();
  for (auto& [name, p] : model.named_parameters()) EXPECT_FALSE(p.has_grad()) << name;
}

}  // namespace module_test
