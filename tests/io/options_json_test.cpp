#include "eigenformer/io/options_json.hpp"

#include "eigenformer/nn/encoder_classifier.hpp"
#include "support/test_support.hpp"

using namespace eigenformer;

namespace options_json_test {

TEST(OptionsJson, RoundTripsEveryOptionOfANestedStruct) {
  nn::EncoderClassifier<float>::Options o;
  o.vocab_size = 123;
  o.max_len = 77;
  o.encoder.layer.d_model = 48;
  o.encoder.layer.nhead = 3;
  o.encoder.num_layers = 5;
  o.encoder.layer.dim_feedforward = 96;
  o.encoder.layer.dropout = 0.25f;
  o.encoder.layer.activation = nn::Activation::gelu;
  o.encoder.layer.layer_norm_eps = 1e-6f;
  o.encoder.layer.norm_first = true;
  o.encoder.final_norm = true;
  o.positional = nn::PositionalKind::sinusoidal;
  o.head.pooling = nn::Pooling::mean;
  o.head.pooler = true;
  o.head.num_classes = 4;
  o.padding_idx = 0;
  o.seed = 99;
  const nlohmann::json j = nlohmann::json::parse(io::options_to_json(o).dump());
  EXPECT_EQ(j.at("encoder").at("layer").at("activation"), "gelu");
  EXPECT_EQ(j.at("positional"), "sinusoidal");
  EXPECT_EQ(j.at("encoder").at("layer").at("dropout").get<double>(), 0.25);
  EXPECT_EQ(j.at("encoder").at("layer").at("layer_norm_eps").get<double>(), 1e-6);  // the decimal, not float(1e-6)
  const auto b = io::options_from_json<nn::EncoderClassifier<float>::Options>(j);
  EXPECT_EQ(b.vocab_size, 123);
  EXPECT_EQ(b.max_len, 77);
  EXPECT_EQ(b.encoder.layer.d_model, 48);
  EXPECT_EQ(b.encoder.layer.nhead, 3);
  EXPECT_EQ(b.encoder.num_layers, 5);
  EXPECT_EQ(b.encoder.layer.dim_feedforward, 96);
  EXPECT_EQ(b.encoder.layer.dropout, 0.25f);
  EXPECT_EQ(b.encoder.layer.activation, nn::Activation::gelu);
  EXPECT_EQ(b.encoder.layer.layer_norm_eps, 1e-6f);
  EXPECT_TRUE(b.encoder.layer.norm_first);
  EXPECT_TRUE(b.encoder.final_norm);
  EXPECT_EQ(b.positional, nn::PositionalKind::sinusoidal);
  EXPECT_EQ(b.head.pooling, nn::Pooling::mean);
  EXPECT_TRUE(b.head.pooler);
  EXPECT_EQ(b.head.num_classes, 4);
  EXPECT_EQ(b.padding_idx, 0);
  EXPECT_EQ(b.seed, 99u);
  EXPECT_EQ(io::options_to_json(b), j);
}

TEST(OptionsJson, MissingFieldsKeepDefaultsBadOnesThrowNamingThePath) {
  using O = nn::EncoderClassifier<float>::Options;
  const auto d = io::options_from_json<O>(nlohmann::json{{"encoder", {{"layer", {{"d_model", 8}}}}}});
  EXPECT_EQ(d.encoder.layer.d_model, 8);
  EXPECT_EQ(d.encoder.layer.nhead, O().encoder.layer.nhead);
  EXPECT_EQ(d.encoder.num_layers, 2);  // the classifier's own default, not Encoder's
  EXPECT_THROW_WITH(io::options_from_json<O>(nlohmann::json{{"head", {{"pooling", "max"}}}}, "load"), ValueError,
                    {"load", "\"head.pooling\"", "\"max\"", "\"cls\", \"mean\""});
  EXPECT_THROW_WITH(io::options_from_json<O>(nlohmann::json{{"encoder", {{"layer", {{"d_model", "big"}}}}}}), ValueError,
                    {"\"encoder.layer.d_model\"", "an integer"});
  EXPECT_THROW_WITH(io::options_from_json<O>(nlohmann::json{{"encoder", {{"final_norm", 1}}}}), ValueError,
                    {"\"encoder.final_norm\"", "a boolean"});
  EXPECT_THROW_WITH(io::options_from_json<O>(nlohmann::json{{"seed", -1}}), ValueError, {"\"seed\"", "an integer >= 0"});
  EXPECT_THROW_WITH(io::options_from_json<O>(nlohmann::json{{"encoder", 3}}), ValueError,
                    {"\"encoder\"", "expected a JSON object"});
  EXPECT_THROW_WITH(io::options_from_json<O>(nlohmann::json::array(), "load"), ValueError,
                    {"load", "expected a JSON object"});
  EXPECT_THROW_WITH(io::options_from_json<O>(nlohmann::json{{"dmodel", 3}}), ValueError, {"unknown option \"dmodel\""});
}

TEST(Fields, EnumNamesBothWays) {
  EXPECT_STREQ(enum_name(nn::Activation::gelu_tanh), "gelu_tanh");
  EXPECT_EQ(enum_from_name<nn::Pooling>("mean"), nn::Pooling::mean);
  EXPECT_FALSE(enum_from_name<nn::Pooling>("max").has_value());
  EXPECT_TRUE(has_fields_v<nn::Linear<float>::Options>);
  EXPECT_FALSE(has_fields_v<int>);
}

}  // namespace options_json_test
