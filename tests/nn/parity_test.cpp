// Whole-model parity with PyTorch: the fixtures in tests/reference/ were written by make_fixtures.py with
// Debian's python3-torch; here the same models run in eigenformer from the same weights and inputs.
#include <cmath>
#include <sstream>

#include "eigenformer/io/safetensors.hpp"
#include "eigenformer/nn/encoder_classifier.hpp"
#include "eigenformer/ops/loss.hpp"
#include "eigenformer/optim/adam.hpp"
#include "support/test_support.hpp"

using namespace eigenformer;

namespace parity_test {

namespace {

std::string fixture(const std::string& name) { return std::string(EIGENFORMER_TEST_DATA_DIR) + "/reference/" + name; }

/// Fails naming the tensor and its worst element when |got - want| > atol + rtol * |want| anywhere.
void expect_close(const std::string& what, const Tensor<float>& got, const Tensor<float>& want, double rtol,
                  double atol) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  Index worst = -1;
  double worst_excess = 0;
  for (Index i = 0; i < got.numel(); ++i) {
    const double g = got[i], w = want[i];
    const double excess = std::abs(g - w) - (atol + rtol * std::abs(w));
    if (!(excess <= worst_excess) || std::isnan(g)) {
      worst_excess = std::isnan(g) ? INFINITY : excess;
      worst = i;
    }
  }
  if (worst >= 0)
    ADD_FAILURE() << what << " differs from PyTorch: worst element " << worst << " of " << to_string(got.shape())
                  << " is " << got[worst] << ", PyTorch has " << want[worst] << " (rtol " << rtol << ", atol " << atol
                  << ")";
}

/// Builds the classifier that a fixture's config describes and loads its init.* weights.
nn::EncoderClassifier<float> model_from(const io::SafetensorsFile& f) {
  const std::string cfg = f.metadata().at("config");
  auto has = [&](const std::string& s) { return cfg.find(s) != std::string::npos; };
  auto number = [&](const std::string& key) {
    const std::size_t at = cfg.find("\"" + key + "\":");
    return std::stod(cfg.substr(at + key.size() + 3));
  };
  nn::EncoderClassifier<float>::Options o;
  o.vocab_size = static_cast<Index>(number("vocab_size"));
  o.encoder.layer.d_model = static_cast<Index>(number("d_model"));
  o.encoder.layer.nhead = static_cast<Index>(number("nhead"));
  o.encoder.num_layers = static_cast<Index>(number("num_layers"));
  o.encoder.layer.dim_feedforward = static_cast<Index>(number("dim_feedforward"));
  o.head.num_classes = static_cast<Index>(number("num_classes"));
  o.encoder.layer.dropout = 0.0f;
  o.encoder.layer.activation = has("\"activation\":\"gelu\"") ? nn::Activation::gelu : nn::Activation::relu;
  o.encoder.layer.norm_first = has("\"norm_first\":true");
  o.encoder.final_norm = o.encoder.layer.norm_first;  // the variant fixture pairs pre-norm with a final LayerNorm
  o.head.pooling = has("\"pooling\":\"mean\"") ? nn::Pooling::mean : nn::Pooling::cls;
  if (has("\"positional\":\"learned\"")) {
    o.positional = nn::PositionalKind::learned;
    o.max_len = static_cast<Index>(number("max_len"));
  }
  nn::EncoderClassifier<float> model(o);
  model.visit_parameters([&](const std::string& name, Var<float>& p) { p.value() = f.get<float>("init." + name); });
  return model;
}

void check_model_fixture(const std::string& file) {
  const io::SafetensorsFile f = io::read_safetensors(fixture(file));
  nn::EncoderClassifier<float> model = model_from(f);
  const Tensor<std::int64_t> ids = f.get<std::int64_t>("input_ids");
  Tensor<bool> mask;
  for (const auto& t : f.tensors())
    if (t.name == "padding_mask") mask = f.get<bool>("padding_mask");
  const Tensor<std::int64_t> labels = f.get<std::int64_t>("labels");

  Var<float> logits = model.forward(ids, mask);
  Var<float> loss = cross_entropy(logits, labels);
  expect_close(file + " logits", logits.value(), f.get<float>("logits"), 0, 1e-5);
  expect_close(file + " loss", loss.value().reshape({1}), f.get<float>("loss"), 0, 1e-5);
  loss.backward();
  for (auto& [name, p] : model.named_parameters())
    expect_close(file + " grad of " + name, p.grad(), f.get<float>("grad." + name), 1e-4, 1e-6);

  for (const std::string run : {"adam", "adamw"}) {
    nn::EncoderClassifier<float> m = model_from(f);
    std::vector<float> losses;
    auto train = [&](auto& opt) {
      for (int step = 0; step < 5; ++step) {
        Var<float> l = cross_entropy(m.forward(ids, mask), labels);
        opt.zero_grad();
        l.backward();
        opt.step();
        losses.push_back(l.item());
      }
    };
    if (run == "adam") {
      optim::Adam<float> opt(m.named_parameters());
      train(opt);
    } else {
      optim::AdamW<float> opt(m.named_parameters());
      train(opt);
    }
    expect_close(file + " " + run + " losses", Tensor<float>::from(losses), f.get<float>(run + ".losses"), 0, 1e-5);
    for (auto& [name, p] : m.named_parameters()) {
      const std::string what = file + " " + run + " parameter " + name + " after 5 steps";
      const Tensor<float> want = f.get<float>(run + ".final." + name);
      if (name.size() > 12 && name.compare(name.size() - 12, 12, "in_proj_bias") == 0) {
        // The key bias adds q . b_k to every score of a query's row, which softmax ignores: its exact gradient is
        // zero, and both frameworks compute rounding noise (~1e-10) there. Adam normalizes that noise into steps
        // of up to lr in either direction, so the key block can only be bounded by 5 steps of lr = 1e-3; the query
        // and value blocks must match tightly.
        const Index C = p.numel() / 3;
        const auto block = [](const Tensor<float>& t, Index from, Index n) {
          return Tensor<float>::from(std::vector<float>(t.data() + from, t.data() + from + n));
        };
        expect_close(what + " (query block)", block(p.value(), 0, C), block(want, 0, C), 1e-4, 1e-5);
        expect_close(what + " (key block)", block(p.value(), C, C), block(want, C, C), 0, 5e-3);
        expect_close(what + " (value block)", block(p.value(), 2 * C, C), block(want, 2 * C, C), 1e-4, 1e-5);
      } else {
        expect_close(what, p.value(), want, 1e-4, 1e-5);
      }
    }
  }
}

}  // namespace

