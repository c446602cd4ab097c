#include "eigenformer/nn/lora.hpp"

#include <filesystem>

#include "eigenformer/io/peft.hpp"

#include "eigenformer/nn/bert.hpp"
#include "eigenformer/nn/linear.hpp"
#include "eigenformer/ops/loss.hpp"
#include "support/test_support.hpp"

using namespace eigenformer;

namespace lora_test {

namespace {

nn::BertConfig tiny_bert() {
  nn::BertConfig c;
  c.vocab_size = 11;
  c.hidden_size = 8;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 2;
  c.intermediate_size = 12;
  c.max_position_embeddings = 6;
  c.hidden_dropout_prob = c.attention_probs_dropout_prob = 0;
  c.initializer_range = 0.3;
  return c;
}

const Tensor<std::int64_t> kIds = Tensor<std::int64_t>::from({1, 2, 3, 4, 5, 6, 7, 8}, {2, 4});

}  // namespace

TEST(Lora, StartsAtTheBaseModelAndTrainsOnlyTheAdaptersAndTheHead) {
  nn::BertForSequenceClassification<double> model(tiny_bert());
  model.eval();
  const Tensor<double> before = model.forward(kIds).value();
  const Index total = model.parameter_count();
  nn::LoraOptions o;
  o.rank = 2;
  EXPECT_EQ(nn::add_lora(model, o), 4);  // query and value of 2 layers
  EXPECT_TRUE(model.forward(kIds).value().equal(before));  // B = 0
  // Trainable: 4 adapters of (2 x 8) + (8 x 2), and the classifier (2 x 8 + 2).
  EXPECT_EQ(model.trainable_parameter_count(), 4 * (16 + 16) + 18);
  EXPECT_EQ(model.parameter_count(), total + 4 * 32);
  std::vector<std::string> names;
  for (auto& [name, p] : model.named_parameters())
    if (p.requires_grad()) names.push_back(name);
  EXPECT_EQ(names.front(), "bert.encoder.layer.0.attention.self.query.lora_A.weight");
  EXPECT_EQ(names.back(), "classifier.bias");
  EXPECT_THROW_WITH(nn::add_lora(model, o), ValueError, {"add_lora", "already has an adapter"});
  nn::BertForSequenceClassification<double> other(tiny_bert());
  o.targets = {"qkv"};
  EXPECT_THROW_WITH(nn::add_lora(other, o), ValueError, {"add_lora", "no Linear", "\"qkv\""});
  o.rank = 0;
  EXPECT_THROW_WITH(nn::add_lora(other, o), ValueError, {"rank is 0"});
}

TEST(Lora, GradcheckThroughEveryLinearForm) {
  Generator gen(3);
  nn::Linear<double> fc(typename nn::Linear<double>::Options(5, 4), gen);
  fc.adapter = std::make_shared<nn::LoraAdapter<double>>(5, 4, nn::LoraOptions{}, 7);
  fc.adapter->B.value() = eigenformer::testing::random_var({4, 8}, 8, false).value();  // a trained-looking B
  const Var<double> x = eigenformer::testing::random_var({2, 3, 5}, 9);
  const Var<double> r = eigenformer::testing::random_var({2, 3, 4}, 10);
  using Inputs = std::vector<Var<double>>;
  const Inputs params{x, fc.weight, fc.bias, fc.adapter->A, fc.adapter->B, r};
  EXPECT_GRADCHECK([&](const Inputs&) { return fc.forward(x); }, params);
  EXPECT_GRADCHECK([&](const Inputs&) { return fc.forward_relu(x); }, params);
  EXPECT_GRADCHECK([&](const Inputs&) { return fc.forward_add(x, r); }, params);
  // The update is (alpha / r) x A^T B^T with the default alpha 16, r 8.
  const Tensor<double> expected =
      add(linear(x, fc.weight, fc.bias), scale(linear(linear(x, fc.adapter->A), fc.adapter->B), 2.0)).value();
  EXPECT_TRUE(fc.forward(x).value().allclose(expected, 1e-12, 1e-12));
}

TEST(Lora, MergedWeightsGiveTheSameOutputs) {
  nn::BertForSequenceClassification<double> model(tiny_bert());
  nn::LoraOptions o;
  o.rank = 2;
  o.targets = {"query", "key", "value", "dense"};
  nn::add_lora(model, o);
  Index i = 0;
  model.apply([&](const std::string&, auto& m) {  // as after training: B away from zero
    if constexpr (std::is_same_v<std::decay_t<decltype(m)>, nn::Linear<double>>)
      if (m.adapter) m.adapter->B.value() = eigenformer::testing::random_var(m.adapter->B.shape(), 20 + i++, false).value();
  });
  model.eval();
  const Tensor<double> adapted = model.forward(kIds).value();
  const Index merged = nn::merge_lora(model);
  EXPECT_EQ(merged, 2 * 6 + 1);  // per layer query, key, value and three dense; the pooler's dense
  EXPECT_TRUE(model.forward(kIds).value().allclose(adapted, 1e-10, 1e-12));
  for (auto& [name, p] : model.named_parameters()) EXPECT_EQ(name.find("lora_"), std::string::npos) << name;
}

TEST(Lora, TrainingChangesOnlyTheAdaptersAndTheHead) {
  nn::BertForSequenceClassification<double> model(tiny_bert());
  nn::add_lora(model, nn::LoraOptions{});
  std::vector<std::pair<std::string, Tensor<double>>> before;
  for (auto& [name, p] : model.named_parameters()) before.emplace_back(name, p.value().clone());
  cross_entropy(model.forward(kIds), Tensor<std::int64_t>::from({0, 1}, {2})).backward();
  for (auto& [name, p] : model.named_parameters()) {
    if (!p.requires_grad()) {
      EXPECT_FALSE(p.has_grad()) << name;
      continue;
    }
    ASSERT_TRUE(p.has_grad()) << name;
    if (name.find("lora_A") != std::string::npos) continue;  // B = 0: A's first gradient is 0
    EXPECT_GT(p.grad().array().abs().maxCoeff(), 0.0) << name;
  }
}

TEST(Lora, AdapterFoldersRoundTripInPeftsFormatAndBadOnesChangeNothing) {
  nn::BertForSequenceClassification<float> model(tiny_bert());
  nn::LoraOptions o;
  o.rank = 2;
  nn::add_lora(model, o);
  for (auto& [name, p] : model.named_parameters())
    if (p.requires_grad()) p.value() = eigenformer::testing::random_tensor(p.shape(), name.size());
  model.eval();
  const Tensor<float> adapted = model.forward(kIds).value();
  const std::filesystem::path dir = std::filesystem::path(EIGENFORMER_TEST_TMP_DIR) / "lora_adapter";
  std::filesystem::remove_all(dir);
  io::save_lora(model, dir, o, "SEQ_CLS", "bert-tiny");
  const io::SafetensorsFile file = io::read_safetensors(dir / "adapter_model.safetensors");
  EXPECT_EQ(file.tensors().size(), 4u * 2 + 2);  // four adapters' A and B, the classifier's weight and bias
  EXPECT_TRUE(file.contains("base_model.model.bert.encoder.layer.1.attention.self.value.lora_B.weight"));
  EXPECT_TRUE(file.contains("base_model.model.classifier.weight"));
  // A fresh base model (the same seed: the same frozen weights) with the adapters loaded gives the same outputs.
  nn::BertForSequenceClassification<float> fresh(tiny_bert());
  const nn::LoraOptions read = io::load_lora(fresh, dir);
  EXPECT_EQ(read.rank, 2);
  EXPECT_EQ(read.targets, (std::vector<std::string>{"query", "value"}));
  fresh.eval();
  EXPECT_TRUE(fresh.forward(kIds).value().equal(adapted));
  // An adapter of another rank: named, and the model is left without adapters, as it was.
  nn::BertForSequenceClassification<float> other(tiny_bert());
  nlohmann::json config = nlohmann::json::parse(io::read_text_file(dir / "adapter_config.json"));
  config["r"] = 3;
  io::write_text_file_atomically(dir / "adapter_config.json", config.dump());
  EXPECT_THROW_WITH(io::load_lora(other, dir), IoError, {"load_lora", "lora_A.weight", "(2, 8) in the file, expected (3, 8)"});
  for (auto& [name, p] : other.named_parameters()) {
    EXPECT_EQ(name.find("lora"), std::string::npos) << name;
    EXPECT_TRUE(p.requires_grad()) << name;
  }
}

}  // namespace lora_test
