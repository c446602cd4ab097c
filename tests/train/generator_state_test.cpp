#include "eigenformer/train/generator_state.hpp"

#include "eigenformer/nn/encoder_classifier.hpp"

#include <string>
#include <vector>

#include "support/test_support.hpp"

using namespace eigenformer;
using namespace eigenformer::train;

namespace generator_state_test {

namespace {

using Model = nn::EncoderClassifier<double>;

Model::Options options(Index layers) {
  Model::Options o;
  o.vocab_size = 10;
  o.max_len = 8;
  o.encoder.layer.d_model = 8;
  o.encoder.layer.nhead = 2;
  o.encoder.num_layers = layers;
  o.encoder.layer.dim_feedforward = 16;
  o.encoder.layer.dropout = 0.5;
  o.head.pooling = nn::Pooling::mean;
  o.seed = 3;
  return o;
}

Tensor<double> run(Model& m) {
  const auto ids = Tensor<std::int64_t>::from({1, 2, 3, 4, 5, 6, 7, 8}, {2, 4});
  return m.forward(ids).value().clone();
}

/// A model with a generator of its own, exposed through the member hook.
struct WithMember {
  template <class F>
  void visit_generators(F&& f) {
    f("noise", gen);
  }
  Generator gen{5};
};

struct WithoutGenerators {};

}  // namespace

TEST(GeneratorState, NamesEveryDropoutGeneratorOfAnEncoderClassifier) {
  Model m(options(2));
  std::vector<std::string> names;
  const nlohmann::json states = generator_states(m);  // a JSON object: names in sorted order
  for (auto it = states.begin(); it != states.end(); ++it) names.push_back(it.key());
  EXPECT_EQ(names, (std::vector<std::string>{"encoder.layers.0.dropout", "encoder.layers.0.dropout1",
                                             "encoder.layers.0.dropout2", "encoder.layers.0.self_attn.attention",
                                             "encoder.layers.1.dropout", "encoder.layers.1.dropout1",
                                             "encoder.layers.1.dropout2", "encoder.layers.1.self_attn.attention"}));
}

TEST(GeneratorState, RestoredStatesReplayTheSameDropoutMasks) {
  Model m(options(1));
  m.train();
  run(m);  // advance the generators
  const nlohmann::json saved = nlohmann::json::parse(generator_states(m).dump());
  const Tensor<double> first = run(m);
  const Tensor<double> second = run(m);
  EXPECT_FALSE(first.equal(second));  // the masks differ from call to call...
  restore_generator_states(m, saved);
  EXPECT_TRUE(run(m).equal(first));  // ...and replay after a restore
}

TEST(GeneratorState, MemberHookAndModelsWithoutGenerators) {
  WithMember a;
  const nlohmann::json s = generator_states(a);
  ASSERT_TRUE(s.contains("noise"));
  const auto draw = a.gen();
  a.gen.discard(10);
  restore_generator_states(a, s);
  EXPECT_EQ(a.gen(), draw);

  WithoutGenerators none;
  EXPECT_TRUE(generator_states(none).empty());
  restore_generator_states(none, nlohmann::json::object());
}

TEST(GeneratorState, MismatchedStatesThrowAndChangeNothing) {
  Model m(options(1));
  nlohmann::json s = generator_states(m);
  nlohmann::json missing = s;
  missing.erase("encoder.layers.0.dropout2");
  EXPECT_THROW_WITH(restore_generator_states(m, missing), ValueError,
                    {"restore_generator_states", "no saved state", "encoder.layers.0.dropout2"});
  nlohmann::json extra = s;
  extra["encoder.layers.9.dropout1"] = s["encoder.layers.0.dropout1"];
  EXPECT_THROW_WITH(restore_generator_states(m, extra), ValueError, {"encoder.layers.9.dropout1", "not a generator"});
  nlohmann::json garbage = s;
  garbage["encoder.layers.0.dropout1"] = "not numbers";
  // All-or-nothing: the first generator (restored before the bad one is parsed) keeps its state.
  m.encoder.layers[0].self_attn.attention.gen.discard(3);
  const auto expected = m.encoder.layers[0].self_attn.attention.gen;
  EXPECT_THROW_WITH(restore_generator_states(m, garbage), ValueError, {"encoder.layers.0.dropout1", "does not parse"});
  EXPECT_TRUE(m.encoder.layers[0].self_attn.attention.gen == expected);
  EXPECT_THROW_WITH(restore_generator_states(m, nlohmann::json::array()), ValueError, {"expected a JSON object"});
}

}  // namespace generator_state_test
