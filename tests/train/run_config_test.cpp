#include "eigenformer/train/run_config.hpp"

#include <filesystem>
#include <fstream>
#include <string>

#include "support/test_support.hpp"

using namespace eigenformer;
using namespace eigenformer::train;

namespace run_config_test {

namespace {

namespace fs = std::filesystem;

RunConfig sample() {
  RunConfig c;
  c.model_type = "transformer";
  c.model = {{"d_model", 64}};
  c.labels = {"ham", "spam"};
  c.max_length = 256;
  c.truncation = "head_tail";
  c.head_tokens = 127;
  c.training = {{"lr", 0.001}};
  return c;
}

}  // namespace

TEST(RunFolder, NamesItsFiles) {
  const RunFolder run{"runs/x"};
  EXPECT_EQ(run.config(), fs::path("runs/x/config.json"));
  EXPECT_EQ(run.vocab(), fs::path("runs/x/vocab.txt"));
  EXPECT_EQ(run.model(), fs::path("runs/x/model.safetensors"));
  EXPECT_EQ(run.metrics(), fs::path("runs/x/metrics.csv"));
  EXPECT_EQ(run.trainer_state(), fs::path("runs/x/trainer_state.json"));
}

TEST(RunConfig, SaveLoadRoundTrip) {
  const fs::path p = fs::path(EIGENFORMER_TEST_TMP_DIR) / "run_config_test.json";
  save_run_config(p, sample());
  const RunConfig c = load_run_config(p);
  EXPECT_EQ(c.model_type, "transformer");
  EXPECT_EQ(c.model, sample().model);
  EXPECT_EQ(c.labels, sample().labels);
  EXPECT_EQ(c.max_length, 256);
  EXPECT_EQ(c.truncation, "head_tail");
  EXPECT_EQ(c.head_tokens, 127);
  EXPECT_EQ(c.training, sample().training);
}

TEST(RunConfig, BadFieldsThrowNamingTheField) {
  nlohmann::json j = run_config_to_json(sample());
  j.erase("labels");
  EXPECT_THROW_WITH(run_config_from_json(j, "cfg.json"), ValueError, {"cfg.json", "no field \"labels\""});
  j = run_config_to_json(sample());
  j["labels"] = nlohmann::json::array();
  EXPECT_THROW_WITH(run_config_from_json(j), ValueError, {"\"labels\"", "non-empty array of strings"});
  j = run_config_to_json(sample());
  j["truncation"] = "middle";
  EXPECT_THROW_WITH(run_config_from_json(j), ValueError, {"\"truncation\"", "\"middle\"", "head_tail"});
  j = run_config_to_json(sample());
  j["max_length"] = -3;
  EXPECT_THROW_WITH(run_config_from_json(j), ValueError, {"\"max_length\"", "-3", ">= 0"});
  j = run_config_to_json(sample());
  j["model"] = 5;
  EXPECT_THROW_WITH(run_config_from_json(j), ValueError, {"\"model\"", "an object"});
  EXPECT_THROW_WITH(run_config_from_json(nlohmann::json::array()), ValueError, {"no field \"model_type\""});
}

TEST(RunConfig, LoadErrorsAreIoErrors) {
  const fs::path p = fs::path(EIGENFORMER_TEST_TMP_DIR) / "run_config_test_bad.json";
  std::ofstream(p) << "{not json";
  EXPECT_THROW_WITH(load_run_config(p), IoError, {"load_run_config", "not valid JSON"});
  EXPECT_THROW_WITH(load_run_config(fs::path(EIGENFORMER_TEST_TMP_DIR) / "missing.json"), IoError,
                    {"load_run_config", "cannot open"});
}

TEST(EncoderClassifierConfig, RoundTripsEveryOption) {
  nn::EncoderClassifier<float>::Options o;
  o.vocab_size = 123;
  o.max_len = 77;
  o.d_model = 48;
  o.nhead = 3;
  o.num_layers = 5;
  o.dim_feedforward = 96;
  o.dropout = 0.25f;
  o.activation = nn::Activation::gelu;
  o.layer_norm_eps = 1e-6f;
  o.norm_first = true;
  o.final_norm = true;
  o.positional = nn::PositionalKind::sinusoidal;
  o.pooling = nn::Pooling::mean;
  o.pooler = true;
  o.num_classes = 4;
  o.padding_idx = 0;
  o.seed = 99;
  const nlohmann::json j = nlohmann::json::parse(encoder_classifier_config<float>(o).dump());
  EXPECT_EQ(j.at("activation"), "gelu");
  EXPECT_EQ(j.at("positional"), "sinusoidal");
  EXPECT_EQ(j.at("dropout").get<double>(), 0.25);
  EXPECT_EQ(j.at("layer_norm_eps").get<double>(), 1e-6);  // the decimal, not float(1e-6) widened
  const auto b = encoder_classifier_options<float>(j);
  EXPECT_EQ(b.vocab_size, 123);
  EXPECT_EQ(b.max_len, 77);
  EXPECT_EQ(b.d_model, 48);
  EXPECT_EQ(b.nhead, 3);
  EXPECT_EQ(b.num_layers, 5);
  EXPECT_EQ(b.dim_feedforward, 96);
  EXPECT_EQ(b.dropout, 0.25f);
  EXPECT_EQ(b.activation, nn::Activation::gelu);
  EXPECT_EQ(b.layer_norm_eps, 1e-6f);
  EXPECT_TRUE(b.norm_first);
  EXPECT_TRUE(b.final_norm);
  EXPECT_EQ(b.positional, nn::PositionalKind::sinusoidal);
  EXPECT_EQ(b.pooling, nn::Pooling::mean);
  EXPECT_TRUE(b.pooler);
  EXPECT_EQ(b.num_classes, 4);
  EXPECT_EQ(b.padding_idx, 0);
  EXPECT_EQ(b.seed, 99u);
}

TEST(EncoderClassifierConfig, MissingFieldsKeepDefaultsBadOnesThrow) {
  const auto d = encoder_classifier_options<float>(nlohmann::json{{"d_model", 8}});
  EXPECT_EQ(d.d_model, 8);
  EXPECT_EQ(d.nhead, nn::EncoderClassifier<float>::Options().nhead);
  EXPECT_THROW_WITH(encoder_classifier_options<float>(nlohmann::json{{"pooling", "max"}}), ValueError,
                    {"encoder_classifier_options", "\"pooling\"", "\"max\"", "\"cls\", \"mean\""});
  EXPECT_THROW_WITH(encoder_classifier_options<float>(nlohmann::json{{"d_model", "big"}}), ValueError,
                    {"\"d_model\"", "an integer"});
  EXPECT_THROW_WITH(encoder_classifier_options<float>(nlohmann::json{{"norm_first", 1}}), ValueError,
                    {"\"norm_first\"", "a boolean"});
  EXPECT_THROW_WITH(encoder_classifier_options<float>(nlohmann::json{{"seed", -1}}), ValueError,
                    {"\"seed\"", "an integer >= 0"});
  EXPECT_THROW_WITH(encoder_classifier_options<float>(nlohmann::json::array()), ValueError,
                    {"encoder_classifier_options", "expected a JSON object"});
}

}  // namespace run_config_test
