#include <thread>

#include "eigenformer/nn/encoder_classifier.hpp"
#include "eigenformer/ops/loss.hpp"
#include "support/test_support.hpp"

using namespace eigenformer;

namespace encoder_test {

using eigenformer::testing::random_var;
using Inputs = std::vector<Var<double>>;

namespace {

template <typename M>
Inputs parameters_of(M& m) {
  Inputs out;
  for (auto& [n, p] : m.named_parameters()) out.push_back(p);
  return out;
}

nn::EncoderClassifier<float>::Options seed_options() {
  return {};  // the defaults are the seed demo's MiniTransformerClassifier
}

}  // namespace

TEST(EncoderBlock, PostNormAndPreNormPassGradcheck) {
  for (bool norm_first : {false, true})
    for (auto act : {nn::Activation::relu, nn::Activation::gelu}) {
      Generator gen(1);
      nn::EncoderBlock<double> block({4, 2, 6, 0.0, act, 1e-5, true, norm_first}, gen);
      Var<double> x = random_var({2, 3, 4}, 2);
      AttentionMask<double> m;
      m.key_padding = Tensor<bool>::from({false, false, false, false, false, true}, {2, 3});
      Inputs in = parameters_of(block);
      in.push_back(x);
      EXPECT_GRADCHECK([&](const Inputs&) { return block.forward(x, m); }, in);
    }
}

TEST(EncoderBlock, FusedResidualProjectionsEqualTheSublayersPlusAdd) {
  // Without dropout the block adds each residual inside the sublayer's last GEMM (forward_add); the result and every
  // gradient must be those of add(x, sublayer(x)) written out with the same modules.
  for (bool norm_first : {false, true}) {
    Generator gen(5);
    nn::EncoderBlock<float> block({32, 4, 64, 0.0f, nn::Activation::relu, 1e-5f, true, norm_first}, gen);
    Var<float> x(eigenformer::testing::random_tensor({3, 20, 32}, 6), true);
    const Tensor<float> dy = eigenformer::testing::random_tensor({3, 20, 32}, 7);
    AttentionMask<float> m;
    m.key_padding = Tensor<bool>::zeros({3, 20});
    m.key_padding(2, 19) = true;
    Var<float> fused = block.forward(x, m);
    fused.backward(dy);
    std::vector<Tensor<float>> grads{x.grad().clone()};
    x.zero_grad();
    for (auto& [name, p] : block.named_parameters()) {
      grads.push_back(p.grad().clone());
      p.zero_grad();
    }
    auto sa = [&](const Var<float>& h) { return block.self_attn.forward(h, m).output; };
    auto ff = [&](const Var<float>& h) { return block.ff.forward(h); };
    Var<float> ref;
    if (norm_first) {
      const Var<float> h = add(x, sa(block.norm1.forward(x)));
      ref = add(h, ff(block.norm2.forward(h)));
    } else {
      const Var<float> h = block.norm1.forward(add(x, sa(x)));
      ref = block.norm2.forward(add(h, ff(h)));
    }
    ref.backward(dy);
    EXPECT_TRUE(fused.value().allclose(ref.value(), 1e-5, 1e-6)) << "norm_first " << norm_first;
    EXPECT_TRUE(grads[0].allclose(x.grad(), 1e-4, 1e-5));
    std::size_t i = 1;
    for (auto& [name, p] : block.named_parameters())
      EXPECT_TRUE(grads[i++].allclose(p.grad(), 1e-4, 1e-5)) << name << ", norm_first " << norm_first;
  }
  Generator gen(8);
  nn::EncoderBlock<float> block({32, 4, 64, 0.0f}, gen);
  const Var<float> x(Tensor<float>::zeros({2, 5, 32})), wrong(Tensor<float>::zeros({2, 4, 32}));
  EXPECT_THROW_WITH(block.self_attn.forward_add(x, wrong), ShapeError,
                    {"MultiHeadAttention::forward_add", "residual", "(2, 4, 32)", "(2, 5, 32)"});
  EXPECT_THROW_WITH(block.ff.forward_add(x, wrong), ShapeError,
                    {"FeedForward::forward_add", "residual", "(2, 4, 32)", "(2, 5, 32)"});
  EXPECT_THROW_WITH(block.ff.forward_add(x, Var<float>()), ValueError, {"FeedForward::forward_add", "undefined"});
}

TEST(EncoderBlock, BatchFirstFalseTakesTimeMajorInput) {
  Generator g1(3), g2(3);
  nn::EncoderBlock<double> bf({4, 2, 8, 0.0}, g1);
  auto o = bf.options;
  o.batch_first = false;
  nn::EncoderBlock<double> tf(o, g2);
  Var<double> x = random_var({2, 5, 4}, 4);
  const Tensor<double> a = bf.forward(x).value();
  const Tensor<double> b = transpose(tf.forward(transpose(x, 0, 1)), 0, 1).value();
  EXPECT_TRUE(a.allclose(b, 1e-12, 1e-12));
}

TEST(EncoderBlock, ParameterNamesFollowTransformerEncoderLayer) {
  Generator gen(5);
  nn::EncoderBlock<float> block({8, 2, 16}, gen);
  std::vector<std::string> names;
  for (auto& [n, p] : block.named_parameters()) names.push_back(n);
  EXPECT_EQ(names, (std::vector<std::string>{"self_attn.in_proj_weight", "self_attn.in_proj_bias",
                                             "self_attn.out_proj.weight", "self_attn.out_proj.bias", "linear1.weight",
                                             "linear1.bias", "linear2.weight", "linear2.bias", "norm1.weight",
                                             "norm1.bias", "norm2.weight", "norm2.bias"}));
}

TEST(EncoderClassifier, SeedConfigurationHasPyTorchNamesAndCount) {
  nn::EncoderClassifier<float> model(seed_options());
  auto params = model.named_parameters();
  ASSERT_EQ(params.size(), 1u + 2 * 12 + 4);
  EXPECT_EQ(params[0].first, "embedding.weight");
  EXPECT_EQ(params[1].first, "encoder.layers.0.self_attn.in_proj_weight");
  EXPECT_EQ(params[5].first, "encoder.layers.0.linear1.weight");
  EXPECT_EQ(params[24].first, "encoder.layers.1.norm2.bias");
  EXPECT_EQ(params[25].first, "classifier.0.weight");
  EXPECT_EQ(params[28].first, "classifier.1.bias");
  // The seed's MiniTransformerClassifier in PyTorch: sum(p.numel() for p in model.parameters()) == 18818.
  EXPECT_EQ(model.parameter_count(), 18818);
}

TEST(EncoderClassifier, VariantsPassGradcheck) {
  nn::EncoderClassifier<double>::Options o;
  o.vocab_size = 9;
  o.max_len = 6;
  o.encoder.layer.d_model = 4;
  o.encoder.layer.nhead = 2;
  o.encoder.num_layers = 1;
  o.encoder.layer.dim_feedforward = 5;
  o.encoder.layer.dropout = 0.0;
  o.head.num_classes = 3;
  const Tensor<std::int64_t> ids = Tensor<std::int64_t>::from({1, 2, 3, 4, 5, 6, 0, 0}, {2, 4});
  const Tensor<bool> pad = Tensor<bool>::from({false, false, false, false, false, false, true, true}, {2, 4});
  const Tensor<std::int64_t> labels = Tensor<std::int64_t>::from({2, 0}, {2});
  for (int variant = 0; variant < 3; ++variant) {
    auto v = o;
    if (variant == 1) {
      v.positional = nn::PositionalKind::learned;
      v.head.pooling = nn::Pooling::mean;
      v.encoder.layer.norm_first = true;
      v.encoder.final_norm = true;
      v.encoder.layer.activation = nn::Activation::gelu;
    } else if (variant == 2) {
      v.positional = nn::PositionalKind::sinusoidal;
      v.head.pooler = true;
    }
    nn::EncoderClassifier<double> model(v);
    EXPECT_GRADCHECK([&](const Inputs&) { return cross_entropy(model.forward(ids, pad), labels); },
                     parameters_of(model));
  }
}

TEST(EncoderClassifier, OptionsNestTheirPartsAndTheHeadTakesTheEncodersWidth) {
  nn::EncoderClassifier<float>::Options o;
  o.encoder.layer.d_model = 16;
  o.encoder.layer.nhead = 2;
  nn::EncoderClassifier<float> model(o);
  EXPECT_EQ(model.options.head.d_model, 16);
  EXPECT_EQ(model.head.fc.weight.shape(), (Shape{2, 16}));
  o.head.d_model = 8;
  EXPECT_THROW_WITH(nn::EncoderClassifier<float>{o}, ValueError, {"head.d_model is 8", "encoder's d_model 16"});
  o.head.d_model = 0;
  o.encoder.layer.batch_first = false;
  EXPECT_THROW_WITH(nn::EncoderClassifier<float>{o}, ValueError, {"batch_first is false"});
}

TEST(EncoderClassifier, BadIdsAndLengthsThrowNamingIdPositionAndLimit) {
  auto o = seed_options();
  o.max_len = 4;
  nn::EncoderClassifier<float> model(o);
  EXPECT_THROW_WITH(model.forward(Tensor<std::int64_t>::from({1, 2, 50, 3}, {2, 2})), ValueError,
                    {"token id 50", "(1, 0)", "vocab_size = 50"});
  EXPECT_THROW_WITH(model.forward(Tensor<std::int64_t>::from({1, -2}, {1, 2})), ValueError, {"token id -2", "(0, 1)"});
  EXPECT_THROW_WITH(model.forward(Tensor<std::int64_t>::zeros({1, 5})), ValueError, {"sequence length 5", "max_len 4"});
  EXPECT_THROW_WITH(model.forward(Tensor<std::int64_t>::zeros({1, 3}), Tensor<bool>::zeros({1, 4})), ShapeError,
                    {"padding_mask", "(1, 4)", "(1, 3)"});
}

TEST(EncoderClassifier, DropoutOnlyInTrainingAndFreezingByPrefix) {
  nn::EncoderClassifier<float> model(seed_options());
  const Tensor<std::int64_t> ids = Tensor<std::int64_t>::from({1, 5, 2, 9, 3, 7, 8, 0}, {2, 4});
  model.eval();
  NoGradGuard no_grad;
  const Tensor<float> a = model.forward(ids).value(), b = model.forward(ids).value();
  EXPECT_TRUE(a.equal(b));
  model.train();
  EXPECT_FALSE(model.forward(ids).value().allclose(a, 1e-6, 1e-6));
  EXPECT_EQ(model.freeze("encoder."), 24);
  EXPECT_EQ(model.trainable_parameter_count(), 50 * 32 + 4 * 32 + 2);
}

TEST(EncoderClassifier, EvalForwardIsSafeFromSeveralThreads) {
  auto o = seed_options();
  o.positional = nn::PositionalKind::learned;
  o.max_len = 16;
  nn::EncoderClassifier<float> model(o);
  model.eval();
  Tensor<std::int64_t> ids = Tensor<std::int64_t>::empty({4, 16});
  for (Index i = 0; i < ids.numel(); ++i) ids[i] = (i * 7) % 50;
  Tensor<bool> pad = Tensor<bool>::zeros({4, 16});
  pad(3, 15) = true;
  const Tensor<float> expected = model.forward(ids, pad).value();
  std::vector<Tensor<float>> results(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int rep = 0; rep < 5; ++rep) results[t] = model.forward(ids, pad).value();
    });
  for (auto& th : threads) th.join();
  for (const auto& r : results) EXPECT_TRUE(r.equal(expected));
}