TEST(PyTorchParity, SeedModelLogitsLossGradientsAndOptimizerSteps) { check_model_fixture("seed_model.safetensors"); }

TEST(PyTorchParity, PreNormGeluLearnedPositionsPaddingMeanPooling) { check_model_fixture("variant_model.safetensors"); }

TEST(PyTorchParity, MultiheadAttentionPaddedAndCausal) {
  const io::SafetensorsFile f = io::read_safetensors(fixture("mha.safetensors"));
  for (const std::string c : {"padded", "causal"}) {
    Generator gen(0);
    nn::MultiHeadAttention<float> mha({12, 3}, gen);
    for (auto& [name, p] : mha.named_parameters()) p.value() = f.get<float>(name);
    Var<float> x(f.get<float>("x"), true);
    AttentionMask<float> mask;
    if (c == "padded") mask.key_padding = f.get<bool>("key_padding_mask");
    else mask.causal = true;
    auto r = mha.forward(x, mask, true);
    expect_close(c + ".output", r.output.value(), f.get<float>(c + ".output"), 0, 1e-5);
    expect_close(c + ".attn_weights", r.attn_weights, f.get<float>(c + ".attn_weights"), 0, 1e-6);
    Var<float> up(f.get<float>("upstream"));
    r.output.backward(up.value());
    expect_close(c + ".grad.x", x.grad(), f.get<float>(c + ".grad.x"), 1e-4, 1e-6);
    for (auto& [name, p] : mha.named_parameters())
      expect_close(c + ".grad." + name, p.grad(), f.get<float>(c + ".grad." + name), 1e-4, 1e-6);
  }
}

TEST(PyTorchParity, ScaledDotProductAttentionWithFullyMaskedRow) {
  const io::SafetensorsFile f = io::read_safetensors(fixture("mha.safetensors"));
  Var<float> q(f.get<float>("sdpa.q"), true), k(f.get<float>("sdpa.k"), true), v(f.get<float>("sdpa.v"), true);
  AttentionMask<float> mask;
  mask.key_padding = f.get<bool>("sdpa.key_padding_mask");
  Tensor<float> probs;
  AttentionOptions<float> opt;
  opt.probs_out = &probs;
  Var<float> y = scaled_dot_product_attention(q, k, v, mask, opt);
  expect_close("sdpa.output", y.value(), f.get<float>("sdpa.output"), 0, 1e-5);
  expect_close("sdpa.probs", probs, f.get<float>("sdpa.probs"), 0, 1e-6);
  y.backward(f.get<float>("sdpa.upstream"));
  expect_close("sdpa.grad.q", q.grad(), f.get<float>("sdpa.grad.q"), 1e-4, 1e-6);
  expect_close("sdpa.grad.k", k.grad(), f.get<float>("sdpa.grad.k"), 1e-4, 1e-6);
  expect_close("sdpa.grad.v", v.grad(), f.get<float>("sdpa.grad.v"), 1e-4, 1e-6);
}

}  // namespace parity_test
