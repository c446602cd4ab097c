#include "eigenformer/train/fit.hpp"

#include <cstdint>
#include <filesystem>
#include <fstream>
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
  o.d_model = 16;
  o.nhead = 2;
  o.num_layers = 1;
  o.dim_feedforward = 32;
  o.dropout = dropout;
  o.positional = nn::PositionalKind::learned;
  o.pooling = nn::Pooling::mean;
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
  void on_epoch_end(const EpochRecord& r, const EvalResult&) override {
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
  EXPECT_GT(r.best().valid_accuracy, 0.95);
  EXPECT_LT(r.history.back().train_loss, r.history.front().train_loss);
  EXPECT_EQ(r.step, 4 * 16);
  // restore_best: the model holds the best epoch's weights.
  const EvalResult v = evaluate(model, valid);
  EXPECT_DOUBLE_EQ(v.accuracy, r.best().valid_accuracy);
  EXPECT_NEAR(v.loss, r.best().valid_loss, 1e-6);
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
}

TEST(Fit, WritesTheRunFolder) {
  const fs::path dir = fresh_dir("folder");
  const data::Batcher train = synthetic(64, 3, 16, true), valid = synthetic(32, 4, 16, false);
  Model model(small_model());
  FitOptions o = fast_options(2);
  o.run_dir = dir;
  o.config.model = encoder_classifier_config<float>(model.options);
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
  EXPECT_EQ(encoder_classifier_options<float>(c.model).d_model, 16);
  const std::vector<EpochRecord> csv = read_metrics_csv(run.metrics());
  ASSERT_EQ(csv.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(csv[i].epoch, r.history[i].epoch);
    EXPECT_DOUBLE_EQ(csv[i].valid_loss, r.history[i].valid_loss);
    EXPECT_EQ(csv[i].best, r.history[i].best);
  }
  for (const fs::path& p : {run.model(), run.last_model(), run.optimizer(), run.trainer_state()})
    EXPECT_TRUE(fs::exists(p)) << p;
  // model.safetensors holds the best epoch, which restore_best loaded.
  Model loaded(small_model());
  io::load_state_dict(loaded, run.model());
  const auto a = weights(model), b = weights(loaded);
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(a[i].equal(b[i]));
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
    EXPECT_EQ(second.history[i].train_loss, full.history[i].train_loss) << "epoch " << i + 1;
    EXPECT_EQ(second.history[i].valid_loss, full.history[i].valid_loss) << "epoch " << i + 1;
    EXPECT_EQ(second.history[i].lr, full.history[i].lr) << "epoch " << i + 1;
    EXPECT_EQ(second.history[i].best, full.history[i].best) << "epoch " << i + 1;
  }
  EXPECT_EQ(second.step, full.step);
  EXPECT_EQ(second.best_epoch, full.best_epoch);
  const auto a = weights(straight), b = weights(resumed);
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(a[i].equal(b[i])) << "parameter " << i;
  EXPECT_EQ(read_file(RunFolder{o.run_dir}.model()), read_file(RunFolder{straight_dir}.model()));
  EXPECT_EQ(read_file(RunFolder{o.run_dir}.optimizer()), read_file(RunFolder{straight_dir}.optimizer()));
  EXPECT_EQ(read_metrics_csv(RunFolder{o.run_dir}.metrics()).size(), 4u);
}

TEST(Fit, ResumeWithoutCheckpointThrows) {
  const data::Batcher train = synthetic(32, 1, 16, true), valid = synthetic(16, 2, 16, false);
  Model model(small_model());
  FitOptions o = fast_options(1);
  o.run_dir = fresh_dir("empty");
  o.resume = true;
  EXPECT_THROW_WITH(fit(model, train, valid, o), IoError, {"fit: resume", "trainer_state.json", "does not exist"});
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
  EXPECT_NEAR(r.history.back().train_loss, big_result.history.back().train_loss, 1e-5);
}

TEST(Fit, BadOptionsThrow) {
  const data::Batcher train = synthetic(32, 1, 16, true), valid = synthetic(16, 2, 16, false);
  const data::Batcher empty({}, {}, data::Batcher::Options());
  Model model(small_model());
  FitOptions o = fast_options(1);
  o.accumulation_steps = 0;
  EXPECT_THROW_WITH(fit(model, train, valid, o), ValueError, {"fit", "accumulation_steps is 0"});
  o = fast_options(-1);
  EXPECT_THROW_WITH(fit(model, train, valid, o), ValueError, {"fit", "epochs is -1"});
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
  EXPECT_THROW_WITH(fit(model, empty, valid, o), ValueError, {"fit", "training batcher holds no examples"});
  EXPECT_THROW_WITH(fit(model, train, empty, o), ValueError, {"fit", "validation batcher holds no examples"});
  o.resume = true;
  EXPECT_THROW_WITH(fit(model, train, valid, o), ValueError, {"fit", "resume", "run_dir is empty"});
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

}  // namespace fit_test
