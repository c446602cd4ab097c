// GPT-2 against transformers' GPT2LMHeadModel: the Hugging Face folders in tests/reference/hf/ (every checkpoint
// layout, F32 / F16 / sharded) and the float64 outputs make_hf_fixtures.py computed with the PyTorch mirror of
// transformers (hf_gpt2.py): logits, loss, every gradient, a 50-token greedy continuation decoded with the cache.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "eigenformer/io/safetensors.hpp"
#include "eigenformer/nn/gpt2_pretrained.hpp"
#include "eigenformer/ops/loss.hpp"
#include "eigenformer/train/causal_lm.hpp"
#include "support/test_support.hpp"

using namespace eigenformer;

namespace gpt2_test {

namespace {

namespace fs = std::filesystem;

fs::path hf(const std::string& name) { return fs::path(EIGENFORMER_TEST_DATA_DIR) / "reference" / "hf" / name; }

const io::SafetensorsFile& expected() {
  static const io::SafetensorsFile f = io::read_safetensors(hf("gpt2_expected.safetensors"));
  return f;
}

const std::vector<std::string> kFolders = {"gpt2", "gpt2-original", "gpt2-lm-head", "gpt2-f16", "gpt2-sharded"};

/// max |got - want| over the positions that are not padding (attention_mask 1) of (B, T, V) logits.
template <typename T>
double max_diff_at_real_positions(const Tensor<T>& got, const Tensor<double>& want, const Tensor<std::int64_t>& mask) {
  EXPECT_EQ(got.shape(), want.shape());
  const Index B = want.size(0), Tn = want.size(1), V = want.size(2);
  double worst = 0;
  for (Index b = 0; b < B; ++b)
    for (Index t = 0; t < Tn; ++t) {
      if (mask(b, t) == 0) continue;
      for (Index v = 0; v < V; ++v)
        worst = std::max(worst, std::abs(static_cast<double>(got[(b * Tn + t) * V + v]) - want[(b * Tn + t) * V + v]));
    }
  return worst;
}

Tensor<bool> padding_of(const Tensor<std::int64_t>& attention_mask) {
  Tensor<bool> p = Tensor<bool>::empty(attention_mask.shape());
  for (Index i = 0; i < p.numel(); ++i) p[i] = attention_mask[i] == 0;
  return p;
}

}  // namespace

TEST(GPT2, EveryFolderLayoutLoadsAndGivesTransformersLogits) {
  const Tensor<std::int64_t> ids = expected().get<std::int64_t>("input_ids");
  const Tensor<std::int64_t> mask = expected().get<std::int64_t>("attention_mask");
  const Tensor<std::int64_t> positions = expected().get<std::int64_t>("position_ids");
  const Tensor<double> want = expected().get<double>("logits");
  for (const std::string& folder : kFolders) {
    SCOPED_TRACE(folder);
    io::PretrainedReport report;
    nn::GPT2LMHeadModel<float> model = nn::gpt2_from_pretrained<float>(hf(folder), &report);
    EXPECT_TRUE(report.missing.empty()) << report.to_string();
    EXPECT_TRUE(report.unexpected.empty()) << report.to_string();
    const Var<float> logits = model.forward(ids, padding_of(mask), positions);
    EXPECT_LT(max_diff_at_real_positions(logits.value(), want, mask), 1e-5);
  }
}

TEST(GPT2, DoublePrecisionMatchesTheFloat64Reference) {
  const Tensor<std::int64_t> ids = expected().get<std::int64_t>("input_ids");
  const Tensor<std::int64_t> mask = expected().get<std::int64_t>("attention_mask");
  const Tensor<std::int64_t> positions = expected().get<std::int64_t>("position_ids");
  nn::GPT2LMHeadModel<double> model = nn::gpt2_from_pretrained<double>(hf("gpt2"));
  const Var<double> logits = model.forward(ids, padding_of(mask), positions);
  EXPECT_LT(max_diff_at_real_positions(logits.value(), expected().get<double>("logits"), mask), 1e-10);
}

}  // namespace gpt2_test

