#include "eigenformer/io/state_dict.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "support/test_support.hpp"

#ifndef EIGENFORMER_TEST_TMP_DIR
#define EIGENFORMER_TEST_TMP_DIR "/tmp"
#endif

using namespace eigenformer;
using namespace eigenformer::io;

namespace state_dict_test {

namespace fs = std::filesystem;
using eigenformer::testing::random_tensor;

namespace {

fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::path(EIGENFORMER_TEST_TMP_DIR) / ("state_dict_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

/// A module in the shape the library's layers have: visit_parameters names every parameter, children prefixed.
template <typename T>
struct FakeLinear {
  Var<T> weight, bias;
  template <class F>
  void visit_parameters(F&& f) {
    f("weight", weight);
    f("bias", bias);
  }
};

template <typename T>
struct FakeModel {
  explicit FakeModel(std::uint64_t seed) {
    encoder.weight = Var<T>(random_tensor({2, 3}, seed).template cast<T>(), true);
    encoder.bias = Var<T>(random_tensor({2}, seed + 1).template cast<T>(), true);
    head = Var<T>(random_tensor({4}, seed + 2).template cast<T>(), true);
  }
  FakeLinear<T> encoder;
  Var<T> head;
  Var<T> unused;  // an optional parameter that is absent (undefined): not part of the state

  template <class F>
  void visit_parameters(F&& f) {
    encoder.visit_parameters([&f](const std::string& name, auto& p) { f("encoder." + name, p); });
    f("head", head);
    f("unused", unused);
  }
  /// Deep copies of every value, to check a failed load changed nothing.
  std::vector<Tensor<T>> snapshot() {
    std::vector<Tensor<T>> out;
    visit_parameters([&out](const std::string&, Var<T>& p) {
      if (p.defined()) out.push_back(p.value().clone());
    });
    return out;
  }
};

template <typename T>
bool same_values(FakeModel<T>& m, const std::vector<Tensor<T>>& values) {
  const std::vector<Tensor<T>> now = m.snapshot();
  if (now.size() != values.size()) return false;
  for (std::size_t i = 0; i < now.size(); ++i)
    if (!now[i].equal(values[i])) return false;
  return true;
}

/// Adam (Kingma & Ba 2015, torch.optim.Adam defaults) on the parameters of a FakeModel, with its state exposed
/// through visit_state under torch-like names. The moments are created lazily at the first step, as torch does.
struct FakeAdam {
  explicit FakeAdam(FakeModel<float>& model) {
    model.visit_parameters([this](const std::string& name, Var<float>& p) {
      if (p.defined()) params.emplace_back(name, p);
    });
    m.resize(params.size());
    v.resize(params.size());
  }
  /// One step on the loss sum((p - 1)^2) of every parameter (gradient 2 (p - 1)).
  void step() {
    const std::int64_t t = ++step_count.data()[0];
    for (std::size_t i = 0; i < params.size(); ++i) {
      Tensor<float>& p = params[i].second.value();
      if (!m[i].defined()) {
        m[i] = Tensor<float>::zeros(p.shape());
        v[i] = Tensor<float>::zeros(p.shape());
      }
      const float bc1 = 1.0f - std::pow(beta1, static_cast<float>(t));
      const float bc2 = 1.0f - std::pow(beta2, static_cast<float>(t));
      for (Index k = 0; k < p.numel(); ++k) {
        const float g = 2.0f * (p[k] - 1.0f);
        m[i][k] = beta1 * m[i][k] + (1.0f - beta1) * g;
        v[i][k] = beta2 * v[i][k] + (1.0f - beta2) * g * g;
        p[k] -= lr * (m[i][k] / bc1) / (std::sqrt(v[i][k] / bc2) + eps);
      }
    }
  }
  template <class F>
  void visit_state(F&& f) {
    f("step", step_count);
    for (std::size_t i = 0; i < params.size(); ++i) {
      f("state." + params[i].first + ".exp_avg", m[i]);
      f("state." + params[i].first + ".exp_avg_sq", v[i]);
    }
  }

  std::vector<std::pair<std::string, Var<float>>> params;
  std::vector<Tensor<float>> m, v;
  Tensor<std::int64_t> step_count = Tensor<std::int64_t>::scalar(0);
  float lr = 0.05f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
};

}  // namespace

TEST(StateDict, SaveThenLoadRestoresEveryParameter) {
  const fs::path dir = fresh_dir("round_trip");
  FakeModel<float> saved(1);
  save_state_dict(saved, dir / "model.safetensors", {{"format", "pt"}});
  const SafetensorsFile file = read_safetensors(dir / "model.safetensors");
  std::vector<std::string> names;
  for (const TensorInfo& t : file.tensors()) names.push_back(t.name);
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"encoder.bias", "encoder.weight", "head"}));
  EXPECT_EQ(file.metadata().at("format"), "pt");

  FakeModel<float> loaded(99);
  const Tensor<float> weight_buffer = loaded.encoder.weight.value();  // loading copies in place
  EXPECT_FALSE(loaded.encoder.weight.value().equal(saved.encoder.weight.value()));
  const LoadResult r = load_state_dict(loaded, dir / "model.safetensors");
  EXPECT_TRUE(r.missing_keys.empty());
  EXPECT_TRUE(r.unexpected_keys.empty());
  EXPECT_TRUE(same_values(loaded, saved.snapshot()));
  EXPECT_TRUE(loaded.encoder.weight.value().shares_buffer_with(weight_buffer));
  EXPECT_TRUE(loaded.encoder.weight.requires_grad());
}

