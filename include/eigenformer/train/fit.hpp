// fit(): the training loop (the role of Hugging Face's Trainer.train / Keras' Model.fit), for any model and any
// task (train/task.hpp: how a batch becomes a loss and which metrics it accumulates): AdamW, a warmup + decay
// learning-rate schedule, gradient accumulation, hooks after backward (gradient all-reduce), clipping, validation
// every epoch, early stopping, the best epoch's weights kept, and a run folder checkpointed every epoch as one unit
// (train/checkpoint.hpp), so that a resumed run ends exactly where an uninterrupted one would.
//
// The run folder: a new run is written into a staging folder beside it and takes its place only once its first
// epoch is checkpointed, so a run that fails never destroys what the folder held; a folder that holds a run is
// continued (resume) or replaced (overwrite) only when asked, and a non-empty folder that holds no run is refused.
//
// Random draws per example (dropout masks, masking) are keyed by the examples' indices in the data source
// (ExecutionContext::example_keys), so a data-parallel run (FitOptions::processes, train/process_group.hpp) on N
// ranks with batches of N * b examples, b per rank, trains as one process with batches of N * b: rank 0 reads and
// writes the run folder and broadcasts the start (weights, buffers, optimizer and trainer state), every rank
// trains on its share of each batch, gradients and metric sums are summed across ranks. The ranks' calls must
// match: an exception on one rank leaves the others waiting in a collective, so a program ends every rank when one
// fails (dist::Environment::abort).
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "eigenformer/core/fields.hpp"
#include "eigenformer/data/batcher.hpp"
#include "eigenformer/io/state_dict.hpp"
#include "eigenformer/ops/elementwise.hpp"
#include "eigenformer/optim/adam.hpp"
#include "eigenformer/optim/clip_grad.hpp"
#include "eigenformer/optim/lr_schedule.hpp"
#include "eigenformer/train/checkpoint.hpp"
#include "eigenformer/train/classification.hpp"
#include "eigenformer/train/evaluate.hpp"
#include "eigenformer/train/generator_state.hpp"
#include "eigenformer/train/history.hpp"
#include "eigenformer/train/process_group.hpp"
#include "eigenformer/train/reporter.hpp"
#include "eigenformer/train/run_config.hpp"
#include "eigenformer/train/task.hpp"

namespace eigenformer::train {

/// The learning-rate schedule over optimizer steps (optim/lr_schedule.hpp).
enum class ScheduleKind { linear, cosine, constant };

inline constexpr EnumNames<ScheduleKind, 3> enum_names(ScheduleKind) {
  return {{{ScheduleKind::linear, "linear"}, {ScheduleKind::cosine, "cosine"}, {ScheduleKind::constant, "constant"}}};
}

/// fit()'s hyperparameters; the defaults are those of the reference PyTorch recipe (AdamW 1e-3, 10% warmup then
/// linear decay, clipping at norm 1).
struct FitOptions {
  Index epochs = 5;
  double lr = 1e-3;            // peak learning rate
  double weight_decay = 0.01;  // AdamW's decoupled weight decay
  ScheduleKind schedule = ScheduleKind::linear;
  double warmup_fraction = 0.1;  // warmup steps as a fraction of all steps, used when warmup_steps < 0
  Index warmup_steps = -1;
  Index accumulation_steps = 1;  // micro-batches per optimizer step
  double max_grad_norm = 1.0;    // clip the global gradient norm to this; 0 = no clipping
  Index patience = 0;            // stop after this many epochs without improvement; 0 = never stop early
  /// The validation metric that picks the best epoch and drives early stopping, as the task names it ("accuracy",
  /// "loss", "perplexity"); empty: the task's default. Ties go to the lower validation loss.
  std::string monitor;
  bool restore_best = true;  // at the end, load the best epoch's weights into the model

  /// Where the run is written (see checkpoint.hpp); empty = write nothing.
  std::filesystem::path run_dir;
  /// Continue the run in run_dir from its last checkpoint (a run with no checkpoint yet starts from epoch 1).
  bool resume = false;
  /// Replace a run that run_dir holds (the old one stays until the new one has checkpointed its first epoch).
  bool overwrite = false;
  /// The settings a resumed run may change ("lr", "epochs", or keys of fingerprint); any other change of a
  /// setting is an error. Changes made are recorded in the run's trainer state.
  std::vector<std::string> allow_changes;
  RunConfig config;  // written to run_dir/config.json
  /// What else must match when a run is resumed, as the caller describes it (data files by file_fingerprint, the
  /// tokenizer, ...): compared key by key with what the run recorded.
  nlohmann::json fingerprint = nlohmann::json::object();
  /// Called with the run folder when a new run starts, to write the tokenizer's files (vocab.txt).
  std::function<void(const std::filesystem::path&)> save_tokenizer;
  /// Receives the progress events; nullptr = silent.
  Reporter* reporter = nullptr;
  /// Run after each optimizer step's backward passes and before clipping and the step (a gradient all-reduce).
  std::vector<std::function<void()>> after_backward;
  /// The processes of a data-parallel run (see the top of this file); null or one process: this process alone.
  /// The data sources are the whole data, the same on every rank; batch sizes are global.
  ProcessGroup* processes = nullptr;
};

/// What fit() returns.
struct FitResult {
  std::vector<EpochRecord> history;  // every epoch of the run, resumed ones included
  Index best_epoch = 0;              // 1-based; 0 when no epoch ran
  Index step = 0;                    // optimizer steps completed
  bool stopped_early = false;
  double seconds = 0;  // wall time of this fit() call

