// fit(): the training loop of a sequence classifier (the role of Hugging Face's Trainer.train / Keras' Model.fit):
// AdamW, a warmup + decay learning-rate schedule, gradient accumulation and clipping, validation every epoch,
// early stopping, the best epoch's weights kept, and a run folder checkpointed every epoch so that a resumed run
// ends exactly where an uninterrupted one would.
//
// The model is a classifier as in evaluate.hpp (forward(ids, padding_mask) -> (B, C) logits, named_parameters,
// visit_parameters, train/eval). Its dropout generators are saved with the checkpoint when it exposes them
// (generator_state.hpp). The batch order of an epoch is the Batcher's, a function of (seed, epoch).
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "eigenformer/data/batcher.hpp"
#include "eigenformer/io/state_dict.hpp"
#include "eigenformer/ops/elementwise.hpp"
#include "eigenformer/ops/loss.hpp"
#include "eigenformer/ops/reduction.hpp"
#include "eigenformer/optim/adam.hpp"
#include "eigenformer/optim/clip_grad.hpp"
#include "eigenformer/optim/lr_schedule.hpp"
#include "eigenformer/train/evaluate.hpp"
#include "eigenformer/train/generator_state.hpp"
#include "eigenformer/train/history.hpp"
#include "eigenformer/train/reporter.hpp"
#include "eigenformer/train/run_config.hpp"

namespace eigenformer::train {

/// The learning-rate schedule over optimizer steps (optim/lr_schedule.hpp).
enum class ScheduleKind { linear, cosine, constant };

/// The validation metric that picks the best epoch and drives early stopping.
enum class Monitor { accuracy, macro_f1, loss };

/// fit()'s hyperparameters; the defaults are those of the reference PyTorch recipe (AdamW 1e-3, 10% warmup then
/// linear decay, clipping at norm 1).
struct FitOptions {
  Index epochs = 5;
  double lr = 1e-3;            // peak learning rate
  double weight_decay = 0.01;  // AdamW's decoupled weight decay
  ScheduleKind schedule = ScheduleKind::linear;
  double warmup_fraction = 0.1;  // warmup steps as a fraction of all steps, used when warmup_steps < 0
  Index warmup_steps = -1;
  Index accumulation_steps = 1;         // micro-batches per optimizer step
  double max_grad_norm = 1.0;           // clip the global gradient norm to this; 0 = no clipping
  Index patience = 0;                   // stop after this many epochs without improvement; 0 = never stop early
  Monitor monitor = Monitor::accuracy;  // ties (accuracy, macro-F1) go to the lower validation loss
  bool restore_best = true;             // at the end, load the best epoch's weights into the model