namespace gpt2_test {

TEST(GPT2, CachedDecodingGivesTheLogitsOfTheWholeSequenceAtEveryStep) {
  nn::GPT2LMHeadModel<double> model = nn::gpt2_from_pretrained<double>(hf("gpt2"));
  const Tensor<std::int64_t> sequence = expected().get<std::int64_t>("greedy.output");  // (1, 55)
  const Index n = sequence.size(1), prompt = 5;
  const Var<double> full = model.forward(sequence);  // (1, n, V)
  const Index V = full.size(2);
  nn::KVCache<double> cache = model.make_cache(1, n);
  Tensor<std::int64_t> first = Tensor<std::int64_t>::empty({1, prompt});
  std::copy_n(sequence.data(), prompt, first.data());
  const Var<double> all = model.forward_cached(first, cache, {}, true);  // (1, prompt, V)
  double worst = 0;
  for (Index i = 0; i < prompt * V; ++i) worst = std::max(worst, std::abs(all.value()[i] - full.value()[i]));
  for (Index t = prompt; t < n; ++t) {
    const Var<double> step = model.forward_cached(Tensor<std::int64_t>::full({1, 1}, sequence[t]), cache);  // (1, V)
    ASSERT_EQ(step.shape(), (Shape{1, V}));
    for (Index v = 0; v < V; ++v) worst = std::max(worst, std::abs(step.value()[v] - full.value()[t * V + v]));
  }
  EXPECT_LT(worst, 1e-12);
  EXPECT_EQ(cache.length(), n);
  EXPECT_THROW_WITH(model.forward_cached(Tensor<std::int64_t>::full({1, 1}, 3), cache), ValueError,
                    {"GPT2Model::forward_cached", "room for 0 more"});
}

TEST(GPT2, LeftPaddedBatchInTheCacheGivesEachSequenceItsOwnLogits) {
  nn::GPT2LMHeadModel<double> model = nn::gpt2_from_pretrained<double>(hf("gpt2"));
  const std::vector<std::vector<std::int64_t>> prompts = {{5, 17, 42}, {7, 8, 9, 10, 11, 12}, {99}};
  const Index B = 3, L = 6, V = model.vocab_size();
  Tensor<std::int64_t> ids = Tensor<std::int64_t>::zeros({B, L});
  Tensor<bool> padding = Tensor<bool>::zeros({B, L});
  for (Index b = 0; b < B; ++b) {
    const auto& p = prompts[static_cast<std::size_t>(b)];
    const Index pad = L - static_cast<Index>(p.size());
    for (Index t = 0; t < L; ++t) {
      padding(b, t) = t < pad;
      ids(b, t) = t < pad ? 100 : p[static_cast<std::size_t>(t - pad)];
    }
  }
  nn::KVCache<double> cache = model.make_cache(B, L + 2);
  const Var<double> batch = model.forward_cached(ids, cache, padding);  // (B, V)
  const Tensor<std::int64_t> step_ids = Tensor<std::int64_t>::from({3, 4, 5}, {B, 1});
  const Var<double> step = model.forward_cached(step_ids, cache);
  for (Index b = 0; b < B; ++b) {
    std::vector<std::int64_t> alone = prompts[static_cast<std::size_t>(b)];
    const Var<double> first = model.forward(Tensor<std::int64_t>::from(alone, {1, Index(alone.size())}));
    alone.push_back(step_ids[b]);
    const Var<double> second = model.forward(Tensor<std::int64_t>::from(alone, {1, Index(alone.size())}));
    const Index n = static_cast<Index>(alone.size());
    double worst = 0;
    for (Index v = 0; v < V; ++v) {
      worst = std::max(worst, std::abs(batch.value()[b * V + v] - first.value()[(n - 2) * V + v]));
      worst = std::max(worst, std::abs(step.value()[b * V + v] - second.value()[(n - 1) * V + v]));
    }
    EXPECT_LT(worst, 1e-12) << "sequence " << b;
  }
  EXPECT_EQ(cache.next_position(0), 4);
  EXPECT_EQ(cache.next_position(1), 7);
  EXPECT_EQ(cache.next_position(2), 2);
}

}  // namespace gpt2_test