TEST(EncoderClassifier, TrainingBackwardFromSeveralThreadsSumsIntoTheParameters) {
  // Threads each run a training forward and backward on their own batch of one shared model (data-parallel
  // training on threads): every parameter's gradient is the sum of theirs, as when the batches run one after
  // another. Run under ThreadSanitizer by .ci/run.
  auto o = seed_options();
  o.max_len = 8;
  o.encoder.layer.dropout = 0.0f;  // the same masks in both runs
  nn::EncoderClassifier<float> model(o);
  model.train();
  constexpr int kThreads = 4;
  std::vector<Tensor<std::int64_t>> ids, labels;
  for (int t = 0; t < kThreads; ++t) {
    ids.push_back(Tensor<std::int64_t>::empty({2, 8}));
    for (Index i = 0; i < ids.back().numel(); ++i) ids.back()[i] = (i * 7 + t * 13) % 50;
    labels.push_back(Tensor<std::int64_t>::from({t % 2, 1 - t % 2}, {2}));
  }
  auto step = [&](int t) { cross_entropy(model.forward(ids[t]), labels[t]).backward(); };

  for (int t = 0; t < kThreads; ++t) step(t);
  std::vector<Tensor<float>> expected;
  for (auto& [name, p] : model.named_parameters()) expected.push_back(p.grad().clone());
  model.zero_grad();

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(step, t);
  for (auto& th : threads) th.join();
  std::size_t i = 0;
  for (auto& [name, p] : model.named_parameters()) {
    ASSERT_TRUE(p.has_grad()) << name;
    // Four addends in another order: equal up to float rounding.
    EXPECT_TRUE(p.grad().allclose(expected[i++], 1e-5, 1e-7)) << name;
  }

  // As numbered parts of a PartGradients the threads' gradients are added in part order: the same bits on every
  // run, whichever thread finishes first.
  auto parted_run = [&] {
    model.zero_grad();
    PartGradients<float> parts(kThreads);
    std::vector<std::thread> team;
    for (int t = 0; t < kThreads; ++t)
      team.emplace_back([&, t] {
        auto part = parts.part(t);
        step(t);
      });
    for (auto& th : team) th.join();
    parts.finish();
    std::vector<Tensor<float>> grads;
    for (auto& [name, p] : model.named_parameters()) grads.push_back(p.grad().clone());
    return grads;
  };
  const auto first = parted_run();
  for (int run = 0; run < 3; ++run) {
    const auto again = parted_run();
    for (std::size_t k = 0; k < first.size(); ++k) EXPECT_TRUE(again[k].equal(first[k])) << k;
  }

  // With dropout the threads also share each dropout layer's generator (drawn under a lock): every parameter
  // still gets a finite gradient.
  o.encoder.layer.dropout = 0.1f;
  nn::EncoderClassifier<float> dropped(o);
  dropped.train();
  std::vector<std::thread> more;
  for (int t = 0; t < kThreads; ++t)
    more.emplace_back([&, t] { cross_entropy(dropped.forward(ids[t]), labels[t]).backward(); });
  for (auto& th : more) th.join();
  for (auto& [name, p] : dropped.named_parameters()) {
    ASSERT_TRUE(p.has_grad()) << name;
    EXPECT_TRUE(p.grad().array().isFinite().all()) << name;
  }
}

}  // namespace encoder_test