  /// The best epoch's record; throws ValueError when no epoch ran.
  const EpochRecord& best() const {
    if (best_epoch < 1 || best_epoch > static_cast<Index>(history.size()))
      throw ValueError("FitResult::best: no epoch ran");
    return history[static_cast<std::size_t>(best_epoch - 1)];
  }
};

namespace detail {

using eigenformer::detail::concat;

template <class Data>
void check_fit_options(const FitOptions& o, const Data& train, const Data& valid, const std::vector<std::string>& metrics,
                       const std::string& monitor) {
  constexpr const char* fn = "fit";
  if (o.epochs < 1) throw ValueError(concat(fn, ": epochs is ", o.epochs, ", expected >= 1"));
  if (!(o.lr >= 0) || !std::isfinite(o.lr))
    throw ValueError(concat(fn, ": lr is ", o.lr, ", expected a finite value >= 0"));
  if (!(o.weight_decay >= 0) || !std::isfinite(o.weight_decay))
    throw ValueError(concat(fn, ": weight_decay is ", o.weight_decay, ", expected a finite value >= 0"));
  if (!(o.warmup_fraction >= 0 && o.warmup_fraction <= 1))
    throw ValueError(concat(fn, ": warmup_fraction is ", o.warmup_fraction, ", expected 0 <= warmup_fraction <= 1"));
  if (o.accumulation_steps < 1)
    throw ValueError(concat(fn, ": accumulation_steps is ", o.accumulation_steps, ", expected >= 1"));
  if (!(o.max_grad_norm >= 0) || !std::isfinite(o.max_grad_norm))
    throw ValueError(concat(fn, ": max_grad_norm is ", o.max_grad_norm, ", expected a finite value >= 0 (0 = off)"));
  if (o.patience < 0) throw ValueError(concat(fn, ": patience is ", o.patience, ", expected >= 0 (0 = off)"));
  if (train.size() == 0) throw ValueError(concat(fn, ": the training data holds no examples"));
  if (valid.size() == 0) throw ValueError(concat(fn, ": the validation data holds no examples"));
  if (o.resume && o.overwrite) throw ValueError(concat(fn, ": resume and overwrite are both set, expected one"));
  if ((o.resume || o.overwrite) && o.run_dir.empty())
    throw ValueError(concat(fn, ": ", o.resume ? "resume" : "overwrite", " is set but run_dir is empty"));
  if (std::find(metrics.begin(), metrics.end(), monitor) == metrics.end()) {
    std::string names;
    for (const std::string& m : metrics) names += (names.empty() ? "\"" : ", \"") + m + "\"";
    throw ValueError(concat(fn, ": monitor is \"", monitor, "\", expected one of the task's metrics ", names));
  }
}

template <class Task>
auto task_lower_is_better(const Task& task, const std::string& metric, int) -> decltype(task.lower_is_better(metric)) {
  return task.lower_is_better(metric);
}
template <class Task>
bool task_lower_is_better(const Task&, const std::string& metric, long) {
  return lower_is_better(metric);
}
/// Whether a smaller value of the task's metric is better: as the task says (lower_is_better(metric)), else by
/// the metric's name (train/task.hpp).
template <class Task>
bool task_lower_is_better(const Task& task, const std::string& metric) {
  return task_lower_is_better(task, metric, 0);
}

/// How many units (examples, predicted tokens) the task's mean training loss of a batch averages over, or -1 when
/// the task does not say (task.loss_units(batch, context); data-parallel runs need it).
template <class Task, class Batch>
auto task_loss_units(const Task& task, const Batch& batch, const BatchContext& context, int)
    -> decltype(static_cast<double>(task.loss_units(batch, context))) {
  return static_cast<double>(task.loss_units(batch, context));
}
template <class Task, class Batch>
double task_loss_units(const Task&, const Batch&, const BatchContext&, long) {
  return -1;
}

/// Sets the calling thread's example keys (ExecutionContext::example_keys) to a batch's rows for its lifetime.
class ExampleKeysScope {
 public:
  explicit ExampleKeysScope(const std::vector<Index>& rows)
      : keys_(rows.begin(), rows.end()), scope_(with_keys(keys_)) {}