namespace gpt2_test {

namespace {

const io::SafetensorsFile& decoder_expected() {
  static const io::SafetensorsFile f =
      io::read_safetensors(fs::path(EIGENFORMER_TEST_DATA_DIR) / "reference" / "gpt2_decoder" / "expected.safetensors");
  return f;
}

/// The largest |got - want| / (atol + rtol |want|) over the elements (<= 1 passes).
template <typename T>
double worst_ratio(const Tensor<T>& got, const Tensor<double>& want, double rtol, double atol) {
  EXPECT_EQ(got.shape(), want.shape());
  double worst = 0;
  for (Index i = 0; i < std::min(got.numel(), want.numel()); ++i)
    worst = std::max(worst, std::abs(static_cast<double>(got[i]) - want[i]) / (atol + rtol * std::abs(want[i])));
  return worst;
}

template <typename T>
void check_real_position_loss_and_gradients(double loss_tol, double rtol, double atol) {
  nn::GPT2LMHeadModel<T> model = nn::gpt2_from_pretrained<T>(hf("gpt2"));
  const Tensor<std::int64_t> mask = expected().get<std::int64_t>("attention_mask");
  const Var<T> logits = model.forward(expected().get<std::int64_t>("input_ids"), padding_of(mask),
                                      expected().get<std::int64_t>("position_ids"));
  const Var<T> loss = train::causal_lm_loss(logits, decoder_expected().get<std::int64_t>("real.labels"));
  EXPECT_NEAR(loss.item(), decoder_expected().get<double>("real.loss")[0], loss_tol);
  loss.backward();
  Index checked = 0;
  model.visit_parameters([&](const std::string& name, Var<T>& p) {
    ASSERT_TRUE(p.has_grad()) << name;
    EXPECT_LE(worst_ratio(p.grad(), decoder_expected().get<double>("real.grad." + name), rtol, atol), 1.0) << name;
    ++checked;
  });
  EXPECT_EQ(checked, 28);  // wte (tied with lm_head), wpe, 12 per block, ln_f weight and bias
}

}  // namespace

TEST(GPT2, LossAndEveryGradientMatchTransformersAtRealPositions) {
  check_real_position_loss_and_gradients<double>(1e-12, 1e-8, 1e-12);
  check_real_position_loss_and_gradients<float>(1e-5, 1e-4, 1e-6);
}

TEST(GPT2, VariantSettingsMatchTransformers) {
  // quick_gelu, n_inner 40, scale_attn_by_inverse_layer_idx and an untied lm_head.
  io::PretrainedReport report;
  nn::GPT2LMHeadModel<float> model = nn::gpt2_from_pretrained<float>(
      fs::path(EIGENFORMER_TEST_DATA_DIR) / "reference" / "gpt2_decoder" / "gpt2-variant", &report);
  EXPECT_FALSE(model.options.tie_word_embeddings);
  EXPECT_FALSE(model.lm_head.weight.node_ptr() == model.transformer.wte.weight.node_ptr());
  EXPECT_EQ(model.options.transformer.inner(), 40);
  EXPECT_TRUE(report.missing.empty() && report.unexpected.empty()) << report.to_string();
  const Tensor<std::int64_t> mask = expected().get<std::int64_t>("attention_mask");
  const Var<float> logits = model.forward(expected().get<std::int64_t>("input_ids"), padding_of(mask),
                                          expected().get<std::int64_t>("position_ids"));
  EXPECT_LT(max_diff_at_real_positions(logits.value(), decoder_expected().get<double>("variant.logits"), mask), 1e-5);
}

TEST(GPT2, EveryHuggingFaceActivationNameMatchesTransformers) {
  const Tensor<double> x = decoder_expected().get<double>("activation.x");
  for (const char* name : {"relu", "relu2", "gelu", "gelu_python", "gelu_new", "gelu_fast", "gelu_accurate",
                           "gelu_pytorch_tanh", "quick_gelu", "silu", "swish", "tanh", "sigmoid", "linear"}) {
    SCOPED_TRACE(name);
    EXPECT_TRUE(nn::is_hf_activation(name));
    const Var<double> y = nn::hf_activation(name, Var<double>(x));
    // rtol 1e-9: gelu_fast's constant 0.7978845608 is sqrt(2 / pi) cut after 10 digits.
    EXPECT_LE(worst_ratio(y.value(), decoder_expected().get<double>(std::string("activation.") + name), 1e-9, 1e-14),
              1.0);
  }
  EXPECT_THROW_WITH(nn::hf_activation("mish", Var<double>(x)), ValueError, {"hf_activation", "mish", "gelu_new"});
}

}  // namespace gpt2_test

