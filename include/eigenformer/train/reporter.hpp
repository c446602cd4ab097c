// What fit() reports while it trains (the events of a Keras Callback / PyTorch Lightning Callback) and a console
// reporter: a progress bar redrawn in place on a terminal (tqdm's role), plain log lines otherwise. The library
// itself never prints: fit() only calls the Reporter it is given.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <ostream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#if defined(_WIN32)
#include <io.h>
#else
#include <unistd.h>
#endif

#include "eigenformer/core/config.hpp"
#include "eigenformer/train/history.hpp"

namespace eigenformer::train {

/// Reported once when fit() starts.
struct FitBegin {
  Index epochs = 0;             // epochs of the whole run
  Index first_epoch = 1;        // the epoch this call starts with (> 1 when resumed)
  Index batches_per_epoch = 0;  // micro-batches
  Index steps_per_epoch = 0;    // optimizer steps (batches / accumulation, rounded up)
  Index total_steps = 0;
  Index train_examples = 0;
  Index valid_examples = 0;
  Index parameters = 0;  // trainable scalars
  bool resumed = false;
};

/// Reported after every training micro-batch.
struct StepInfo {
  Index epoch = 0, epochs = 0;      // 1-based epoch and the run's number of epochs
  Index batch = 0, batches = 0;     // 1-based micro-batch within the epoch, and how many the epoch has
  Index step = 0, total_steps = 0;  // optimizer steps completed, and the run's total
  double loss = 0;                  // mean training loss of the epoch so far
  double lr = 0;                    // learning rate of the latest optimizer step
  double tokens_per_second = 0;     // training throughput of the epoch so far (non-padding tokens)
  double elapsed_seconds = 0;       // since this fit() call started
  double eta_seconds = 0;           // estimated training time left for the whole run (evaluation excluded)
};

/// Reported once when fit() ends.
struct FitSummary {
  Index epochs_run = 0;  // epochs completed, resumed ones included
  Index best_epoch = 0;  // 0 when no epoch ran
  std::string monitor;   // the validation metric that picked the best epoch ("valid_accuracy")
  double best_value = std::numeric_limits<double>::quiet_NaN();       // its value at the best epoch
  double best_valid_loss = std::numeric_limits<double>::quiet_NaN();  // the validation loss at the best epoch
  bool stopped_early = false;
  double seconds = 0;  // wall time of this fit() call
};

/// Receives fit()'s events; every method does nothing by default. A method may throw to abort training: the
/// exception leaves fit(), and the run folder holds the last completed epoch's checkpoint.
class Reporter {
 public:
  virtual ~Reporter() = default;
  virtual void on_fit_begin(const FitBegin&) {}
  virtual void on_step(const StepInfo&) {}
  /// Before the validation pass of an epoch.
  virtual void on_evaluate_begin(Index /*epoch*/) {}
  /// After an epoch is evaluated and checkpointed; details is the task's extra text on the validation data (a
  /// confusion matrix), possibly empty.
  virtual void on_epoch_end(const EpochRecord&, const std::string& /*details*/) {}
  virtual void on_fit_end(const FitSummary&) {}
};

/// True when f is a terminal (isatty), e.g. is_terminal(stderr).
inline bool is_terminal(std::FILE* f) {
#if defined(_WIN32)
  return _isatty(_fileno(f)) != 0;
#else
  return ::isatty(::fileno(f)) != 0;
#endif
}

/// "m:ss" or "h:mm:ss" ("?" for a negative or non-finite time).
inline std::string format_duration(double seconds) {
  if (!(seconds >= 0) || !std::isfinite(seconds)) return "?";
  const long s = std::lround(seconds);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
  return buf;
}

/// A rate with a k/M suffix: 950, 12.3k, 1.20M.
inline std::string format_rate(double per_second) {
  char buf[32];
  if (per_second >= 1e6)
    std::snprintf(buf, sizeof buf, "%.2fM", per_second / 1e6);
  else if (per_second >= 1e3)
    std::snprintf(buf, sizeof buf, "%.1fk", per_second / 1e3);
  else
    std::snprintf(buf, sizeof buf, "%.0f", per_second);
  return buf;
}

/// Writes fit()'s progress to a stream. Interactive (a terminal): one progress line (epoch, bar, step, loss, lr,
/// tokens/s, ETA) redrawn in place with '\r' at most every redraw_seconds, and one summary line per epoch.
/// Otherwise (a log file, a pipe): log_lines_per_epoch plain lines per epoch and the same summaries.
class ConsoleReporter : public Reporter {
 public:
  struct Options {
    bool interactive = false;
    double redraw_seconds = 0.1;
    Index log_lines_per_epoch = 10;
    bool show_details = false;  // print the task's details after each epoch (a classifier's confusion matrix)
  };

  explicit ConsoleReporter(std::ostream& out) : ConsoleReporter(out, Options()) {}
  ConsoleReporter(std::ostream& out, Options options) : out_(out), options_(std::move(options)) {}