TEST(StateDict, LoadConvertsFileDtypesToTheParameterType) {
  const fs::path dir = fresh_dir("convert");
  FakeModel<float> f32(2);
  save_state_dict(f32, dir / "f32.safetensors");
  FakeModel<double> f64(5);
  load_state_dict(f64, dir / "f32.safetensors");  // F32 -> double is exact
  EXPECT_TRUE(f64.encoder.weight.value().equal(f32.encoder.weight.value().cast<double>()));

  // F16 / BF16 / F64 -> float: 0x3c00 = 1, 0xc000 = -2 (F16); 0x4049 = 3.140625 (BF16).
  Writer w;
  w.add_bytes("encoder.weight", DType::F16, {2, 3},
              {0x00, 0x3c, 0x00, 0xc0, 0x00, 0x3c, 0x00, 0xc0, 0x00, 0x3c, 0x00, 0x00});
  w.add_bytes("encoder.bias", DType::BF16, {2}, {0x49, 0x40, 0x80, 0x3f});
  w.add("head", Tensor<double>::from({0.1, 0.2, 0.3, 1e300}, {4}));
  w.write(dir / "mixed.safetensors");
  FakeModel<float> m(3);
  load_state_dict(m, dir / "mixed.safetensors");
  EXPECT_TRUE(m.encoder.weight.value().equal(Tensor<float>::from({1, -2, 1, -2, 1, 0}, {2, 3})));
  EXPECT_TRUE(m.encoder.bias.value().equal(Tensor<float>::from({3.140625f, 1.0f}, {2})));
  EXPECT_EQ(m.head.value()[0], 0.1f);
  EXPECT_TRUE(std::isinf(m.head.value()[3]));
}

