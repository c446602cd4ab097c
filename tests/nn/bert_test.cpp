#include "eigenformer/nn/bert.hpp"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "eigenformer/io/state_dict.hpp"
#include "eigenformer/nn/bert_pretrained.hpp"
#include "eigenformer/ops/loss.hpp"
#include "support/test_support.hpp"

using namespace eigenformer;

namespace bert_test {

namespace {

namespace fs = std::filesystem;

fs::path hf(const std::string& name) { return fs::path(EIGENFORMER_TEST_DATA_DIR) / "reference" / "hf" / name; }

/// The fixture inputs and expected outputs (tests/reference/make_hf_fixtures.py).
const io::SafetensorsFile& expected() {
  static const io::SafetensorsFile f = io::read_safetensors(hf("bert_expected.safetensors"));
  return f;
}

struct Inputs {
  Tensor<std::int64_t> ids, types;
  Tensor<bool> padding;
};

Inputs inputs() {
  Inputs in;
  in.ids = expected().get<std::int64_t>("input_ids");
  in.types = expected().get<std::int64_t>("token_type_ids");
  in.padding = nn::padding_mask_from_attention_mask(expected().get<std::int64_t>("attention_mask"));
  return in;
}

/// The largest |a - b| / (atol + rtol |b|) over the elements; <= 1 passes.
template <typename T>
double worst(const Tensor<T>& got, const Tensor<double>& want, double atol, double rtol) {
  EXPECT_EQ(got.shape(), want.shape());
  double w = 0;
  for (Index i = 0; i < want.numel() && i < got.numel(); ++i)
    w = std::max(w, std::abs(static_cast<double>(got[i]) - want[i]) / (atol + rtol * std::abs(want[i])));
  return w;
}

/// A config of the given sizes (vocabulary, width, layers, heads, feed-forward width, positions), dropout off.
nn::BertConfig sized(Index vocab, Index hidden, Index layers, Index heads, Index intermediate, Index positions) {
  nn::BertConfig c;
  c.vocab_size = vocab;
  c.hidden_size = hidden;
  c.num_hidden_layers = layers;
  c.num_attention_heads = heads;
  c.intermediate_size = intermediate;
  c.max_position_embeddings = positions;
  c.hidden_dropout_prob = c.attention_probs_dropout_prob = 0;
  return c;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

/// Every real (not padding) position's row of a (B, T, C) tensor and of the expected one agree.
template <typename T>
double worst_real_positions(const Tensor<T>& got, const Tensor<double>& want, const Tensor<bool>& padding, double atol,
                            double rtol) {
  const Index B = want.size(0), Tn = want.size(1), C = want.size(2);
  double w = 0;
  for (Index b = 0; b < B; ++b)
    for (Index t = 0; t < Tn; ++t) {
      if (padding.defined() && padding(b, t)) continue;
      for (Index c = 0; c < C; ++c) {
        const double e = want[(b * Tn + t) * C + c];
        w = std::max(w, std::abs(static_cast<double>(got[(b * Tn + t) * C + c]) - e) / (atol + rtol * std::abs(e)));
      }
    }
  return w;
}

}  // namespace

TEST(Bert, MaskedLMMatchesTheReferenceHiddenStatesLogitsLossAndGradients) {
  io::PretrainedReport report;
  auto model = io::from_pretrained<nn::BertForMaskedLM<double>>(hf("bert-mlm"), &report);
  EXPECT_TRUE(report.missing.empty()) << report.to_string();
  EXPECT_TRUE(report.unexpected.empty()) << report.to_string();
  model.eval();
  const Inputs in = inputs();
  const auto out = model.bert.forward(in.ids, in.padding, in.types, true);
  ASSERT_EQ(out.hidden_states.size(), 3u);
  for (std::size_t k = 0; k < 3; ++k)
    EXPECT_LE(worst(out.hidden_states[k].value(), expected().get<double>("bert.hidden_states." + std::to_string(k)),
                    1e-10, 1e-10),
              1.0)
        << "hidden state " << k;
  const Var<double> logits = model.forward(in.ids, in.padding, in.types);
  EXPECT_LE(worst(logits.value(), expected().get<double>("mlm.logits"), 1e-10, 1e-10), 1.0);
  const Var<double> loss = cross_entropy(reshape(logits, {-1, model.config().vocab_size}),
                                         expected().get<std::int64_t>("mlm_labels").reshape({-1}));
  EXPECT_NEAR(loss.item(), expected().get<double>("mlm.loss").item(), 1e-10);
  loss.backward();
  Index compared = 0;
  for (auto& [name, p] : model.named_parameters()) {
    EXPECT_LE(worst(p.grad(), expected().get<double>("mlm.grad." + name), 1e-10, 1e-6), 1.0) << name;
    ++compared;
  }
  EXPECT_EQ(compared, 42);  // the tied decoder weight once, as bert.embeddings.word_embeddings.weight
  // Only the masked positions, as masked-LM training asks for them: the same rows of the logits.
  const Tensor<std::int64_t> positions = Tensor<std::int64_t>::from({0, 5, 9, 26});
  NoGradGuard no_grad;
  const Var<double> at = model.forward_at(in.ids, in.padding, in.types, positions);
  const Index V = model.config().vocab_size;
  for (Index r = 0; r < 4; ++r)
    for (Index v = 0; v < V; ++v) ASSERT_NEAR(at.value()(r, v), logits.value()[positions[r] * V + v], 1e-12);
}

TEST(Bert, SequenceClassificationMatchesThePoolerLogitsLossAndGradients) {
  auto model = io::from_pretrained<nn::BertForSequenceClassification<double>>(hf("bert-cls"));
  EXPECT_EQ(model.config().labels, (std::vector<std::string>{"negative", "neutral", "positive"}));
  model.eval();
  const Inputs in = inputs();
  EXPECT_LE(worst(model.bert.forward(in.ids, in.padding, in.types).pooler_output.value(),
                  expected().get<double>("bert.pooler_output"), 1e-10, 1e-10),
            1.0);
  const Var<double> logits = model.forward(in.ids, in.padding, in.types);
  EXPECT_LE(worst(logits.value(), expected().get<double>("cls.logits"), 1e-10, 1e-10), 1.0);
  const Var<double> loss = cross_entropy(logits, expected().get<std::int64_t>("cls_labels"));
  EXPECT_NEAR(loss.item(), expected().get<double>("cls.loss").item(), 1e-10);
  loss.backward();
  for (auto& [name, p] : model.named_parameters())
    EXPECT_LE(worst(p.grad(), expected().get<double>("cls.grad." + name), 1e-10, 1e-6), 1.0) << name;
}

TEST(Bert, FloatModelsMatchTheReferenceToFloatTolerances) {
  auto mlm = io::from_pretrained<nn::BertForMaskedLM<float>>(hf("bert-mlm"));
  auto cls = io::from_pretrained<nn::BertForSequenceClassification<float>>(hf("bert-cls"));
  mlm.eval();
  cls.eval();
  const Inputs in = inputs();
  EXPECT_LE(worst(mlm.forward(in.ids, in.padding, in.types).value(), expected().get<double>("mlm.logits"), 1e-5, 1e-5),
            1.0);
  const Var<float> logits = cls.forward(in.ids, in.padding, in.types);
  EXPECT_LE(worst(logits.value(), expected().get<double>("cls.logits"), 1e-5, 1e-5), 1.0);
  cross_entropy(logits, expected().get<std::int64_t>("cls_labels")).backward();
  for (auto& [name, p] : cls.named_parameters())
    EXPECT_LE(worst(p.grad(), expected().get<double>("cls.grad." + name), 1e-5, 1e-4), 1.0) << name;
}

TEST(Bert, EveryCheckpointVariantLoadsTheSameModel) {
  const Inputs in = inputs();
  const Tensor<double> want = expected().get<double>("mlm.logits");
  for (const char* folder : {"bert-mlm", "bert-legacy", "bert-f16", "bert-bf16", "bert-sharded"}) {
    io::PretrainedReport report;
    auto model = io::from_pretrained<nn::BertForMaskedLM<double>>(hf(folder), &report);
    model.eval();
    EXPECT_LE(worst(model.forward(in.ids, in.padding, in.types).value(), want, 1e-10, 1e-10), 1.0) << folder;
    EXPECT_TRUE(report.missing.empty()) << folder << ": " << report.to_string();
    if (std::string(folder) == "bert-legacy") {
      // BertForPreTraining's names with LayerNorm.gamma / beta, the saved position_ids buffer, the pooler and the
      // next-sentence head: transformers reports the last two as unused.
      EXPECT_EQ(report.dropped,
                (std::vector<std::string>{"bert.embeddings.position_ids", "cls.predictions.decoder.weight"}));
      const std::set<std::string> unexpected(report.unexpected.begin(), report.unexpected.end());
      EXPECT_EQ(unexpected, (std::set<std::string>{"bert.pooler.dense.bias", "bert.pooler.dense.weight",
                                                   "cls.seq_relationship.bias", "cls.seq_relationship.weight"}));
    } else {
      EXPECT_TRUE(report.unexpected.empty()) << folder << ": " << report.to_string();
    }
  }
  // A bare BertModel checkpoint (no "bert." prefix) into a classifier: the new head is listed as initialized.
  io::PretrainedReport report;
  auto cls = io::from_pretrained<nn::BertForSequenceClassification<double>>(hf("bert-bare"), &report);
  EXPECT_EQ(report.missing, (std::vector<std::string>{"classifier.weight", "classifier.bias"}));
  EXPECT_TRUE(report.unexpected.empty()) << report.to_string();
  cls.eval();
  EXPECT_LE(worst(cls.bert.forward(in.ids, in.padding, in.types).pooler_output.value(),
                  expected().get<double>("bert.pooler_output"), 1e-10, 1e-10),
            1.0);
  // And a task checkpoint into the bare model: the prefix comes off, the heads are unused.
  auto bare = io::from_pretrained<nn::BertModel<double>>(hf("bert-cls"), &report);
  EXPECT_TRUE(report.missing.empty()) << report.to_string();
  EXPECT_EQ(report.unexpected, (std::vector<std::string>{"classifier.bias", "classifier.weight"}));
  // A masked-LM checkpoint into a classifier with labels of our own.
  auto spam = io::from_pretrained<nn::BertForSequenceClassification<float>>(
      hf("bert-mlm"), &report, [](nn::BertConfig& c) { c.labels = {"ham", "spam"}; });
  EXPECT_EQ(spam.classifier.weight.shape(), (Shape{2, 32}));
  EXPECT_EQ(report.missing, (std::vector<std::string>{"bert.pooler.dense.weight", "bert.pooler.dense.bias",
                                                      "classifier.weight", "classifier.bias"}));
}

TEST(Bert, SavePretrainedWritesWhatTransformersWrites) {
  auto model = io::from_pretrained<nn::BertForMaskedLM<float>>(hf("bert-mlm"));
  const fs::path dir = fs::path(EIGENFORMER_TEST_TMP_DIR) / "bert_save";
  fs::remove_all(dir);
  io::save_pretrained(model, dir);
  // The same tensor names, shapes and dtypes as the file transformers wrote, and the same config keys.
  const io::SafetensorsFile ours = io::read_safetensors(dir / "model.safetensors");
  const io::SafetensorsFile theirs = io::read_safetensors(hf("bert-mlm") / "model.safetensors");
  ASSERT_EQ(ours.tensors().size(), theirs.tensors().size());
  for (const io::TensorInfo& t : theirs.tensors()) {
    ASSERT_TRUE(ours.contains(t.name)) << t.name;
    EXPECT_EQ(ours.info(t.name).shape, t.shape) << t.name;
    EXPECT_EQ(ours.info(t.name).dtype, t.dtype) << t.name;
    EXPECT_EQ(ours.get<float>(t.name).equal(theirs.get<float>(t.name)), true) << t.name;
  }
  EXPECT_EQ(ours.metadata().at("format"), "pt");
  nlohmann::json mine = nlohmann::json::parse(slurp(dir / "config.json"));
  nlohmann::json reference = nlohmann::json::parse(slurp(hf("bert-mlm") / "config.json"));
  reference.erase("transformers_version");
  EXPECT_EQ(mine, reference);
  // F16 and a sharded save load back to the same model.
  io::PretrainedSaveOptions half;
  half.dtype = io::DType::F16;
  half.max_shard_bytes = 40000;
  io::save_pretrained(model, dir / "half", half);
  EXPECT_TRUE(fs::exists(dir / "half" / "model.safetensors.index.json"));
  EXPECT_FALSE(fs::exists(dir / "half" / "model.safetensors"));
  auto back = io::from_pretrained<nn::BertForMaskedLM<float>>(dir / "half");  // the fixture's values are exact in F16
  const auto a = model.named_parameters(), b = back.named_parameters();
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(a[i].second.value().equal(b[i].second.value())) << a[i].first;
}

TEST(Bert, BadFoldersThrowNamingTheFileAndEveryProblemAndChangeNothing) {
  const fs::path dir = fs::path(EIGENFORMER_TEST_TMP_DIR) / "bert_bad";
  fs::remove_all(dir);
  fs::create_directories(dir);
  EXPECT_THROW_WITH(io::from_pretrained<nn::BertModel<float>>(dir), IoError, {"config.json", "cannot open"});
  fs::copy_file(hf("bert-mlm") / "config.json", dir / "config.json");
  EXPECT_THROW_WITH(io::from_pretrained<nn::BertModel<float>>(dir), IoError,
                    {"neither model.safetensors nor model.safetensors.index.json"});
  // A config that contradicts the weights: every mismatch named, the model left as it was.
  nlohmann::json config = nlohmann::json::parse(slurp(hf("bert-mlm") / "config.json"));
  config["intermediate_size"] = 40;
  std::ofstream(dir / "config.json") << config.dump();
  fs::copy_file(hf("bert-mlm") / "model.safetensors", dir / "model.safetensors");
  EXPECT_THROW_WITH(io::from_pretrained<nn::BertForMaskedLM<float>>(dir), IoError,
                    {"does not fit the model", "intermediate.dense.weight' is (37, 32)",
                     "bert.encoder.layer.1.output.dense.weight' is (32, 37)", "nothing was loaded"});
  nn::BertConfig c = nn::detail::bert_config_from_hf(io::PretrainedConfig(config, "config.json", "bert_config_from_hf"));
  nn::BertForMaskedLM<float> model(c);
  const Tensor<float> before = model.bert.embeddings.word_embeddings.weight.value().clone();
  EXPECT_THROW(io::load_pretrained_weights(model, io::PretrainedWeights::open(dir), io::PretrainedFormat<nn::BertForMaskedLM<float>>::names(), dir.string()), IoError);
  EXPECT_TRUE(model.bert.embeddings.word_embeddings.weight.value().equal(before));
  // Another model type, a value of the wrong type, an unsupported variant.
  config = nlohmann::json::parse(slurp(hf("bert-mlm") / "config.json"));
  config["model_type"] = "gpt2";
  std::ofstream(dir / "config.json") << config.dump();
  EXPECT_THROW_WITH(io::from_pretrained<nn::BertModel<float>>(dir), IoError,
                    {"config.json", "model_type is \"gpt2\"", "expected \"bert\""});
  config["model_type"] = "bert";
  config["hidden_size"] = "32";
  std::ofstream(dir / "config.json") << config.dump();
  EXPECT_THROW_WITH(io::from_pretrained<nn::BertModel<float>>(dir), IoError,
                    {"from_pretrained: ", "config.json: \"hidden_size\" is \"32\"", "an integer"});
  config["hidden_size"] = 32;
  config["hidden_act"] = "mish";
  std::ofstream(dir / "config.json") << config.dump();
  EXPECT_THROW_WITH(io::from_pretrained<nn::BertModel<float>>(dir), IoError,
                    {"from_pretrained: ", "config.json: \"hidden_act\" is \"mish\""});
  // A truncated weights file.
  config["hidden_act"] = "gelu";
  std::ofstream(dir / "config.json") << config.dump();
  const std::string weights = slurp(hf("bert-mlm") / "model.safetensors");
  std::ofstream(dir / "model.safetensors", std::ios::binary | std::ios::trunc) << weights.substr(0, weights.size() - 100);
  EXPECT_THROW_WITH(io::from_pretrained<nn::BertModel<float>>(dir), IoError, {"model.safetensors", "truncated"});
  // A shard the index lists but the folder lacks.
  fs::remove(dir / "model.safetensors");
  fs::copy_file(hf("bert-sharded") / "model.safetensors.index.json", dir / "model.safetensors.index.json");
  EXPECT_THROW_WITH(io::from_pretrained<nn::BertModel<float>>(dir), IoError, {"shard", "is missing"});
}

TEST(Bert, InputsAreChecked) {
  nn::BertConfig c = sized(20, 8, 1, 2, 16, 6);
  nn::BertModel<float> model(c);
  EXPECT_THROW_WITH(model.forward(Tensor<std::int64_t>::from({1, 20}, {1, 2})), ValueError,
                    {"BertModel::forward", "token id 20", "(0, 1)", "vocab_size = 20"});
  EXPECT_THROW_WITH(model.forward(Tensor<std::int64_t>::zeros({1, 7})), ValueError, {"sequence length 7", "6"});
  EXPECT_THROW_WITH(model.forward(Tensor<std::int64_t>::zeros({1, 2}), {}, Tensor<std::int64_t>::from({0, 2}, {1, 2})),
                    ValueError, {"token type 2", "type_vocab_size = 2"});
  EXPECT_THROW_WITH(nn::padding_mask_from_attention_mask(Tensor<std::int64_t>::from({1, 2}, {1, 2})), ValueError,
                    {"element 1 is 2"});
  c.num_attention_heads = 3;
  EXPECT_THROW_WITH(nn::BertModel<float>{c}, ValueError, {"hidden_size 8", "num_attention_heads 3"});
}

TEST(Bert, GradcheckOfATinyModelWithDropoutOff) {
  nn::BertConfig c = sized(7, 4, 1, 2, 5, 5);
  c.labels = {"a", "b", "c"};
  c.initializer_range = 0.5;
  nn::BertForSequenceClassification<double> model(c);
  const Tensor<std::int64_t> ids = Tensor<std::int64_t>::from({1, 2, 3, 4, 5, 6}, {2, 3});
  const Tensor<bool> pad = Tensor<bool>::from({false, false, true, false, false, false}, {2, 3});
  const Tensor<std::int64_t> types = Tensor<std::int64_t>::from({0, 0, 1, 0, 1, 1}, {2, 3});
  std::vector<Var<double>> params;
  for (auto& [name, p] : model.named_parameters()) params.push_back(p);
  EXPECT_GRADCHECK([&](const std::vector<Var<double>>&) { return model.forward(ids, pad, types); }, params);
}

TEST(Bert, MediumMatmulPrecisionKeepsTheHiddenStatesNearFloat) {
  nn::BertModel<float> model(sized(300, 128, 2, 4, 256, 64));
  model.eval();
  Generator gen(11);
  Tensor<std::int64_t> ids = Tensor<std::int64_t>::empty({4, 32});
  for (Index i = 0; i < ids.numel(); ++i) ids[i] = static_cast<std::int64_t>(gen() % 300);
  const Tensor<float> full = model.forward(ids).last_hidden_state.value();
  const Tensor<float> medium = [&] {
    MatmulPrecisionGuard guard("medium");
    return model.forward(ids).last_hidden_state.value();
  }();
  double worst_diff = 0, mean_diff = 0;
  for (Index i = 0; i < full.numel(); ++i) {
    const double d = std::abs(static_cast<double>(medium[i]) - static_cast<double>(full[i]));
    worst_diff = std::max(worst_diff, d);
    mean_diff += d / static_cast<double>(full.numel());
  }
  if (!detail::bf16_kernel_available()) {
    EXPECT_EQ(worst_diff, 0.0);  // "medium" computes as "highest" without AVX512_BF16
    return;
  }
  // LayerNorm outputs of about unit scale; bf16 operands carry 8 significant bits (relative error 2^-9); the
  // bounds are about ten times what docs/benchmarks.md reports.
  EXPECT_GT(worst_diff, 0.0);
  EXPECT_LE(worst_diff, 1e-2);
  EXPECT_LE(mean_diff, 1e-3);
}

}  // namespace bert_test