  /// Where the run is written (config.json, vocab.txt, model.safetensors, metrics.csv and the checkpoint; see
  /// run_config.hpp); empty = write nothing.
  std::filesystem::path run_dir;
  /// Continue the run in run_dir from its last completed epoch (its checkpoint must exist).
  bool resume = false;
  RunConfig config;  // written to run_dir/config.json
  /// Called with run_dir when a new run starts, to write the tokenizer's files (vocab.txt).
  std::function<void(const std::filesystem::path&)> save_tokenizer;
  /// Receives the progress events; nullptr = silent.
  Reporter* reporter = nullptr;
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

inline void check_fit_options(const FitOptions& o, const data::Batcher& train, const data::Batcher& valid) {
  constexpr const char* fn = "fit";
  if (o.epochs < 0) throw ValueError(concat(fn, ": epochs is ", o.epochs, ", expected >= 0"));
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
  if (train.size() == 0) throw ValueError(concat(fn, ": the training batcher holds no examples"));
  if (valid.size() == 0) throw ValueError(concat(fn, ": the validation batcher holds no examples"));
  if (o.resume && o.run_dir.empty()) throw ValueError(concat(fn, ": resume is set but run_dir is empty"));
}

/// The learning rate of each optimizer step.
inline std::function<double(Index)> make_schedule(const FitOptions& o, Index total_steps) {
  const Index warmup = o.warmup_steps >= 0
                           ? std::min(o.warmup_steps, total_steps)
                           : static_cast<Index>(std::llround(o.warmup_fraction * static_cast<double>(total_steps)));
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

/// True when a validation result beats the best so far under the monitored metric.
inline bool improves(Monitor m, const EvalResult& v, double best_metric, double best_loss) {
  if (m == Monitor::loss) return v.loss < best_loss;
  const double metric = m == Monitor::accuracy ? v.accuracy : v.macro_f1;
  return metric > best_metric || (metric == best_metric && v.loss < best_loss);
}

inline double monitored(Monitor m, const EvalResult& v) {
  return m == Monitor::accuracy ? v.accuracy : m == Monitor::macro_f1 ? v.macro_f1 : v.loss;
}

/// The loop's bookkeeping that the checkpoint keeps besides weights and optimizer state.
struct FitState {
  Index epochs_done = 0;
  Index best_epoch = 0;
  double best_metric = std::numeric_limits<double>::quiet_NaN();
  double best_loss = std::numeric_limits<double>::infinity();
  Index epochs_without_improvement = 0;
  bool stopped_early = false;
  std::vector<EpochRecord> history;
};

inline nlohmann::json fit_state_to_json(const FitState& s, Index step, const nlohmann::json& generators) {
  nlohmann::json history = nlohmann::json::array();
  for (const EpochRecord& r : s.history) history.push_back(epoch_record_to_json(r));
  return {{"format", 1},
          {"epochs_done", s.epochs_done},
          {"step", step},
          {"best_epoch", s.best_epoch},
          {"best_metric", json_number(s.best_metric)},
          {"best_loss", std::isfinite(s.best_loss) ? nlohmann::json(s.best_loss) : nlohmann::json()},
          {"epochs_without_improvement", s.epochs_without_improvement},
          {"stopped_early", s.stopped_early},
          {"generators", generators},
          {"history", history}};
}

inline FitState fit_state_from_json(const nlohmann::json& j, const std::filesystem::path& path) {
  try {
    FitState s;
    s.epochs_done = j.at("epochs_done").get<Index>();
    s.best_epoch = j.at("best_epoch").get<Index>();
    s.best_metric = number_from_json(j.at("best_metric"));
    s.best_loss =
        j.at("best_loss").is_null() ? std::numeric_limits<double>::infinity() : j.at("best_loss").get<double>();
    s.epochs_without_improvement = j.at("epochs_without_improvement").get<Index>();
    s.stopped_early = j.at("stopped_early").get<bool>();
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

}  // namespace detail

/// Trains model on train, evaluating on valid after every epoch; see FitOptions. Returns the history and the best
/// epoch; with restore_best the model ends with the best epoch's weights. Throws ValueError for bad options or
/// data, IoError when the run folder cannot be written or (resume) read, and whatever the model, the optimizer
/// (a non-finite gradient) or the reporter throw; the run folder then keeps the last completed epoch.
template <class Model>
FitResult fit(Model& model, const data::Batcher& train, const data::Batcher& valid, const FitOptions& options) {
  using detail::concat;
  using Logits = std::decay_t<decltype(model.forward(std::declval<const Tensor<std::int64_t>&>(),
                                                     std::declval<const Tensor<bool>&>()))>;
  using T = typename Logits::Scalar;
  using Clock = std::chrono::steady_clock;
  const auto since = [](Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); };
  const Clock::time_point fit_start = Clock::now();

  detail::check_fit_options(options, train, valid);
  const NamedParameters<T> params = model.named_parameters();
  typename optim::AdamW<T>::Options adam;
  adam.lr = static_cast<T>(options.lr);
  adam.weight_decay = static_cast<T>(options.weight_decay);
  optim::AdamW<T> optimizer(params, adam);

  const Index batches = train.num_batches();
  const Index steps_per_epoch = (batches + options.accumulation_steps - 1) / options.accumulation_steps;
  const Index total_steps = steps_per_epoch * options.epochs;
  const std::function<double(Index)> schedule = detail::make_schedule(options, total_steps);

  const bool saving = !options.run_dir.empty();
  const RunFolder run{options.run_dir};
  detail::FitState state;
  if (saving) {
    std::error_code ec;
    std::filesystem::create_directories(run.dir, ec);
    if (ec) throw IoError(concat("fit: cannot create the run folder ", run.dir.string(), ": ", ec.message()));
  }
  if (options.resume) {
    if (!std::filesystem::exists(run.trainer_state()))
      throw IoError(concat("fit: resume: ", run.trainer_state().string(),
                           " does not exist (no epoch of this run was completed)"));
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(detail::read_text_file("fit", run.trainer_state()));
    } catch (const nlohmann::json::parse_error& e) {
      throw IoError(concat("fit: resume: ", run.trainer_state().string(), " is not valid JSON: ", e.what()));
    }
    state = detail::fit_state_from_json(j, run.trainer_state());
    io::load_state_dict(model, run.last_model());
    io::load_optimizer_state(optimizer, run.optimizer());
    restore_generator_states(model, j.value("generators", nlohmann::json::object()));
    write_metrics_csv(run.metrics(), state.history);  // drops rows of an epoch whose checkpoint never completed
  } else if (saving) {
    std::error_code ec;
    for (const auto& stale : {run.trainer_state(), run.last_model(), run.optimizer(), run.model()})
      std::filesystem::remove(stale, ec);
    save_run_config(run.config(), options.config);
    if (options.save_tokenizer) options.save_tokenizer(run.dir);
    write_metrics_csv(run.metrics(), {});
  }

  // Without a run folder the best weights stay in memory.
  std::vector<Tensor<T>> best_weights;
  const auto keep_best = [&] {
    if (saving) {
      io::save_state_dict(model, run.model());
      return;
    }
    best_weights.clear();
    for (const auto& np : params) best_weights.push_back(np.second.value().clone());
  };

  Index trainable = 0;
  for (const auto& np : params) trainable += np.second.requires_grad() ? np.second.numel() : 0;
  if (options.reporter) {
    FitBegin b;
    b.epochs = options.epochs;
    b.first_epoch = state.epochs_done + 1;
    b.batches_per_epoch = batches;
    b.steps_per_epoch = steps_per_epoch;
    b.total_steps = total_steps;
    b.train_examples = train.size();
    b.valid_examples = valid.size();
    b.parameters = trainable;
    b.resumed = options.resume;
    options.reporter->on_fit_begin(b);
  }

  double train_seconds = 0;  // training passes of this call, for the ETA
  Index batches_run = 0;
  for (Index epoch = state.epochs_done; epoch < options.epochs && !state.stopped_early; ++epoch) {
    const Clock::time_point epoch_start = Clock::now();
    model.train();
    const std::vector<std::vector<Index>> order = train.batch_indices(epoch);
    double loss_sum = 0;  // sum of per-example losses
    Index correct = 0, examples = 0, tokens = 0;
    double lr = optimizer.lr();
    optimizer.zero_grad();
    for (Index b = 0; b < batches; ++b) {
      const data::Batch batch = train.make_batch(order[static_cast<std::size_t>(b)]);
      const auto logits = model.forward(batch.ids, batch.padding_mask);  // (B, C)
      const auto loss = cross_entropy(logits, batch.labels);
      // Each optimizer step averages its micro-batches' mean losses; the epoch's last group may be shorter.
      const Index group_start = b / options.accumulation_steps * options.accumulation_steps;
      const Index group = std::min(options.accumulation_steps, batches - group_start);
      if (group == 1)
        loss.backward();
      else
        scale(loss, static_cast<T>(1.0 / static_cast<double>(group))).backward();

      const Index rows = batch.labels.numel();
      loss_sum += static_cast<double>(loss.item()) * static_cast<double>(rows);
      const Tensor<std::int64_t> predicted = argmax(logits.value(), 1);
      for (Index i = 0; i < rows; ++i) correct += predicted[i] == batch.labels[i];
      examples += rows;
      tokens += batch.tokens;

      if (b + 1 == group_start + group) {
        if (options.max_grad_norm > 0) optim::clip_grad_norm(params, static_cast<T>(options.max_grad_norm));
        lr = schedule(optimizer.step_count());
        optimizer.set_lr(static_cast<T>(lr));
        optimizer.step();
        optimizer.zero_grad();
      }
      ++batches_run;
      if (options.reporter) {
        const double epoch_seconds = since(epoch_start);
        StepInfo s;
        s.epoch = epoch + 1;
        s.epochs = options.epochs;
        s.batch = b + 1;
        s.batches = batches;
        s.step = optimizer.step_count();
        s.total_steps = total_steps;
        s.loss = loss_sum / static_cast<double>(examples);
        s.lr = lr;
        s.tokens_per_second = static_cast<double>(tokens) / std::max(epoch_seconds, 1e-9);
        s.elapsed_seconds = since(fit_start);
        const Index left = (options.epochs - epoch) * batches - (b + 1);
        s.eta_seconds = (train_seconds + epoch_seconds) / static_cast<double>(batches_run) * static_cast<double>(left);
        options.reporter->on_step(s);
      }
    }
    const double epoch_train_seconds = since(epoch_start);
    train_seconds += epoch_train_seconds;

    if (options.reporter) options.reporter->on_evaluate_begin(epoch + 1);
    const EvalResult v = evaluate(model, valid);
    EpochRecord r;
    r.epoch = epoch + 1;
    r.step = optimizer.step_count();
    r.lr = lr;
    r.train_loss = loss_sum / static_cast<double>(examples);
    r.train_accuracy = static_cast<double>(correct) / static_cast<double>(examples);
    r.valid_loss = v.loss;
    r.valid_accuracy = v.accuracy;
    r.valid_macro_f1 = v.macro_f1;
    r.tokens_per_second = static_cast<double>(tokens) / std::max(epoch_train_seconds, 1e-9);
    r.best = state.best_epoch == 0 || detail::improves(options.monitor, v, state.best_metric, state.best_loss);
    if (r.best) {
      state.best_epoch = r.epoch;
      state.best_metric = detail::monitored(options.monitor, v);
      state.best_loss = v.loss;
      state.epochs_without_improvement = 0;
      keep_best();
    } else {
      ++state.epochs_without_improvement;
    }
    state.stopped_early = options.patience > 0 && state.epochs_without_improvement >= options.patience;
    state.epochs_done = r.epoch;
    r.seconds = since(epoch_start);
    state.history.push_back(r);

    if (saving) {
      // The trainer state goes last: a run killed before it resumes from the previous epoch's checkpoint.
      append_metrics_csv(run.metrics(), r);
      io::save_state_dict(model, run.last_model());
      io::save_optimizer_state(optimizer, run.optimizer());
      detail::write_text_file(
          "fit", run.trainer_state(),
          detail::fit_state_to_json(state, optimizer.step_count(), generator_states(model)).dump(1) + "\n");
    }
    if (options.reporter) options.reporter->on_epoch_end(r, v);
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
  if (options.reporter) {
    FitSummary s;
    s.epochs_run = state.epochs_done;
    s.best_epoch = state.best_epoch;
    if (state.best_epoch > 0) {
      s.best_valid_accuracy = result.best().valid_accuracy;
      s.best_valid_loss = result.best().valid_loss;
    }
    s.stopped_early = state.stopped_early;
    s.seconds = result.seconds;
    options.reporter->on_fit_end(s);
  }
  return result;
}

}  // namespace eigenformer::train