 private:
  static ExecutionContext with_keys(const std::vector<std::int64_t>& keys) {
    ExecutionContext c = eigenformer::detail::execution_context();
    c.example_keys = keys.data();
    c.example_count = static_cast<std::int64_t>(keys.size());
    return c;
  }
  std::vector<std::int64_t> keys_;
  ExecutionScope scope_;
};

/// Rank root's weights, buffers and optimizer state on every rank of group.
template <class Model, class Optimizer>
void broadcast_training_state(ProcessGroup& group, Model& model, Optimizer& optimizer, int root) {
  for (auto& np : model.named_parameters()) {
    Var<typename Model::Scalar> p = np.second;
    group.broadcast(p.value(), root);
  }
  model.visit_buffers([&](const std::string&, auto& buffer, auto) { group.broadcast_any(buffer, root); });
  optimizer.visit_state([&](const std::string&, auto& state) { group.broadcast(state, root); });
}

/// The learning rate of each optimizer step.
inline std::function<double(Index)> make_schedule(const FitOptions& o, Index total_steps) {
  // warmup_fraction * total_steps, rounded; near the largest Index the double rounds past it, so clamp before the
  // conversion (which would overflow) rather than after.
  const double fraction_steps = std::round(o.warmup_fraction * static_cast<double>(total_steps));
  Index warmup = total_steps;
  if (o.warmup_steps >= 0)
    warmup = std::min(o.warmup_steps, total_steps);
  else if (fraction_steps < static_cast<double>(total_steps))
    warmup = static_cast<Index>(fraction_steps);
  switch (o.schedule) {
    case ScheduleKind::cosine: {
      const optim::CosineSchedule<double> s(o.lr, warmup, total_steps);
      return [s](Index step) { return s(step); };
    }
    case ScheduleKind::constant: {
      const optim::ConstantSchedule<double> s(o.lr);
      return [s](Index step) { return s(step); };
    }
    case ScheduleKind::linear:
    default: {
      const optim::LinearSchedule<double> s(o.lr, warmup, total_steps);
      return [s](Index step) { return s(step); };
    }
  }
}

/// The loop's bookkeeping that a checkpoint keeps besides weights and optimizer state.
struct FitState {
  Index epochs_done = 0;
  Index best_epoch = 0;
  double best_metric = std::numeric_limits<double>::quiet_NaN();
  double best_loss = std::numeric_limits<double>::infinity();
  Index epochs_without_improvement = 0;
  bool stopped_early = false;
  std::vector<EpochRecord> history;
  nlohmann::json fingerprint = nlohmann::json::object();
  nlohmann::json changes = nlohmann::json::array();  // settings changed on resume: epoch, key, from, to
};

/// True when a validation result beats the best so far: the monitored metric, ties to the lower loss.
inline bool improves(bool lower_better, double metric, double loss, double best_metric, double best_loss) {
  if (std::isnan(best_metric)) return true;
  if (metric != best_metric) return lower_better ? metric < best_metric : metric > best_metric;
  return loss < best_loss;
}

inline nlohmann::json fit_state_to_json(const FitState& s, Index step, const nlohmann::json& generators) {
  nlohmann::json history = nlohmann::json::array();
  for (const EpochRecord& r : s.history) history.push_back(epoch_record_to_json(r));
  return {{"format", 2},
          {"epochs_done", s.epochs_done},
          {"step", step},
          {"best_epoch", s.best_epoch},
          {"best_metric", json_number(s.best_metric)},
          {"best_loss", std::isfinite(s.best_loss) ? nlohmann::json(s.best_loss) : nlohmann::json()},
          {"epochs_without_improvement", s.epochs_without_improvement},
          {"stopped_early", s.stopped_early},
          {"generators", generators},
          {"fingerprint", s.fingerprint},
          {"changes", s.changes},
          {"history", history}};
}

inline FitState fit_state_from_json(const nlohmann::json& j, const std::filesystem::path& path) {
  try {
    if (j.at("format").get<int>() != 2)
      throw ValueError(concat("format is ", j.at("format").dump(), ", expected 2"));
    FitState s;
    s.epochs_done = j.at("epochs_done").get<Index>();
    s.best_epoch = j.at("best_epoch").get<Index>();
    s.best_metric = number_from_json(j.at("best_metric"));
    s.best_loss =
        j.at("best_loss").is_null() ? std::numeric_limits<double>::infinity() : j.at("best_loss").get<double>();
    s.epochs_without_improvement = j.at("epochs_without_improvement").get<Index>();
    s.stopped_early = j.at("stopped_early").get<bool>();
    s.fingerprint = j.at("fingerprint");
    s.changes = j.at("changes");
    for (const nlohmann::json& r : j.at("history")) s.history.push_back(epoch_record_from_json(r));
    if (static_cast<Index>(s.history.size()) != s.epochs_done)
      throw ValueError(concat("history holds ", s.history.size(), " epochs, epochs_done is ", s.epochs_done));
    return s;
  } catch (const nlohmann::json::exception& e) {
    throw IoError(concat("fit: resume: ", path.string(), " is not a trainer state: ", e.what()));
  } catch (const ValueError& e) {
    throw IoError(concat("fit: resume: ", path.string(), " is not a trainer state: ", e.what()));
  }
}

/// The settings of a run that a resumed run must keep (unless allowed to change): fit's own options, the data's
/// sizes, and the caller's fingerprint.
template <class Data>
nlohmann::json run_fingerprint(const FitOptions& o, const std::string& monitor, const Data& train, const Data& valid) {
  nlohmann::json f = {{"epochs", o.epochs},
                      {"lr", o.lr},
                      {"weight_decay", o.weight_decay},
                      {"schedule", enum_name(o.schedule)},
                      {"warmup_fraction", o.warmup_fraction},
                      {"warmup_steps", o.warmup_steps},
                      {"accumulation_steps", o.accumulation_steps},
                      {"max_grad_norm", o.max_grad_norm},
                      {"patience", o.patience},
                      {"monitor", monitor},
                      {"train_examples", train.size()},
                      {"valid_examples", valid.size()},
                      {"batches_per_epoch", train.num_batches()}};
  for (auto it = o.fingerprint.begin(); it != o.fingerprint.end(); ++it) f[it.key()] = it.value();
  return f;
}

/// Compares a resumed run's settings with the recorded ones: throws ValueError listing every change not allowed;
/// records the allowed ones in state (and adopts the new settings).
inline void check_resume_settings(FitState& state, const nlohmann::json& now, const std::vector<std::string>& allowed,
                                  const std::filesystem::path& where) {
  std::string refused;
  nlohmann::json changes = nlohmann::json::array();
  auto keys = now;
  for (auto it = state.fingerprint.begin(); it != state.fingerprint.end(); ++it)
    if (!keys.contains(it.key())) keys[it.key()] = nullptr;
  for (auto it = keys.begin(); it != keys.end(); ++it) {
    const nlohmann::json before = state.fingerprint.value(it.key(), nlohmann::json());
    const nlohmann::json after = now.value(it.key(), nlohmann::json());
    if (before == after) continue;
    if (std::find(allowed.begin(), allowed.end(), it.key()) != allowed.end()) {
      changes.push_back({{"epoch", state.epochs_done}, {"key", it.key()}, {"from", before}, {"to", after}});
    } else {
      refused += concat(refused.empty() ? "" : "; ", it.key(), " was ", before.dump(), ", is now ", after.dump());
    }
  }
  if (!refused.empty())
    throw ValueError(concat("fit: resume: the settings of the run in '", where.string(), "' changed: ", refused,
                            " (allow a change explicitly, e.g. --allow-change KEY, or start a new run)"));
  for (const auto& c : changes) state.changes.push_back(c);
  state.fingerprint = now;
}

/// A folder beside dir for a new run before it replaces dir ("<dir>.new-<hex>") or for the old one while it does
/// ("<dir>.old-<hex>").
inline std::filesystem::path sibling(const std::filesystem::path& dir, const char* kind) {
  std::random_device rd;
  char suffix[32];
  std::snprintf(suffix, sizeof suffix, ".%s-%08x%08x", kind, rd(), rd());
  return dir.parent_path() / (dir.filename().string() + suffix);
}

/// Removes staging folders of dir left by killed runs; if dir itself is missing because a run was killed between
/// the two renames that publish it, puts the newer folder (or else the old one) back in its place.
inline void recover_staging_folders(const std::filesystem::path& dir) {
  std::error_code ec;
  const std::string stem = dir.filename().string();
  std::vector<std::filesystem::path> news, olds;
  for (const auto& entry : std::filesystem::directory_iterator(dir.parent_path(), ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(stem + ".new-", 0) == 0 && name.size() == stem.size() + 21) news.push_back(entry.path());
    if (name.rfind(stem + ".old-", 0) == 0 && name.size() == stem.size() + 21) olds.push_back(entry.path());
  }
  if (!std::filesystem::exists(dir, ec)) {
    for (const auto& n : news)
      if (std::filesystem::exists(RunFolder{n}.pointer(), ec)) {
        std::filesystem::rename(n, dir, ec);
        if (!ec) break;
      }
    if (!std::filesystem::exists(dir, ec) && !olds.empty()) std::filesystem::rename(olds.front(), dir, ec);
  }
  for (const auto& p : news)
    if (std::filesystem::exists(p, ec)) std::filesystem::remove_all(p, ec);
  for (const auto& p : olds)
    if (std::filesystem::exists(p, ec)) std::filesystem::remove_all(p, ec);
}

/// Puts the staged run in dir's place: dir (if any) moves aside, the staged folder takes its name, the old one is
/// removed. Throws IoError when a rename fails (dir is then unchanged or restored).
inline void publish_staged_run(const std::filesystem::path& staged, const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::path old;
  if (std::filesystem::exists(dir, ec)) {
    old = sibling(dir, "old");
    std::filesystem::rename(dir, old, ec);
    if (ec) throw IoError(concat("fit: cannot move '", dir.string(), "' aside to replace it: ", ec.message()));
  }
  std::filesystem::rename(staged, dir, ec);
  if (ec) {
    const std::string reason = ec.message();
    if (!old.empty()) std::filesystem::rename(old, dir, ec);
    throw IoError(concat("fit: cannot move the new run into '", dir.string(), "': ", reason));
  }
  io::detail::sync_folder(dir.parent_path());
  if (!old.empty()) std::filesystem::remove_all(old, ec);
}

}  // namespace detail

/// Trains model on train with the task, evaluating on valid after every epoch; see FitOptions and the top of this
/// file. Returns the history and the best epoch; with restore_best the model ends with the best epoch's weights.
/// Throws ValueError for bad options or data, IoError when the run folder cannot be written or (resume) read, and
/// whatever the model, the task, the optimizer (a non-finite gradient), a hook or the reporter throw; the run folder
/// then holds the last checkpointed epoch (or, before the first, what it held before).
template <class Model, class Task, class Data>
FitResult fit(Model& model, const Task& task, const Data& train, const Data& valid, const FitOptions& options) {
  using detail::concat;
  using T = typename Model::Scalar;
  using Clock = std::chrono::steady_clock;
  const auto since = [](Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); };
  const Clock::time_point fit_start = Clock::now();