  void on_fit_begin(const FitBegin& b) override {
    out_ << (b.resumed ? "resuming at epoch " : "training: epoch ") << b.first_epoch << " of " << b.epochs << ", "
         << b.train_examples << " training and " << b.valid_examples << " validation examples, " << b.batches_per_epoch
         << " batches (" << b.steps_per_epoch << " optimizer steps) per epoch, " << b.parameters << " parameters\n";
    out_.flush();
  }

  void on_step(const StepInfo& s) override {
    if (options_.interactive) {
      const auto now = std::chrono::steady_clock::now();
      if (s.batch != s.batches && drawn_ &&
          std::chrono::duration<double>(now - last_draw_).count() < options_.redraw_seconds)
        return;
      last_draw_ = now;
      drawn_ = true;
      draw(progress_line(s, true));
      return;
    }
    const Index every = std::max<Index>(1, s.batches / std::max<Index>(1, options_.log_lines_per_epoch));
    if (s.batch % every == 0 || s.batch == s.batches) {
      out_ << progress_line(s, false) << '\n';
      out_.flush();
    }
  }

  void on_evaluate_begin(Index epoch) override {
    if (!options_.interactive) return;
    draw(eigenformer::detail::concat("epoch ", epoch, ": validating..."));
  }

  void on_epoch_end(const EpochRecord& r, const std::string& details) override {
    clear();
    std::string line = eigenformer::detail::concat("epoch ", r.epoch, ":");
    std::string split;  // " train" then " | valid": the metrics come grouped by data set
    for (const auto& [name, value] : r.metrics) {
      const std::size_t underscore = name.find('_');
      const std::string set = name.substr(0, underscore), metric = name.substr(underscore + 1);
      if (set != split) {
        line += (split.empty() ? " " : " | ") + set;
        split = set;
      }
      char buf[64];
      std::snprintf(buf, sizeof buf, " %s %.4f", short_name(metric).c_str(), value);
      line += buf;
    }
    line += " | " + format_duration(r.seconds) + ", " + format_rate(r.tokens_per_second) + " tok/s" +
            (r.best ? " (best)" : "");
    out_ << line << '\n';
    if (options_.show_details && !details.empty()) out_ << details << '\n';
    out_.flush();
  }

  void on_fit_end(const FitSummary& s) override {
    clear();
    out_ << "done: " << s.epochs_run << " epochs" << (s.stopped_early ? " (stopped early)" : "") << " in "
         << format_duration(s.seconds);
    if (s.best_epoch > 0) {
      char buf[160];
      std::snprintf(buf, sizeof buf, "; best epoch %ld: %s %.4f", static_cast<long>(s.best_epoch), s.monitor.c_str(),
                    s.best_value);
      out_ << buf;
      if (s.monitor != "valid_loss") {  // the loss as well, unless it is what picked the epoch
        std::snprintf(buf, sizeof buf, ", valid loss %.4f", s.best_valid_loss);
        out_ << buf;
      }
    }
    out_ << '\n';
    out_.flush();
  }

 private:
  static std::string progress_line(const StepInfo& s, bool bar) {
    std::ostringstream line;
    line << "epoch " << s.epoch << "/" << s.epochs << ' ';
    if (bar) {
      constexpr int kWidth = 20;
      const auto filled = static_cast<int>(kWidth * s.batch / std::max<Index>(1, s.batches));
      line << '[' << std::string(static_cast<std::size_t>(filled), '#')
           << std::string(static_cast<std::size_t>(kWidth - filled), '.') << "] ";
    } else {
      line << "batch ";
    }
    char buf[160];
    std::snprintf(buf, sizeof buf, "%ld/%ld step %ld/%ld loss %.4f lr %.2e %s tok/s ETA %s", static_cast<long>(s.batch),
                  static_cast<long>(s.batches), static_cast<long>(s.step), static_cast<long>(s.total_steps), s.loss,
                  s.lr, format_rate(s.tokens_per_second).c_str(), format_duration(s.eta_seconds).c_str());
    line << buf;
    return line.str();
  }

  // The short form of a metric name in epoch lines.
  static std::string short_name(const std::string& metric) {
    if (metric == "accuracy") return "acc";
    if (metric == "macro_f1") return "macro-F1";
    if (metric == "perplexity") return "ppl";
    return metric;
  }

  // Redraws the progress line: '\r', the text, and spaces over what is left of a longer previous line.
  void draw(const std::string& text) {
    out_ << '\r' << text;
    if (text.size() < drawn_width_) out_ << std::string(drawn_width_ - text.size(), ' ');
    drawn_width_ = text.size();
    out_.flush();
  }
  // Blanks the progress line so that a summary starts at column 0.
  void clear() {
    if (!options_.interactive || drawn_width_ == 0) return;
    out_ << '\r' << std::string(drawn_width_, ' ') << '\r';
    drawn_width_ = 0;
    drawn_ = false;
  }

  std::ostream& out_;
  Options options_;
  std::size_t drawn_width_ = 0;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace eigenformer::train