TEST(StateDict, MismatchesAreAllListedAndTheModuleIsUnchanged) {
  const fs::path dir = fresh_dir("mismatch");
  Writer w;
  w.add("encoder.weight", random_tensor({3, 2}, 7));  // transposed
  w.add("encoder.bias", random_tensor({2}, 8));       // fine
  w.add("extra.weight", random_tensor({1}, 9));       // unexpected
  w.add("another", random_tensor({1}, 10));           // unexpected
  w.write(dir / "bad.safetensors");                   // "head" is missing

  FakeModel<float> m(4);
  const std::vector<Tensor<float>> before = m.snapshot();
  const std::string path = (dir / "bad.safetensors").string();
  EXPECT_THROW_WITH(load_state_dict(m, dir / "bad.safetensors"), IoError,
                    {"load_state_dict", path, "missing from the file (1): 'head'",
                     "unexpected in the file (2): 'another', 'extra.weight'",
                     "mis-shaped (1): 'encoder.weight' is (3, 2) in the file, expected (2, 3)", "nothing was loaded"});
  EXPECT_TRUE(same_values(m, before));

  // Not strict: missing and unexpected names are reported, the mis-shaped one still fails the whole load.
  EXPECT_THROW_WITH(load_state_dict(m, dir / "bad.safetensors", false), IoError, {"mis-shaped (1): 'encoder.weight'"});
  EXPECT_TRUE(same_values(m, before));
}

TEST(StateDict, NonStrictLoadSkipsMissingAndUnexpectedNames) {
  const fs::path dir = fresh_dir("non_strict");
  const Tensor<float> bias = random_tensor({2}, 11);
  Writer w;
  w.add("encoder.bias", bias).add("pooler.weight", random_tensor({2, 2}, 12));
  w.write(dir / "partial.safetensors");

  FakeModel<float> m(5);
  const Tensor<float> weight = m.encoder.weight.value().clone();
  EXPECT_THROW_WITH(
      load_state_dict(m, dir / "partial.safetensors"), IoError,
      {"missing from the file (2): 'encoder.weight', 'head'", "unexpected in the file (1): 'pooler.weight'"});
  const LoadResult r = load_state_dict(m, dir / "partial.safetensors", false);
  EXPECT_EQ(r.missing_keys, (std::vector<std::string>{"encoder.weight", "head"}));
  EXPECT_EQ(r.unexpected_keys, (std::vector<std::string>{"pooler.weight"}));
  EXPECT_TRUE(m.encoder.bias.value().equal(bias));
  EXPECT_TRUE(m.encoder.weight.value().equal(weight));
}

TEST(StateDict, IntegerTensorsInPlaceOfParametersAreRejected) {
  const fs::path dir = fresh_dir("wrong_dtype");
  FakeModel<float> m(6);
  Writer w;
  w.add("encoder.weight", m.encoder.weight.value()).add("encoder.bias", Tensor<std::int64_t>::from({1, 2}, {2}));
  w.add("head", m.head.value());
  w.write(dir / "ids.safetensors");
  const std::vector<Tensor<float>> before = m.snapshot();
  EXPECT_THROW_WITH(load_state_dict(m, dir / "ids.safetensors"), IoError,
                    {"wrong dtype (1): 'encoder.bias' is I64 in the file, expected F16, BF16, F32 or F64"});
  EXPECT_TRUE(same_values(m, before));
  EXPECT_THROW_WITH(load_state_dict(m, dir / "nothing.safetensors"), IoError, {"nothing.safetensors"});
}

TEST(StateDict, OptimizerStateRoundTripResumesTrainingExactly) {
  const fs::path dir = fresh_dir("resume");
  FakeModel<float> model(20);
  FakeAdam adam(model);
  for (int i = 0; i < 3; ++i) adam.step();
  save_state_dict(model, dir / "model.safetensors");
  save_optimizer_state(adam, dir / "adam.safetensors");
  for (int i = 0; i < 2; ++i) adam.step();
  const std::vector<Tensor<float>> uninterrupted = model.snapshot();

  FakeModel<float> resumed(21);
  FakeAdam adam2(resumed);  // fresh: moments undefined, step 0
  load_state_dict(resumed, dir / "model.safetensors");
  load_optimizer_state(adam2, dir / "adam.safetensors");
  EXPECT_EQ(adam2.step_count.item(), 3);
  for (int i = 0; i < 2; ++i) adam2.step();
  EXPECT_TRUE(same_values(resumed, uninterrupted));  // bit for bit

  // Without the optimizer state (fresh moments, step 1) the trajectory differs: the test can fail.
  FakeModel<float> restarted(21);
  FakeAdam adam3(restarted);
  load_state_dict(restarted, dir / "model.safetensors");
  for (int i = 0; i < 2; ++i) adam3.step();
  EXPECT_FALSE(same_values(restarted, uninterrupted));
}