  const std::vector<std::string> metric_names = task.metric_names();
  const std::string monitor = options.monitor.empty() ? task.default_monitor() : options.monitor;
  detail::check_fit_options(options, train, valid, metric_names, monitor);
  const bool lower_better = detail::task_lower_is_better(task, monitor);
  std::vector<std::string> record_names;
  for (const char* set : {"train_", "valid_"})
    for (const std::string& m : metric_names) record_names.push_back(set + m);
  const std::size_t loss_index = static_cast<std::size_t>(
      std::find(metric_names.begin(), metric_names.end(), "loss") - metric_names.begin());
  const std::size_t monitor_index = static_cast<std::size_t>(
      std::find(metric_names.begin(), metric_names.end(), monitor) - metric_names.begin());

  // A data-parallel run: rank 0 alone touches the run folder and reports; every rank trains on its shares.
  ProcessGroup* const group = options.processes && options.processes->size() > 1 ? options.processes : nullptr;
  const int rank = group ? group->rank() : 0, ranks = group ? group->size() : 1;
  const bool writer = rank == 0;
  Reporter* const reporter = writer ? options.reporter : nullptr;
  const DataShard<Data> train_share(train, rank, ranks), valid_share(valid, rank, ranks);

  const NamedParameters<T> params = model.named_parameters();
  typename optim::AdamW<T>::Options adam;
  adam.lr = static_cast<T>(options.lr);
  adam.weight_decay = static_cast<T>(options.weight_decay);
  optim::AdamW<T> optimizer(params, adam);