namespace gpt2_test {

namespace {

/// A fresh copy of a fixture folder under the test tmp dir, to edit.
fs::path copy_folder(const fs::path& from, const std::string& name) {
  const fs::path to = fs::path(EIGENFORMER_TEST_TMP_DIR) / ("gpt2_test_" + name);
  fs::remove_all(to);
  fs::create_directories(to);
  for (const auto& entry : fs::directory_iterator(from)) fs::copy_file(entry.path(), to / entry.path().filename());
  return to;
}

void write_file(const fs::path& path, const std::string& text) { io::write_text_file_atomically(path, text); }

std::string read_file(const fs::path& path) { return io::read_text_file(path); }

/// config.json of folder with `key`'s value text replaced.
void set_config(const fs::path& folder, const std::string& key, const std::string& value) {
  nlohmann::json j = nlohmann::json::parse(read_file(folder / "config.json"));
  j[key] = nlohmann::json::parse(value);
  write_file(folder / "config.json", j.dump(2));
}

nn::GPT2LMHeadModel<float>::Options tiny_options() {
  nn::GPT2LMHeadModel<float>::Options o;
  o.transformer.vocab_size = 11;
  o.transformer.n_positions = 9;
  o.transformer.n_embd = 8;
  o.transformer.n_layer = 2;
  o.transformer.n_head = 2;
  o.transformer.seed = 3;
  o.bos_token_id = o.eos_token_id = 10;
  return o;
}

}  // namespace

TEST(GPT2, SavePretrainedRoundTripsInEveryDtypeAndShardedAndTransformersNames) {
  nn::GPT2LMHeadModel<float> model = nn::gpt2_from_pretrained<float>(hf("gpt2"));
  const Tensor<std::int64_t> ids = expected().get<std::int64_t>("input_ids");
  const Tensor<float> before = model.forward(ids).value().clone();
  const fs::path dir = fs::path(EIGENFORMER_TEST_TMP_DIR) / "gpt2_test_saved";
  for (const io::DType dtype : {io::DType::F32, io::DType::F16, io::DType::BF16}) {
    for (const std::uint64_t shard : {std::uint64_t(5000000000ull), std::uint64_t(30000)}) {
      SCOPED_TRACE(std::string(io::dtype_name(dtype)) + " shard " + std::to_string(shard));
      fs::remove_all(dir);
      io::PretrainedSaveOptions so;
      so.dtype = dtype;
      so.max_shard_bytes = shard;
      io::save_pretrained(model, dir, so);
      EXPECT_EQ(fs::exists(dir / "model.safetensors.index.json"), shard < 1000000);
      io::PretrainedReport report;
      nn::GPT2LMHeadModel<float> again = nn::gpt2_from_pretrained<float>(dir, &report);
      EXPECT_TRUE(report.missing.empty() && report.unexpected.empty() && report.dropped.empty()) << report.to_string();
      // The fixture's weights are exact in F16 and BF16.
      EXPECT_TRUE(again.forward(ids).value().equal(before));
    }
  }
  const nlohmann::json config = nlohmann::json::parse(read_file(dir / "config.json"));
  EXPECT_EQ(config["architectures"][0], "GPT2LMHeadModel");
  EXPECT_EQ(config["torch_dtype"], "bfloat16");
  EXPECT_TRUE(config["n_inner"].is_null());
  EXPECT_EQ(config["activation_function"], "gelu_new");
  EXPECT_EQ(config["eos_token_id"], 100);
  EXPECT_FALSE(config.contains("tie_word_embeddings"));
  // Names as transformers writes them: the tied lm_head.weight left out.
  const io::PretrainedWeights w = io::PretrainedWeights::open(dir);
  EXPECT_TRUE(w.contains("transformer.h.1.mlp.c_proj.weight"));
  EXPECT_EQ(w.info("transformer.h.0.attn.c_attn.weight").shape, (Shape{24, 72}));
  EXPECT_FALSE(w.contains("lm_head.weight"));
  // The bare decoder stack: names without "transformer.", and it loads into either model.
  io::PretrainedReport bare_report;
  nn::GPT2Model<float> bare = io::from_pretrained<nn::GPT2Model<float>>(hf("gpt2-original"), &bare_report);
  EXPECT_EQ(bare_report.dropped.size(), 4u);  // h.N.attn.bias and h.N.attn.masked_bias
  EXPECT_TRUE(bare_report.missing.empty() && bare_report.unexpected.empty()) << bare_report.to_string();
  fs::remove_all(dir);
  io::save_pretrained(bare, dir);
  EXPECT_EQ(nlohmann::json::parse(read_file(dir / "config.json"))["architectures"][0], "GPT2Model");
  EXPECT_TRUE(io::PretrainedWeights::open(dir).contains("h.0.ln_1.weight"));
  EXPECT_TRUE(nn::gpt2_from_pretrained<float>(dir).forward(ids).value().equal(before));
  // An untied model saves its own lm_head.weight.
  nn::GPT2LMHeadModel<float>::Options o = tiny_options();
  o.tie_word_embeddings = false;
  nn::GPT2LMHeadModel<float> untied(o);
  untied.eval();
  fs::remove_all(dir);
  io::save_pretrained(untied, dir);
  EXPECT_TRUE(io::PretrainedWeights::open(dir).contains("lm_head.weight"));
  const Tensor<std::int64_t> small = Tensor<std::int64_t>::from({1, 2, 3}, {1, 3});
  EXPECT_TRUE(nn::gpt2_from_pretrained<float>(dir).forward(small).value().equal(untied.forward(small).value()));
}

TEST(GPT2, FoldersThatDoNotMatchTheirConfigAreRefusedNamingTheProblem) {
  const fs::path wide = copy_folder(hf("gpt2"), "wide");
  set_config(wide, "n_embd", "32");
  EXPECT_THROW_WITH(
      nn::gpt2_from_pretrained<float>(wide), IoError,
      {"does not fit the model", "transformer.wte.weight' is (101, 24)", "(101, 32)", "nothing was loaded"});
  const fs::path deep = copy_folder(hf("gpt2"), "deep");
  set_config(deep, "n_layer", "3");
  EXPECT_THROW_WITH(
      nn::gpt2_from_pretrained<float>(deep), IoError,
      {"does not match its config.json", "not in the checkpoint (12)", "transformer.h.2.attn.c_attn.weight"});
  io::PretrainedReport report;
  nn::GPT2LMHeadModel<float> lenient = nn::gpt2_from_pretrained<float>(deep, &report, nn::GPT2LoadOptions{false});
  EXPECT_EQ(report.missing.size(), 12u);
  const fs::path shallow = copy_folder(hf("gpt2"), "shallow");
  set_config(shallow, "n_layer", "1");
  EXPECT_THROW_WITH(nn::gpt2_from_pretrained<float>(shallow), IoError,
                    {"the model does not use (12)", "transformer.h.1.ln_1.weight"});
  const fs::path heads = copy_folder(hf("gpt2"), "heads");
  set_config(heads, "n_head", "5");
  EXPECT_THROW_WITH(nn::gpt2_from_pretrained<float>(heads), IoError,
                    {"config.json", "n_head is 5", "divisor of n_embd"});
  const fs::path act = copy_folder(hf("gpt2"), "act");
  set_config(act, "activation_function", "\"gelu_10\"");
  EXPECT_THROW_WITH(nn::gpt2_from_pretrained<float>(act), IoError, {"activation_function is \"gelu_10\"", "gelu_new"});
  const fs::path typed = copy_folder(hf("gpt2"), "typed");
  set_config(typed, "n_embd", "\"24\"");
  EXPECT_THROW_WITH(nn::gpt2_from_pretrained<float>(typed), IoError,
                    {"config.json", "\"n_embd\" is \"24\"", "an integer"});
  const fs::path bert = copy_folder(hf("gpt2"), "bert");
  set_config(bert, "model_type", "\"bert\"");
  EXPECT_THROW_WITH(nn::gpt2_from_pretrained<float>(bert), IoError, {"model_type is \"bert\"", "expected \"gpt2\""});
  const fs::path eos = copy_folder(hf("gpt2"), "eos");
  set_config(eos, "eos_token_id", "101");
  EXPECT_THROW_WITH(nn::gpt2_from_pretrained<float>(eos), IoError, {"eos_token_id is 101", "below vocab_size"});
  const fs::path no_config = copy_folder(hf("gpt2"), "no_config");
  fs::remove(no_config / "config.json");
  EXPECT_THROW_WITH(nn::gpt2_from_pretrained<float>(no_config), IoError, {"config.json"});
  const fs::path no_weights = copy_folder(hf("gpt2"), "no_weights");
  fs::remove(no_weights / "model.safetensors");
  EXPECT_THROW_WITH(nn::gpt2_from_pretrained<float>(no_weights), IoError, {"neither model.safetensors"});
  // Token lists and nulls as newer and older configs write them.
  const fs::path ids = copy_folder(hf("gpt2"), "ids");
  set_config(ids, "eos_token_id", "[100, 7]");
  set_config(ids, "bos_token_id", "null");
  nn::GPT2LMHeadModel<float> m = nn::gpt2_from_pretrained<float>(ids);
  EXPECT_EQ(m.eos_token_id(), 100);
  EXPECT_EQ(m.options.bos_token_id, -1);
}

TEST(GPT2, BadInputsThrowNamingTheFunctionAndTheInput) {
  nn::GPT2LMHeadModel<float> model(tiny_options());
  model.eval();
  EXPECT_THROW_WITH(model.forward(Tensor<std::int64_t>::from({1, 11}, {1, 2})), ValueError,
                    {"GPT2Model::forward", "token id 11 at (0, 1)", "vocab_size = 11"});
  EXPECT_THROW_WITH(model.forward(Tensor<std::int64_t>::zeros({1, 10})), ValueError,
                    {"GPT2Model::forward", "10 tokens per sequence", "at most 9", "n_positions"});
  EXPECT_THROW_WITH(model.forward(Tensor<std::int64_t>::zeros({2, 0})), ShapeError, {"GPT2Model::forward", "ids is (2, 0)"});
  EXPECT_THROW_WITH(model.forward(Tensor<std::int64_t>::zeros({2, 3}), Tensor<bool>::zeros({2, 4})), ShapeError,
                    {"GPT2Model::forward", "padding is (2, 4)"});
  EXPECT_THROW_WITH(
      model.forward(Tensor<std::int64_t>::zeros({1, 3}), {}, Tensor<std::int64_t>::from({0, 1, 9}, {1, 3})), ValueError,
      {"GPT2Model::forward", "position id 9", "n_positions = 9"});
  nn::KVCache<float> cache = model.make_cache(1, 20);
  EXPECT_THROW_WITH(model.forward_cached(Tensor<std::int64_t>::zeros({1, 10}), cache), ValueError,
                    {"GPT2Model::forward_cached", "10 tokens per sequence", "at most 9"});
  EXPECT_EQ(cache.length(), 0);
  model.forward_cached(Tensor<std::int64_t>::zeros({1, 8}), cache);
  model.forward_cached(Tensor<std::int64_t>::zeros({1, 1}), cache);
  EXPECT_THROW_WITH(model.forward_cached(Tensor<std::int64_t>::zeros({1, 1}), cache), ValueError,
                    {"GPT2Model::forward_cached", "position id 9", "the model's context"});
  EXPECT_EQ(cache.length(), 9);
  nn::KVCache<float> other = model.make_cache(2, 4);
  EXPECT_THROW_WITH(model.forward_cached(Tensor<std::int64_t>::zeros({1, 1}), other), ValueError,
                    {"GPT2Model::forward_cached", "for 2 sequences", "for 1"});
  model.train();
  EXPECT_THROW_WITH(model.forward_cached(Tensor<std::int64_t>::zeros({2, 1}), other), ValueError, {"GPT2Model::forward_cached", "training mode"});
  nn::GPT2LMHeadModel<float>::Options o = tiny_options();
  o.transformer.n_head = 3;
  EXPECT_THROW_WITH(nn::GPT2LMHeadModel<float>{o}, ValueError, {"GPT2Model", "n_embd is 8, n_head is 3"});
  o = tiny_options();
  o.transformer.activation_function = "swishy";
  EXPECT_THROW_WITH(nn::GPT2LMHeadModel<float>{o}, ValueError, {"activation_function is \"swishy\""});
  o = tiny_options();
  o.eos_token_id = 11;
  EXPECT_THROW_WITH(nn::GPT2LMHeadModel<float>{o}, ValueError, {"eos_token_id is 11"});
}

TEST(GPT2, TinyModelPassesGradcheckWithPaddingAndTiedWeights) {
  nn::GPT2LMHeadModel<double>::Options o;
  o.transformer.vocab_size = 7;
  o.transformer.n_positions = 6;
  o.transformer.n_embd = 4;
  o.transformer.n_layer = 1;
  o.transformer.n_head = 2;
  o.transformer.initializer_range = 0.5;
  o.transformer.activation_function = "gelu_new";
  o.bos_token_id = o.eos_token_id = 6;
  nn::GPT2LMHeadModel<double> model(o);
  model.eval();  // dropout off: the function must be deterministic
  const Tensor<std::int64_t> ids = Tensor<std::int64_t>::from({6, 1, 2, 3, 4, 5, 0, 1}, {2, 4});
  const Tensor<bool> padding = Tensor<bool>::from({true, false, false, false, false, false, false, false}, {2, 4});
  const Tensor<std::int64_t> labels = Tensor<std::int64_t>::from({-100, 1, 2, 3, 4, 5, 0, 1}, {2, 4});
  std::vector<Var<double>> params;
  model.visit_parameters([&](const std::string&, Var<double>& p) { params.push_back(p); });
  EXPECT_GRADCHECK(
      [&](const std::vector<Var<double>>&) {
        return train::causal_lm_loss(model.forward(ids, padding, nn::positions_from_padding(padding)), labels);
      },
      params);
}

}  // namespace gpt2_test
