#include "eigenformer/train/fit.hpp"

#include "eigenformer/nn/encoder_classifier.hpp"

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "support/test_support.hpp"

using namespace eigenformer;
using namespace eigenformer::train;

namespace fit_test {

namespace {

namespace fs = std::filesystem;
using Model = nn::EncoderClassifier<float>;

/// A corpus the test generates: sequences of 5-12 noise tokens (3..19) with one marker token at a random place;
/// the label is 1 when the marker is token 1, 0 when it is token 2. Token 0 is padding.
data::Batcher synthetic(Index n, std::uint64_t seed, Index batch_size, bool shuffle) {
  std::mt19937_64 gen(seed);
  std::vector<std::vector<std::int64_t>> seqs;
  std::vector<std::int64_t> labels;
  for (Index i = 0; i < n; ++i) {
    const auto len = static_cast<std::size_t>(5 + gen() % 8);
    std::vector<std::int64_t> s(len);
    for (auto& t : s) t = static_cast<std::int64_t>(3 + gen() % 17);
    const std::int64_t label = static_cast<std::int64_t>(gen() % 2);
    s[gen() % len] = label == 1 ? 1 : 2;
    seqs.push_back(std::move(s));
    labels.push_back(label);
  }
  data::Batcher::Options o;
  o.batch_size = batch_size;
  o.shuffle = shuffle;
  o.seed = seed;
  return data::Batcher(std::move(seqs), std::move(labels), o);
}

Model::Options small_model(float dropout = 0.1f) {
  Model::Options o;
  o.vocab_size = 20;
  o.max_len = 16;
  o.encoder.layer.d_model = 16;
  o.encoder.layer.nhead = 2;
  o.encoder.num_layers = 1;
  o.encoder.layer.dim_feedforward = 32;
  o.encoder.layer.dropout = dropout;
  o.positional = nn::PositionalKind::learned;
  o.head.pooling = nn::Pooling::mean;
  o.padding_idx = 0;
  o.seed = 7;
  return o;
}

FitOptions fast_options(Index epochs) {
  FitOptions f;
  f.epochs = epochs;
  f.lr = 1e-2;
  return f;
}

/// A fresh folder under the build tree's tmp dir.
fs::path fresh_dir(const std::string& name) {
  const fs::path dir = fs::path(EIGENFORMER_TEST_TMP_DIR) / ("fit_test_" + name);
  fs::remove_all(dir);
  return dir;
}

std::vector<Tensor<float>> weights(Model& m) {
  std::vector<Tensor<float>> out;
  for (const auto& np : m.named_parameters()) out.push_back(np.second.value().clone());
  return out;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

/// Counts events and can throw at the end of a chosen epoch (a simulated crash).
struct RecordingReporter : Reporter {
  void on_fit_begin(const FitBegin& b) override {
    ++begins;
    begin = b;
  }
  void on_step(const StepInfo& s) override {
    ++steps;
    last_step = s;
  }
  void on_evaluate_begin(Index) override { ++evaluations; }
  void on_epoch_end(const EpochRecord& r, const std::string& details) override {
    last_details = details;
    epochs.push_back(r.epoch);
    if (r.epoch == crash_after) throw std::runtime_error("simulated crash");
  }
  void on_fit_end(const FitSummary& s) override {
    ++ends;
    summary = s;
  }
  int begins = 0, steps = 0, evaluations = 0, ends = 0;
  Index crash_after = -1;
  std::vector<Index> epochs;
  std::string last_details;
  FitBegin begin;
  StepInfo last_step;
  FitSummary summary;
};

}  // namespace

TEST(Fit, LearnsASyntheticCorpus) {
  const data::Batcher train = synthetic(256, 1, 16, true), valid = synthetic(128, 2, 32, false);
  Model model(small_model());
  RecordingReporter rep;
  FitOptions o = fast_options(4);
  o.reporter = &rep;
  const FitResult r = fit(model, train, valid, o);
  ASSERT_EQ(r.history.size(), 4u);
  EXPECT_GT(r.best().metric("valid_accuracy"), 0.95);
  EXPECT_LT(r.history.back().metric("train_loss"), r.history.front().metric("train_loss"));
  EXPECT_EQ(r.step, 4 * 16);
  // restore_best: the model holds the best epoch's weights.
  const EvalResult v = evaluate(model, valid);
  EXPECT_DOUBLE_EQ(v.accuracy, r.best().metric("valid_accuracy"));
  EXPECT_NEAR(v.loss, r.best().metric("valid_loss"), 1e-6);
  // The events: one begin and end, a step per batch, an evaluation and an epoch end per epoch.
  EXPECT_EQ(rep.begins, 1);
  EXPECT_EQ(rep.ends, 1);
  EXPECT_EQ(rep.steps, 4 * 16);
  EXPECT_EQ(rep.evaluations, 4);
  EXPECT_EQ(rep.epochs, (std::vector<Index>{1, 2, 3, 4}));
  EXPECT_EQ(rep.begin.total_steps, 64);
  EXPECT_EQ(rep.last_step.step, 64);
  EXPECT_EQ(rep.last_step.batch, 16);
  EXPECT_DOUBLE_EQ(rep.last_step.eta_seconds, 0.0);
  EXPECT_EQ(rep.summary.best_epoch, r.best_epoch);
  EXPECT_EQ(rep.summary.monitor, "valid_accuracy");
  EXPECT_NE(rep.last_details.find("true\\pred"), std::string::npos);  // the confusion matrix
  std::vector<std::string> names;
  for (const auto& [name, value] : r.history[0].metrics) names.push_back(name);
  EXPECT_EQ(names, (std::vector<std::string>{"train_loss", "train_accuracy", "train_macro_f1", "valid_loss",
                                             "valid_accuracy", "valid_macro_f1"}));
}

TEST(Fit, WritesTheRunFolderWithOneCurrentCheckpoint) {
  const fs::path dir = fresh_dir("folder");
  const data::Batcher train = synthetic(64, 3, 16, true), valid = synthetic(32, 4, 16, false);
  Model model(small_model());
  FitOptions o = fast_options(2);
  o.run_dir = dir;
  o.config.model = io::options_to_json(model.options);
  o.config.labels = {"no", "yes"};
  o.config.max_length = 16;
  o.config.truncation = "head_tail";
  int tokenizer_saves = 0;
  o.save_tokenizer = [&](const fs::path& d) {
    ++tokenizer_saves;
    std::ofstream(d / "vocab.txt") << "[PAD]\n[UNK]\n";
  };
  const FitResult r = fit(model, train, valid, o);
  const RunFolder run{dir};
  EXPECT_EQ(tokenizer_saves, 1);
  EXPECT_TRUE(fs::exists(run.vocab()));
  const RunConfig c = load_run_config(run.config());
  EXPECT_EQ(c.labels, (std::vector<std::string>{"no", "yes"}));
  EXPECT_EQ(c.truncation, "head_tail");
  EXPECT_EQ(model_options<Model::Options>(c).encoder.layer.d_model, 16);
  const std::vector<EpochRecord> csv = read_metrics_csv(run.metrics());
  ASSERT_EQ(csv.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(csv[i].epoch, r.history[i].epoch);
    EXPECT_DOUBLE_EQ(csv[i].metric("valid_loss"), r.history[i].metric("valid_loss"));
    EXPECT_EQ(csv[i].best, r.history[i].best);
  }
  // One checkpoint, the last epoch's, current and verified; the first was removed once the second was current.
  Index epoch = 0;
  const CheckpointFiles current = current_checkpoint(run, &epoch);
  EXPECT_EQ(epoch, 2);
  EXPECT_EQ(fs::weakly_canonical(current.folder), fs::weakly_canonical(run.checkpoint(2)));
  EXPECT_FALSE(fs::exists(run.checkpoint(1)));
  for (const fs::path& p : {run.model(), current.model(), current.optimizer(), current.trainer_state()})
    EXPECT_TRUE(fs::exists(p)) << p;
  for (const auto& entry : fs::directory_iterator(dir.parent_path()))  // no staging folder left behind
    EXPECT_EQ(entry.path().filename().string().find("fit_test_folder."), std::string::npos) << entry.path();
  // model.safetensors holds the best epoch, which restore_best loaded.
  Model loaded(small_model());
  io::load_state_dict(loaded, run.model());
  const auto a = weights(model), b = weights(loaded);
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(a[i].equal(b[i]));
  EXPECT_EQ(io::read_safetensors(run.model()).metadata().at("epoch"), std::to_string(r.best_epoch));
  // A damaged checkpoint is refused with what is wrong.
  std::ofstream(current.optimizer(), std::ios::app) << "x";
  EXPECT_THROW_WITH(current_checkpoint(run), IoError, {"is damaged", "optimizer.safetensors"});
}

TEST(Fit, ResumedRunEqualsUninterruptedRun) {
  // Dropout on and gradient accumulation with a short last group: the checkpoint must carry the dropout
  // generators, the optimizer state and the schedule position.
  const data::Batcher train = synthetic(120, 5, 16, true), valid = synthetic(48, 6, 16, false);
  FitOptions o = fast_options(4);
  o.accumulation_steps = 3;  // 8 batches per epoch: groups of 3, 3, 2
  o.restore_best = false;

  Model straight(small_model(0.2f));
  const fs::path straight_dir = fresh_dir("straight");
  o.run_dir = straight_dir;
  const FitResult full = fit(straight, train, valid, o);

  o.run_dir = fresh_dir("interrupted");
  RecordingReporter crash;
  crash.crash_after = 2;
  o.reporter = &crash;
  {
    Model first(small_model(0.2f));
    EXPECT_THROW(fit(first, train, valid, o), std::runtime_error);
  }
  Model resumed(small_model(0.2f));  // fresh weights: everything must come from the run folder
  RecordingReporter rep;
  o.reporter = &rep;
  o.resume = true;
  const FitResult second = fit(resumed, train, valid, o);
  EXPECT_TRUE(rep.begin.resumed);
  EXPECT_EQ(rep.begin.first_epoch, 3);
  EXPECT_EQ(rep.epochs, (std::vector<Index>{3, 4}));

  ASSERT_EQ(second.history.size(), full.history.size());
  for (std::size_t i = 0; i < full.history.size(); ++i) {
    EXPECT_EQ(second.history[i].metric("train_loss"), full.history[i].metric("train_loss")) << "epoch " << i + 1;
    EXPECT_EQ(second.history[i].metric("valid_loss"), full.history[i].metric("valid_loss")) << "epoch " << i + 1;
    EXPECT_EQ(second.history[i].lr, full.history[i].lr) << "epoch " << i + 1;
    EXPECT_EQ(second.history[i].best, full.history[i].best) << "epoch " << i + 1;
  }
  EXPECT_EQ(second.step, full.step);
  EXPECT_EQ(second.best_epoch, full.best_epoch);
  const auto a = weights(straight), b = weights(resumed);
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(a[i].equal(b[i])) << "parameter " << i;
  EXPECT_EQ(read_file(RunFolder{o.run_dir}.model()), read_file(RunFolder{straight_dir}.model()));
  EXPECT_EQ(read_file(CheckpointFiles{RunFolder{o.run_dir}.checkpoint(4)}.optimizer()),
            read_file(CheckpointFiles{RunFolder{straight_dir}.checkpoint(4)}.optimizer()));
  EXPECT_EQ(read_metrics_csv(RunFolder{o.run_dir}.metrics()).size(), 4u);
}

TEST(Fit, ResumingARunThatCheckpointedNothingStartsIt) {
  const data::Batcher train = synthetic(32, 1, 16, true), valid = synthetic(16, 2, 16, false);
  Model model(small_model());
  FitOptions o = fast_options(1);
  o.run_dir = fresh_dir("empty");
  o.resume = true;
  RecordingReporter rep;
  o.reporter = &rep;
  EXPECT_EQ(fit(model, train, valid, o).history.size(), 1u);
  EXPECT_FALSE(rep.begin.resumed);
  EXPECT_EQ(rep.begin.first_epoch, 1);
}

TEST(Fit, AFolderHoldingARunOrOtherFilesIsNotOverwritten) {
  const data::Batcher train = synthetic(32, 1, 16, true), valid = synthetic(16, 2, 16, false);
  const fs::path dir = fresh_dir("guarded");
  FitOptions o = fast_options(1);
  o.run_dir = dir;
  Model model(small_model());
  fit(model, train, valid, o);
  const std::string good = read_file(RunFolder{dir}.model());
  EXPECT_THROW_WITH(fit(model, train, valid, o), IoError, {"holds a run", "resume it, or overwrite it"});
  // overwrite: a run that fails before its first checkpoint leaves the old run as it was.
  o.overwrite = true;
  o.lr = 1e30;  // the first optimizer step meets a non-finite gradient
  o.max_grad_norm = 0;
  EXPECT_THROW(fit(model, train, valid, o), ValueError);
  EXPECT_EQ(read_file(RunFolder{dir}.model()), good);
  EXPECT_NO_THROW(current_checkpoint(RunFolder{dir}));
  for (const auto& entry : fs::directory_iterator(dir.parent_path()))
    EXPECT_EQ(entry.path().filename().string().find("fit_test_guarded."), std::string::npos) << entry.path();
  // overwrite that succeeds replaces it.
  o.lr = 1e-2;
  Model other(small_model(0.0f));
  fit(other, train, valid, o);
  EXPECT_NE(read_file(RunFolder{dir}.model()), good);
  // A folder of other files is refused, and left alone.
  const fs::path mine = fresh_dir("mine");
  fs::create_directories(mine);
  std::ofstream(mine / "notes.txt") << "mine";
  o.run_dir = mine;
  o.overwrite = false;
  EXPECT_THROW_WITH(fit(model, train, valid, o), IoError, {"not a run's", "refusing to write"});
  EXPECT_EQ(read_file(mine / "notes.txt"), "mine");
  // Also when one of its files has a run file's name, and with overwrite: the folder is never replaced.
  std::ofstream(mine / "config.json") << "{\"theme\": \"dark\"}";
  o.overwrite = true;
  EXPECT_THROW_WITH(fit(model, train, valid, o), IoError, {"not a run's", "refusing to write"});
  EXPECT_EQ(read_file(mine / "notes.txt"), "mine");
  EXPECT_EQ(read_file(mine / "config.json"), "{\"theme\": \"dark\"}");
  o.overwrite = false;
  // A fresh run that fails leaves no folder behind.
  const fs::path failed = fresh_dir("failed");
  o.run_dir = failed;
  o.lr = 1e30;
  EXPECT_THROW(fit(model, train, valid, o), ValueError);
  EXPECT_FALSE(fs::exists(failed));
}

TEST(Fit, ResumeChecksTheRunsSettings) {
  const data::Batcher train = synthetic(32, 1, 16, true), valid = synthetic(16, 2, 16, false);
  FitOptions o = fast_options(2);
  o.run_dir = fresh_dir("settings");
  o.fingerprint = {{"train_data", "abc"}};
  RecordingReporter crash;
  crash.crash_after = 1;
  o.reporter = &crash;
  Model model(small_model());
  EXPECT_THROW(fit(model, train, valid, o), std::runtime_error);
  o.reporter = nullptr;
  o.resume = true;
  o.lr = 5e-3;
  o.fingerprint = {{"train_data", "abd"}};
  EXPECT_THROW_WITH(fit(model, train, valid, o), ValueError,
                    {"settings of the run", "lr was 0.01, is now 0.005", "train_data was \"abc\", is now \"abd\""});
  o.fingerprint = {{"train_data", "abc"}};
  o.allow_changes = {"lr"};
  EXPECT_EQ(fit(model, train, valid, o).history.size(), 2u);
  const nlohmann::json state = nlohmann::json::parse(
      read_file(CheckpointFiles{RunFolder{o.run_dir}.checkpoint(2)}.trainer_state()));
  ASSERT_EQ(state.at("changes").size(), 1u);
  EXPECT_EQ(state.at("changes")[0].at("key"), "lr");
  EXPECT_EQ(state.at("changes")[0].at("epoch"), 1);
}

TEST(Fit, EarlyStoppingAfterPatienceEpochsWithoutImprovement) {
  // lr 0: every epoch gives the same validation result, so only epoch 1 improves.
  const data::Batcher train = synthetic(32, 1, 16, true), valid = synthetic(16, 2, 16, false);
  Model model(small_model());
  FitOptions o = fast_options(10);
  o.lr = 0;
  o.patience = 2;
  o.run_dir = fresh_dir("early");
  const FitResult r = fit(model, train, valid, o);
  EXPECT_TRUE(r.stopped_early);
  EXPECT_EQ(r.history.size(), 3u);
  EXPECT_EQ(r.best_epoch, 1);
  EXPECT_TRUE(r.history[0].best);
  EXPECT_FALSE(r.history[1].best);
  EXPECT_FALSE(r.history[2].best);
  // A resumed run that stopped early trains no further.
  o.resume = true;
  Model again(small_model());
  const FitResult r2 = fit(again, train, valid, o);
  EXPECT_EQ(r2.history.size(), 3u);
  EXPECT_TRUE(r2.stopped_early);
}

TEST(Fit, NoEarlyStoppingWhenPatienceIsZero) {
  const data::Batcher train = synthetic(32, 1, 16, true), valid = synthetic(16, 2, 16, false);
  Model model(small_model());
  FitOptions o = fast_options(4);
  o.lr = 0;
  const FitResult r = fit(model, train, valid, o);
  EXPECT_FALSE(r.stopped_early);
  EXPECT_EQ(r.history.size(), 4u);
}

TEST(Fit, GradientAccumulationEqualsTheLargerBatch) {
  // Two micro-batches of 8 average to the mean loss of their 16 examples: the same updates as batches of 16
  // (same shuffled order: the permutation depends on the seed and the epoch only). No dropout, no clipping.
  const data::Batcher valid = synthetic(16, 2, 16, false);
  FitOptions o = fast_options(2);
  o.max_grad_norm = 0;
  o.restore_best = false;
  Model big(small_model(0.0f)), accumulated(small_model(0.0f));
  const FitResult big_result = fit(big, synthetic(64, 1, 16, true), valid, o);
  o.accumulation_steps = 2;
  const FitResult r = fit(accumulated, synthetic(64, 1, 8, true), valid, o);
  EXPECT_EQ(r.step, 8);
  const auto a = big.named_parameters(), b = accumulated.named_parameters();
  for (std::size_t i = 0; i < a.size(); ++i) {
    // The key part of in_proj_bias has a zero gradient in exact arithmetic (softmax ignores a shift of every
    // score of a row), so its float gradient is rounding noise that Adam's m / sqrt(v) scales up to +-lr.
    if (a[i].first == "encoder.layers.0.self_attn.in_proj_bias") continue;
    EXPECT_TRUE(a[i].second.value().allclose(b[i].second.value(), 1e-4f, 1e-5f)) << a[i].first;
  }
  EXPECT_NEAR(r.history.back().metric("train_loss"), big_result.history.back().metric("train_loss"), 1e-5);
}

TEST(Fit, BadOptionsThrow) {
  const data::Batcher train = synthetic(32, 1, 16, true), valid = synthetic(16, 2, 16, false);
  const data::Batcher empty({}, {}, data::Batcher::Options());
  Model model(small_model());
  FitOptions o = fast_options(1);
  o.accumulation_steps = 0;
  EXPECT_THROW_WITH(fit(model, train, valid, o), ValueError, {"fit", "accumulation_steps is 0"});
  o = fast_options(0);
  EXPECT_THROW_WITH(fit(model, train, valid, o), ValueError, {"fit", "epochs is 0", "expected >= 1"});
  o = fast_options(std::numeric_limits<Index>::max());
  EXPECT_THROW_WITH(fit(model, train, valid, o), ValueError, {"fit", "the step count overflows"});
  o = fast_options(1);
  o.monitor = "recall";
  EXPECT_THROW_WITH(fit(model, train, valid, o), ValueError, {"fit", "monitor is \"recall\"", "\"accuracy\""});
  o = fast_options(1);
  o.lr = -1;
  EXPECT_THROW_WITH(fit(model, train, valid, o), ValueError, {"fit", "lr is -1"});
  o = fast_options(1);
  o.warmup_fraction = 2;
  EXPECT_THROW_WITH(fit(model, train, valid, o), ValueError, {"fit", "warmup_fraction is 2"});
  o = fast_options(1);
  o.patience = -1;
  EXPECT_THROW_WITH(fit(model, train, valid, o), ValueError, {"fit", "patience is -1"});
  o = fast_options(1);
  o.max_grad_norm = -1;
  EXPECT_THROW_WITH(fit(model, train, valid, o), ValueError, {"fit", "max_grad_norm is -1"});
  o = fast_options(1);
  EXPECT_THROW_WITH(fit(model, empty, valid, o), ValueError, {"fit", "training data holds no examples"});
  EXPECT_THROW_WITH(fit(model, train, empty, o), ValueError, {"fit", "validation data holds no examples"});
  o.resume = true;
  EXPECT_THROW_WITH(fit(model, train, valid, o), ValueError, {"fit", "resume", "run_dir is empty"});
}

TEST(Fit, TheLargestStepCountsScheduleWithoutOverflow) {
  // One optimizer step per epoch (4 batches, accumulation 4) and the largest epoch count: epochs * steps is the
  // largest Index. Its warmup (all of it), rounded in double, lies past the largest Index: the schedule must clamp
  // it rather than convert it (a negative warmup_steps).
  const data::Batcher train = synthetic(16, 1, 4, true), valid = synthetic(8, 2, 8, false);
  for (const ScheduleKind kind : {ScheduleKind::linear, ScheduleKind::cosine}) {
    FitOptions o = fast_options(std::numeric_limits<Index>::max());
    o.accumulation_steps = 4;
    o.schedule = kind;
    o.warmup_fraction = 1.0;
    RecordingReporter stop;
    stop.crash_after = 1;  // one epoch is enough
    o.reporter = &stop;
    Model model(small_model());
    EXPECT_THROW_WITH(fit(model, train, valid, o), std::runtime_error, {"simulated crash"});
    EXPECT_EQ(stop.begin.total_steps, std::numeric_limits<Index>::max());
    EXPECT_GE(stop.last_step.eta_seconds, 0.0);
  }
}

TEST(Fit, CosineAndConstantSchedulesSetTheLearningRate) {
  const data::Batcher train = synthetic(32, 1, 16, true), valid = synthetic(16, 2, 16, false);
  FitOptions o = fast_options(2);
  o.warmup_steps = 0;
  o.schedule = ScheduleKind::constant;
  Model a(small_model());
  EXPECT_DOUBLE_EQ(fit(a, train, valid, o).history.back().lr, 1e-2);
  o.schedule = ScheduleKind::cosine;
  Model b(small_model());
  const FitResult r = fit(b, train, valid, o);
  // 4 steps; the last (step index 3) has progress 3/4: lr (1 + cos(3 pi / 4)) / 2.
  EXPECT_NEAR(r.history.back().lr, 1e-2 * (1 + std::cos(3.14159265358979 * 0.75)) / 2, 1e-9);
}

namespace {

/// A model written for this test alone: the classifier with a dropout of its own on the pooled logits. Nothing
/// outside this struct names its dropout: the module tree finds its generator for checkpoints.
struct ExtraDropout : nn::Module<ExtraDropout, float> {
  explicit ExtraDropout(const Model::Options& o) : inner(o) {
    nn::Dropout<float>::Options d;
    d.p = 0.3f;
    d.seed = 99;
    extra = nn::Dropout<float>(d);
  }
  Var<float> forward(const Tensor<std::int64_t>& ids, const Tensor<bool>& mask = {}) {
    return extra.forward(inner.forward(ids, mask));
  }
  template <class V>
  void visit(V& v) {
    v.module("", inner);
    v.module("extra", extra);
  }
  Model inner;
  nn::Dropout<float> extra;
};

/// A task of this test: regress the label (0 or 1) from the first logit, mean squared error; metrics loss and
/// mean absolute error. fit() runs it unchanged.
struct RegressionTask {
  using Batch = data::Batch;
  std::vector<std::string> metric_names() const { return {"loss", "mae"}; }
  std::string default_monitor() const { return "mae"; }
  bool lower_is_better(const std::string&) const { return true; }  // both are errors
  MetricSums new_sums() const { return MetricSums(3, 0.0); }
  template <class M>
  Var<float> train_loss(M& model, const Batch& b, const BatchContext&, MetricSums& sums) const {
    const Var<float> y = select(model.forward(b.ids, b.padding_mask), 1, 0);  // (B)
    const Var<float> err = sub(y, Var<float>(b.labels.cast<float>()));
    const Var<float> loss = mean(mul(err, err));
    add(sums, err.value(), loss.item());
    return loss;
  }
  template <class M>
  void evaluate(M& model, const Batch& b, const BatchContext& c, MetricSums& sums) const {
    NoGradGuard no_grad;
    train_loss(model, b, c, sums);
  }
  std::vector<double> values(const MetricSums& s) const { return {s[0] / s[2], s[1] / s[2]}; }
  std::string details(const MetricSums&) const { return ""; }
  Index tokens(const Batch& b) const { return b.tokens; }
  static void add(MetricSums& sums, const Tensor<float>& err, float mean_loss) {
    sums[0] += static_cast<double>(mean_loss) * static_cast<double>(err.numel());
    for (Index i = 0; i < err.numel(); ++i) sums[1] += std::abs(static_cast<double>(err[i]));
    sums[2] += static_cast<double>(err.numel());
  }
};

}  // namespace

TEST(Fit, AModelWithADropoutOfItsOwnResumesBitExactly) {
  const data::Batcher train = synthetic(64, 8, 16, true), valid = synthetic(32, 9, 16, false);
  FitOptions o = fast_options(3);
  o.restore_best = false;
  o.run_dir = fresh_dir("extra_straight");
  ExtraDropout straight(small_model(0.1f));
  const FitResult full = fit(straight, train, valid, o);
  o.run_dir = fresh_dir("extra_resumed");
  RecordingReporter crash;
  crash.crash_after = 1;
  o.reporter = &crash;
  {
    ExtraDropout first(small_model(0.1f));
    EXPECT_THROW(fit(first, train, valid, o), std::runtime_error);
  }
  o.reporter = nullptr;
  o.resume = true;
  ExtraDropout resumed(small_model(0.1f));
  resumed.extra.gen.discard(12345);  // a generator state only the checkpoint can put right
  const FitResult second = fit(resumed, train, valid, o);
  ASSERT_EQ(second.history.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i)
    EXPECT_EQ(second.history[i].metric("train_loss"), full.history[i].metric("train_loss")) << "epoch " << i + 1;
  EXPECT_TRUE(straight.extra.gen == resumed.extra.gen);
  const auto a = straight.named_parameters(), b = resumed.named_parameters();
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(a[i].second.value().equal(b[i].second.value())) << a[i].first;
  const nlohmann::json state = nlohmann::json::parse(
      read_file(CheckpointFiles{RunFolder{o.run_dir}.checkpoint(3)}.trainer_state()));
  EXPECT_TRUE(state.at("generators").contains("extra"));
}

TEST(Fit, RunsATaskItDoesNotKnow) {
  const data::Batcher train = synthetic(128, 10, 16, true), valid = synthetic(64, 11, 32, false);
  auto mo = small_model(0.0f);
  mo.head.num_classes = 1;
  Model model(mo);
  FitOptions o = fast_options(4);
  const FitResult r = fit(model, RegressionTask(), train, valid, o);
  ASSERT_EQ(r.history.size(), 4u);
  EXPECT_FALSE(std::isnan(r.history[0].metric("valid_mae")));
  EXPECT_LT(r.history.back().metric("train_loss"), r.history.front().metric("train_loss"));
  // The best epoch is the one with the lowest mean absolute error: the task says lower is better.
  for (const EpochRecord& e : r.history) EXPECT_GE(e.metric("valid_mae"), r.best().metric("valid_mae"));
  o.monitor = "loss";
  EXPECT_EQ(fit(model, RegressionTask(), train, valid, o).history.size(), 4u);
}

}  // namespace fit_test