  const Index batches = train.num_batches();
  const Index steps_per_epoch = batches / options.accumulation_steps + (batches % options.accumulation_steps != 0);
  if (options.epochs > std::numeric_limits<Index>::max() / std::max<Index>(1, steps_per_epoch))
    throw ValueError(concat("fit: epochs is ", options.epochs, ": with ", steps_per_epoch,
                            " optimizer steps per epoch the step count overflows"));
  const Index total_steps = steps_per_epoch * options.epochs;
  const std::function<double(Index)> schedule = detail::make_schedule(options, total_steps);

  // The run folder: resumed in place, or a new run staged beside it until its first checkpoint.
  const bool saving = !options.run_dir.empty() && writer;
  std::filesystem::path final_dir, staged_dir;
  detail::FitState state;
  state.fingerprint = detail::run_fingerprint(options, monitor, train, valid);
  bool resumed = false;
  RunFolder run;
  if (saving) {
    std::error_code ec;
    final_dir = std::filesystem::absolute(options.run_dir, ec).lexically_normal();
    if (final_dir.filename().empty()) final_dir = final_dir.parent_path();  // "runs/x/" names runs/x
    if (final_dir.empty() || final_dir == final_dir.root_path())
      throw ValueError(concat("fit: run_dir '", options.run_dir.string(), "' names no folder a run can own"));
    std::filesystem::create_directories(final_dir.parent_path(), ec);
    detail::recover_staging_folders(final_dir);
    const FolderState fs = folder_state(final_dir);
    if (fs == FolderState::other)
      throw IoError(concat("fit: '", final_dir.string(), "' holds files that are not a run's: refusing to write into ",
                           "it (choose an empty or new folder)"));
    if (fs == FolderState::run && !options.resume && !options.overwrite)
      throw IoError(concat("fit: '", final_dir.string(), "' holds a run: resume it, or overwrite it to start anew"));
    run = RunFolder{final_dir};
    if (fs == FolderState::run && options.resume) {
      Index checkpoint_epoch = 0;
      const CheckpointFiles files = current_checkpoint(run, &checkpoint_epoch);
      if (files.folder.empty())
        throw IoError(concat("fit: resume: '", final_dir.string(), "' holds no checkpoint.json (a run of an older ",
                             "version of eigenformer?)"));
      const nlohmann::json now = state.fingerprint;
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(io::read_text_file(files.trainer_state(), "fit"));
      } catch (const nlohmann::json::parse_error& e) {
        throw IoError(concat("fit: resume: ", files.trainer_state().string(), " is not valid JSON: ", e.what()));
      }
      state = detail::fit_state_from_json(j, files.trainer_state());
      detail::check_resume_settings(state, now, options.allow_changes, final_dir);
      io::load_state_dict(model, files.model());
      io::load_optimizer_state(optimizer, files.optimizer());
      restore_generator_states(model, j.value("generators", nlohmann::json::object()));
      prune_checkpoints(run, files.folder);
      // A run killed after its checkpoint became current but before model.safetensors took that epoch's weights:
      // the model now holds them.
      if (state.best_epoch == checkpoint_epoch) {
        io::Metadata meta;
        std::error_code exists_ec;
        if (std::filesystem::exists(run.model(), exists_ec)) meta = io::read_safetensors(run.model()).metadata();
        if (meta["epoch"] != std::to_string(checkpoint_epoch))
          io::save_state_dict(model, run.model(), {{"epoch", std::to_string(checkpoint_epoch)}});
      }
      write_metrics_csv(run.metrics(), state.history, record_names);
      resumed = true;
    } else {
      staged_dir = detail::sibling(final_dir, "new");
      run = RunFolder{staged_dir};
      std::filesystem::create_directories(staged_dir, ec);
      if (ec) throw IoError(concat("fit: cannot create '", staged_dir.string(), "': ", ec.message()));
    }
  }
  // A new run that fails before its first checkpoint leaves only what the folder held before.
  struct StagingCleanup {
    std::filesystem::path& dir;
    ~StagingCleanup() {
      std::error_code ec;
      if (!dir.empty()) std::filesystem::remove_all(dir, ec);
    }
  } cleanup{staged_dir};
  if (saving && !resumed) {
    save_run_config(run.config(), options.config);
    if (options.save_tokenizer) options.save_tokenizer(run.dir);
    write_metrics_csv(run.metrics(), {}, record_names);
  }

  if (group) {  // every rank starts where rank 0 does
    std::string start;
    if (writer) {
      nlohmann::json j = detail::fit_state_to_json(state, optimizer.step_count(), generator_states(model));
      j["resumed"] = resumed;
      start = j.dump();
    }
    group->broadcast(start, 0);
    detail::broadcast_training_state(*group, model, optimizer, 0);
    if (!writer) {
      const nlohmann::json j = nlohmann::json::parse(start);
      state = detail::fit_state_from_json(j, "rank 0's trainer state");
      restore_generator_states(model, j.at("generators"));
      resumed = j.at("resumed").get<bool>();
    }
  }
  std::unique_ptr<GradientSynchronizer<T>> sync = group ? group->gradient_synchronizer(params) : nullptr;
  // Every rank's generators as rank root's.
  const auto share_generators = [&](int root) {
    std::string states = rank == root ? generator_states(model).dump() : std::string();
    group->broadcast(states, root);
    if (rank != root) restore_generator_states(model, nlohmann::json::parse(states));
  };
  std::vector<double> units(static_cast<std::size_t>(ranks));  // each rank's loss units of a batch

  // Without a run folder the best weights stay in memory.
  std::vector<Tensor<T>> best_weights;
  Index trainable = 0;
  for (const auto& np : params) trainable += np.second.requires_grad() ? np.second.numel() : 0;
  if (reporter) {
    FitBegin b;
    b.epochs = options.epochs;
    b.first_epoch = state.epochs_done + 1;
    b.batches_per_epoch = batches;
    b.steps_per_epoch = steps_per_epoch;
    b.total_steps = total_steps;
    b.train_examples = train.size();
    b.valid_examples = valid.size();
    b.parameters = trainable;
    b.resumed = resumed;
    reporter->on_fit_begin(b);
  }

  double train_seconds = 0;  // training passes of this call, for the ETA
  Index batches_run = 0;
  for (Index epoch = state.epochs_done; epoch < options.epochs && !state.stopped_early; ++epoch) {
    const Clock::time_point epoch_start = Clock::now();
    model.train();
    const std::vector<std::vector<Index>> order = train_share.batch_indices(epoch);  // this rank's shares
    MetricSums train_sums = task.new_sums();
    BatchContext context;
    context.epoch = epoch;
    Index tokens = 0;
    double lr = optimizer.lr();
    optimizer.zero_grad();
    for (Index b = 0; b < batches; ++b) {
      const std::vector<Index>& rows = order[static_cast<std::size_t>(b)];
      // Each optimizer step averages its micro-batches' mean losses; the epoch's last group may be shorter.
      const Index group_start = b / options.accumulation_steps * options.accumulation_steps;
      const Index steps = std::min(options.accumulation_steps, batches - group_start);
      const bool last_of_step = b + 1 == group_start + steps;
      if (sync && last_of_step) sync->begin_step();
      if (!group) {
        const auto batch = train_share.make_batch(rows);
        const detail::ExampleKeysScope keys(rows);
        const auto loss = task.train_loss(model, batch, context, train_sums);
        if (steps == 1)
          loss.backward();
        else
          scale(loss, static_cast<T>(1.0 / static_cast<double>(steps))).backward();
        tokens += task.tokens(batch);
      } else {
        // This rank's mean loss weighted by its share of the batch's loss units: the ranks' gradients add up to
        // the gradient of the whole batch's mean loss. Every rank learns every rank's units.
        using BatchType = decltype(train_share.make_batch(rows));
        std::optional<BatchType> batch;
        double rank_units = 0;
        if (!rows.empty()) {
          batch.emplace(train_share.make_batch(rows));
          rank_units = detail::task_loss_units(task, *batch, context, 0);
          if (rank_units < 0)
            throw ValueError("fit: a data-parallel run needs the task's loss_units(batch, context) (train/task.hpp)");
        }
        std::fill(units.begin(), units.end(), 0.0);
        units[static_cast<std::size_t>(rank)] = rank_units;
        group->all_reduce_sum(units);
        double total = 0;
        int first_ran = -1;
        for (int r = 0; r < ranks; ++r) {
          total += units[static_cast<std::size_t>(r)];
          if (first_ran < 0 && units[static_cast<std::size_t>(r)] > 0) first_ran = r;
        }
        if (rank_units > 0) {
          const detail::ExampleKeysScope keys(rows);
          const auto loss = task.train_loss(model, *batch, context, train_sums);
          const auto weighted = scale(loss, static_cast<T>(rank_units / total / static_cast<double>(steps)));
          if (last_of_step) {
            GradientReadyScope<T> observe(*sync);
            weighted.backward();
          } else {
            weighted.backward();
          }
          tokens += task.tokens(*batch);
        }
        // A rank that ran no forward drew nothing from its generators: they take those of a rank that did.
        if (first_ran >= 0 && std::find(units.begin(), units.end(), 0.0) != units.end()) share_generators(first_ran);
      }

      if (last_of_step) {
        if (sync) sync->finish_step();
        for (const auto& hook : options.after_backward) hook();
        if (options.max_grad_norm > 0) optim::clip_grad_norm(params, static_cast<T>(options.max_grad_norm));
        lr = schedule(optimizer.step_count());
        optimizer.set_lr(static_cast<T>(lr));
        optimizer.step();
        optimizer.zero_grad();
      }
      ++batches_run;
      if (reporter) {
        const double epoch_seconds = since(epoch_start);
        StepInfo s;
        s.epoch = epoch + 1;
        s.epochs = options.epochs;
        s.batch = b + 1;
        s.batches = batches;
        s.step = optimizer.step_count();
        s.total_steps = total_steps;
        s.loss = task.values(train_sums)[loss_index];
        s.lr = lr;
        s.tokens_per_second = static_cast<double>(tokens) / std::max(epoch_seconds, 1e-9);
        s.elapsed_seconds = since(fit_start);
        // In double: epochs * batches may overflow Index where epochs * optimizer steps does not (accumulation).
        const double left = static_cast<double>(options.epochs - epoch) * static_cast<double>(batches) -
                            static_cast<double>(b + 1);
        s.eta_seconds = (train_seconds + epoch_seconds) / static_cast<double>(batches_run) * left;
        reporter->on_step(s);
      }
    }
    const double epoch_train_seconds = since(epoch_start);
    train_seconds += epoch_train_seconds;

    if (reporter) reporter->on_evaluate_begin(epoch + 1);
    MetricSums valid_sums = evaluate_sums(model, task, valid_share);
    if (group) {  // metrics of the whole data
      group->all_reduce_sum(train_sums);
      group->all_reduce_sum(valid_sums);
    }
    const std::vector<double> train_values = task.values(train_sums), valid_values = task.values(valid_sums);
    EpochRecord r;
    r.epoch = epoch + 1;
    r.step = optimizer.step_count();
    r.lr = lr;
    for (std::size_t i = 0; i < metric_names.size(); ++i) r.metrics.emplace_back(record_names[i], train_values[i]);
    for (std::size_t i = 0; i < metric_names.size(); ++i)
      r.metrics.emplace_back(record_names[metric_names.size() + i], valid_values[i]);
    r.tokens_per_second = static_cast<double>(tokens) / std::max(epoch_train_seconds, 1e-9);
    const double value = valid_values[monitor_index], valid_loss = valid_values[loss_index];
    r.best = detail::improves(lower_better, value, valid_loss, state.best_metric, state.best_loss);
    if (r.best) {
      state.best_epoch = r.epoch;
      state.best_metric = value;
      state.best_loss = valid_loss;
      state.epochs_without_improvement = 0;
    } else {
      ++state.epochs_without_improvement;
    }
    state.stopped_early = options.patience > 0 && state.epochs_without_improvement >= options.patience;
    state.epochs_done = r.epoch;
    r.seconds = since(epoch_start);
    state.history.push_back(r);

    if (saving) {
      // The checkpoint as one unit, then one atomic step makes it current; derived files follow.
      const CheckpointFiles files{run.checkpoint(r.epoch)};
      const io::Metadata meta = {{"epoch", std::to_string(r.epoch)}};
      const nlohmann::json trainer_state =
          detail::fit_state_to_json(state, optimizer.step_count(), generator_states(model));
      write_checkpoint(files, r.epoch,
                       {{"model.safetensors", [&](const std::filesystem::path& p) { io::save_state_dict(model, p, meta); }},
                        {"optimizer.safetensors",
                         [&](const std::filesystem::path& p) { io::save_optimizer_state(optimizer, p); }},
                        {"trainer_state.json", [&](const std::filesystem::path& p) {
                           io::write_text_file_atomically(p, trainer_state.dump(1) + "\n", "fit");
                         }}});
      commit_checkpoint(run, r.epoch);
      if (!staged_dir.empty()) {  // the new run's first checkpoint: it takes the folder's place
        detail::publish_staged_run(staged_dir, final_dir);
        staged_dir.clear();
        run = RunFolder{final_dir};
      }
      if (r.best) io::save_state_dict(model, run.model(), meta);
      write_metrics_csv(run.metrics(), state.history, record_names);
      prune_checkpoints(run, run.checkpoint(r.epoch));
    } else if (r.best) {
      best_weights.clear();
      for (const auto& np : params) best_weights.push_back(np.second.value().clone());
    }
    if (reporter) reporter->on_epoch_end(r, task.details(valid_sums));
  }

  if (options.restore_best && state.best_epoch > 0) {
    if (saving) {
      io::load_state_dict(model, run.model());
    } else if (!best_weights.empty()) {
      for (std::size_t i = 0; i < params.size(); ++i) {
        Var<T> p = params[i].second;  // a handle to the module's parameter
        std::copy_n(best_weights[i].data(), best_weights[i].numel(), p.value().data());
      }
    }
  }

  FitResult result;
  result.history = state.history;
  result.best_epoch = state.best_epoch;
  result.step = optimizer.step_count();
  result.stopped_early = state.stopped_early;
  result.seconds = since(fit_start);
  if (reporter) {
    FitSummary s;
    s.epochs_run = state.epochs_done;
    s.best_epoch = state.best_epoch;
    s.monitor = "valid_" + monitor;
    if (state.best_epoch > 0) {
      s.best_value = result.best().metric(s.monitor);
      s.best_valid_loss = result.best().metric("valid_loss");
    }
    s.stopped_early = state.stopped_early;
    s.seconds = result.seconds;
    reporter->on_fit_end(s);
  }
  return result;
}

/// fit() of a classifier (forward(ids, padding_mask) -> (B, C) logits) on Batchers: the classification task with
/// the labels of options.config (or as many classes as the model's logits have, when it names none).
template <class Model>
FitResult fit(Model& model, const data::Batcher& train, const data::Batcher& valid, const FitOptions& options) {
  Index classes = static_cast<Index>(options.config.labels.size());
  if (classes == 0) {
    if (train.size() == 0) throw ValueError("fit: the training data holds no examples");
    EvalModeGuard<Model> mode(model);
    const data::Batch first = train.make_batch({0});
    classes = infer(model, first.ids, first.padding_mask).size(1);
  }
  return fit(model, ClassificationTask(classes, options.config.labels), train, valid, options);
}

}  // namespace eigenformer::train