TEST(StateDict, OptimizerStateBeforeTheFirstStepSavesOnlyTheStep) {
  const fs::path dir = fresh_dir("fresh_optimizer");
  FakeModel<float> model(30);
  FakeAdam adam(model);
  save_optimizer_state(adam, dir / "adam.safetensors");
  EXPECT_EQ(read_safetensors(dir / "adam.safetensors").tensors().size(), 1u);
  FakeAdam other(model);
  load_optimizer_state(other, dir / "adam.safetensors");
  EXPECT_EQ(other.step_count.item(), 0);
  EXPECT_FALSE(other.m[0].defined());

  // A stepped optimizer cannot take that file: its moments exist and are missing from it.
  FakeAdam stepped(model);
  stepped.step();
  EXPECT_THROW_WITH(load_optimizer_state(stepped, dir / "adam.safetensors"), IoError,
                    {"load_optimizer_state", "missing from the file (6)", "'state.encoder.weight.exp_avg'"});
  EXPECT_EQ(stepped.step_count.item(), 1);
}

TEST(StateDict, FailedOptimizerLoadsChangeNothing) {
  const fs::path dir = fresh_dir("optimizer_errors");
  FakeModel<float> model(40);
  FakeAdam adam(model);
  adam.step();
  save_optimizer_state(adam, dir / "adam.safetensors");
  adam.step();
  const Tensor<float> m0 = adam.m[0].clone();

  // A shape mismatch and an unexpected name: listed together, nothing loaded.
  Writer w;
  w.add("step", Tensor<std::int64_t>::scalar(7));
  for (std::size_t i = 0; i < adam.params.size(); ++i) {
    w.add("state." + adam.params[i].first + ".exp_avg", i == 0 ? random_tensor({7}, 1) : adam.m[i]);
    w.add("state." + adam.params[i].first + ".exp_avg_sq", adam.v[i]);
  }
  w.add("state.ghost.exp_avg", random_tensor({1}, 2));
  w.write(dir / "bad.safetensors");
  EXPECT_THROW_WITH(load_optimizer_state(adam, dir / "bad.safetensors"), IoError,
                    {"load_optimizer_state", "unexpected in the file (1): 'state.ghost.exp_avg'",
                     "mis-shaped (1): 'state.encoder.weight.exp_avg' is (7) in the file, expected (2, 3)"});
  EXPECT_EQ(adam.step_count.item(), 2);
  EXPECT_TRUE(adam.m[0].equal(m0));

  // A value that cannot convert (BOOL byte 2 for the int64 step) fails after every check passed: every
  // conversion runs before the first copy, so nothing is changed either.
  Writer bad_value;
  bad_value.add_bytes("step", DType::BOOL, {}, {2});
  for (std::size_t i = 0; i < adam.params.size(); ++i) {
    bad_value.add("state." + adam.params[i].first + ".exp_avg", random_tensor(adam.m[i].shape(), 50 + i));
    bad_value.add("state." + adam.params[i].first + ".exp_avg_sq", adam.v[i]);
  }
  bad_value.write(dir / "bad_value.safetensors");
  EXPECT_THROW_WITH(load_optimizer_state(adam, dir / "bad_value.safetensors"), IoError,
                    {"bad_value.safetensors", "tensor 'step'", "expected 0 or 1"});
  EXPECT_EQ(adam.step_count.item(), 2);
  EXPECT_TRUE(adam.m[0].equal(m0));
}

}  // namespace state_dict_test
