#include "eigenformer/train/run_config.hpp"

#include "eigenformer/nn/encoder_classifier.hpp"

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
  j["labels"] = nlohmann::json::array({"ham", ""});
  EXPECT_THROW_WITH(run_config_from_json(j), ValueError, {"\"labels\"", "array of non-empty strings"});
  j["labels"] = nlohmann::json::array();  // a language model has no labels
  EXPECT_TRUE(run_config_from_json(j).labels.empty());
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

TEST(RunConfig, ModelOptionsComeFromTheModelObject) {
  RunConfig c = sample();
  c.model = io::options_to_json(nn::EncoderClassifier<float>::Options());
  c.model["encoder"]["layer"]["d_model"] = 48;
  EXPECT_EQ(model_options<nn::EncoderClassifier<float>::Options>(c).encoder.layer.d_model, 48);
  c.model["encoder"]["layer"]["d_modle"] = 48;
  EXPECT_THROW_WITH(model_options<nn::EncoderClassifier<float>::Options>(c, "runs/x/config.json"), ValueError,
                    {"runs/x/config.json", "unknown option \"encoder.layer.d_modle\""});
}

}  // namespace run_config_test
