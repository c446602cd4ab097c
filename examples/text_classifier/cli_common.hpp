// What text_classifier's commands share: the checks of number options, the training options every command that
// trains takes (--epochs, --lr, ..., --resume; one definition, so train and pretrain spell and check them alike),
// tokenizing on threads, the run folder's checks and the progress reporter that redraws curves.svg.
#pragma once

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <eigenformer/eigenformer.hpp>
#include <eigenformer/text/tokenizer.hpp>
#include <exception>
#include <filesystem>
#include <functional>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "curves_svg.hpp"
#include "limits.hpp"

namespace text_classifier {

namespace ef = eigenformer;
using Clock = std::chrono::steady_clock;

/// The data-parallel world when an MPI launcher started the program (mpirun -np N text_classifier train ...) and
/// it was built with eigenformer::dist; null when it runs alone.
inline ef::train::ProcessGroup*& world() {
  static ef::train::ProcessGroup* w = nullptr;
  return w;
}
inline int world_size() { return world() ? world()->size() : 1; }

/// Every core the machine reports, shared among the ranks an MPI launcher started on this machine.
inline int default_threads() {
  for (const char* local : {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS_PER_NODE"})
    if (const char* v = std::getenv(local)) {
      const int ranks = std::atoi(v);
      if (ranks > 1) return std::max(1, cores() / ranks);
    }
  return cores();
}

inline double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

/// Parses a whole number that fits in a long long (CLI11's own parse saturates at the largest one).
inline bool parse_whole(const std::string& value, long long& n) {
  errno = 0;
  char* end = nullptr;
  n = std::strtoll(value.c_str(), &end, 10);
  return !value.empty() && end == value.c_str() + value.size() && errno != ERANGE;
}

/// CLI11's check of a whole-number option that must be at least lo; the message names the bound.
inline CLI::Validator at_least(long long lo) {
  return CLI::Validator(
      [lo](std::string& value) {
        long long n = 0;
        if (!parse_whole(value, n)) return "\"" + value + "\" is not a whole number up to 9223372036854775807";
        return n >= lo ? std::string() : value + ": expected at least " + std::to_string(lo);
      },
      ">= " + std::to_string(lo));
}

/// CLI11's check of a number option that must be finite and >= 0.
inline CLI::Validator non_negative() {
  return CLI::Validator(
      [](std::string& value) {
        char* end = nullptr;
        const double x = std::strtod(value.c_str(), &end);
        if (value.empty() || end != value.c_str() + value.size()) return "\"" + value + "\" is not a number";
        return std::isfinite(x) && x >= 0 ? std::string() : value + ": expected a finite number >= 0";
      },
      ">= 0");
}

/// CLI11's check of a --threads option.
inline CLI::Validator threads_check() {
  return CLI::Validator(
      [](std::string& value) {
        long long n = 0;
        return parse_whole(value, n) ? check_threads(n) : "\"" + value + "\" is not a whole number";
      },
      "1.." + std::to_string(max_threads()));
}

/// CLI11's check of an --out folder name.
inline CLI::Validator folder_name() {
  return CLI::Validator(
      [](std::string& v) { return v.empty() ? std::string("expected a folder, got an empty name") : std::string(); },
      "FOLDER");
}

/// The options of fit() that every training command takes, with train's defaults.
struct FitArgs {
  Index epochs = 5;
  double lr = 1e-3;
  double weight_decay = 0.01;
  double warmup = 0.1;
  Index batch_size = 32;
  Index accumulation = 1;
  double clip = 1.0;
  Index patience = 0;
  std::uint64_t seed = 0;
  int threads = default_threads();
  bool resume = false;
  bool overwrite = false;
  std::vector<std::string> allow_changes;
};

/// Adds the training options to a command, their defaults taken from f; returns --lr (a command may choose its
/// default after parsing when it was not given).
inline CLI::Option* add_fit_options(CLI::App* cmd, FitArgs& f,
                                    const std::string& lr_help = "peak learning rate (AdamW)") {
  cmd->add_option("--epochs", f.epochs, "training epochs")->capture_default_str()->check(at_least(1));
  CLI::Option* lr = cmd->add_option("--lr", f.lr, lr_help)->capture_default_str()->check(non_negative());
  cmd->add_option("--weight-decay", f.weight_decay, "AdamW weight decay")->capture_default_str()->check(non_negative());
  cmd->add_option("--warmup", f.warmup, "warmup steps as a fraction of all steps")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--batch-size", f.batch_size, "examples per batch (per rank under mpirun)")->capture_default_str()->check(at_least(1));
  cmd->add_option("--accumulation", f.accumulation, "batches per optimizer step")
      ->capture_default_str()
      ->check(at_least(1));
  cmd->add_option("--clip", f.clip, "gradient norm clipping (0 = off)")->capture_default_str()->check(non_negative());
  cmd->add_option("--patience", f.patience, "early stopping patience in epochs (0 = off)")
      ->capture_default_str()
      ->check(at_least(0));
  cmd->add_option("--seed", f.seed, "seed of initialization, shuffling and dropout")->capture_default_str();
  cmd->add_option("--threads", f.threads, "threads")->capture_default_str()->check(threads_check());
  CLI::Option* resume = cmd->add_flag("--resume", f.resume, "continue the run in --out from its last checkpoint");
  cmd->add_flag("--overwrite", f.overwrite,
                "replace the run in --out (the old one stays until the new one has completed an epoch)")
      ->excludes(resume);
  cmd->add_option("--allow-change", f.allow_changes,
                  "with --resume: a setting that may differ from the run's (lr, epochs, ...; repeatable)");
  return lr;
}

/// fit()'s options for a run folder; the caller adds the config, fingerprint, tokenizer and reporter.
inline ef::train::FitOptions fit_options(const FitArgs& f, const std::filesystem::path& run_dir) {
  ef::train::FitOptions fo;
  fo.epochs = f.epochs;
  fo.lr = f.lr;
  fo.weight_decay = f.weight_decay;
  fo.warmup_fraction = f.warmup;
  fo.accumulation_steps = f.accumulation;
  fo.max_grad_norm = f.clip;
  fo.patience = f.patience;
  fo.run_dir = run_dir;
  fo.resume = f.resume;
  fo.overwrite = f.overwrite;
  fo.allow_changes = f.allow_changes;
  fo.processes = world();
  return fo;
}

/// The training options as config.json records them ("training").
inline nlohmann::json fit_record(const FitArgs& f) {
  return {{"epochs", f.epochs},
          {"lr", f.lr},
          {"weight_decay", f.weight_decay},
          {"warmup", f.warmup},
          {"batch_size", f.batch_size},
          {"accumulation", f.accumulation},
          {"clip", f.clip},
          {"seed", f.seed}};
}

/// The options of `train`.
struct TrainArgs {
  std::string train_file, valid_file, out_dir;
  std::string model = "transformer";  // or "bow"
  Index vocab_size = 8000;
  Index max_length = 256;  // ids per text, [CLS] and [SEP] included
  std::string truncation = "head_tail";
  Index head_tokens = -1;  // -1: a quarter of what fits (the tokenizer default)
  Index d_model = 64;
  Index layers = 1;
  Index heads = 4;
  Index ffn = 256;
  double dropout = 0.1;
  bool dropout_given = false;  // --init: the folder's dropout rates unless --dropout is given
  bool truncation_given = false;  // --init: the folder's recorded truncation unless --truncation or --head-tokens
  std::string pooling = "mean";
  std::string positional = "learned";
  double embedding_std = 0.02;  // 0: keep torch.nn.Embedding's N(0, 1)
  Index bow_dim = 64;
  FitArgs fit;
  std::string init;        // a Hugging Face BERT folder to fine-tune (bert_commands.hpp)
  Index lora_rank = 0;     // 0: full fine-tuning
  double lora_alpha = -1;  // < 0: twice the rank
  double lora_dropout = 0;
};

/// One text per element -> token ids, on at most `threads` threads (the tokenizer is immutable, so they share
/// it). Threads take blocks of texts from a shared counter: no more threads than blocks start, a thread the system
/// refuses to start leaves its share to the others, and the first exception stops them all and is rethrown here.
inline std::vector<std::vector<std::int64_t>> encode_all(const ef::text::Tokenizer& tokenizer,
                                                         const std::vector<std::string>& texts,
                                                         const ef::text::EncodeOptions& options, int threads) {
  const std::size_t n = texts.size(), workers_wanted = static_cast<std::size_t>(std::max(1, threads));
  // Texts per claim of the counter: about four claims per thread, at most 256 texts.
  const std::size_t block = std::max<std::size_t>(1, std::min<std::size_t>(256, n / (4 * workers_wanted)));
  const std::size_t blocks = (n + block - 1) / block;
  std::vector<std::vector<std::int64_t>> out(n);
  std::atomic<std::size_t> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  std::mutex error_mutex;
  const auto work = [&] {
    for (std::size_t k; !failed.load() && (k = next.fetch_add(1)) < blocks;) {
      try {
        for (std::size_t i = k * block, end = std::min(n, i + block); i < end; ++i)
          out[i] = tokenizer.encode(texts[i], options);
      } catch (...) {
        const std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
        failed = true;
      }
    }
  };
  const std::size_t workers = std::min(blocks, workers_wanted);
  std::vector<std::thread> pool;
  pool.reserve(workers);
  for (std::size_t w = 1; w < workers; ++w) {
    try {
      pool.emplace_back(work);
    } catch (const std::system_error&) {
      break;  // no more threads: the running ones share the work
    }
  }
  work();
  for (std::thread& t : pool) t.join();
  if (error) std::rethrow_exception(error);
  return out;
}

/// The tokenizer settings of a run. model_max_len: the longest sequence the model takes (-1: no limit). A run
/// whose max_length is 0 ("all", written by earlier versions) is truncated to that, so no text is too long for
/// the model.
inline ef::text::EncodeOptions encode_options(const ef::train::RunConfig& c, Index model_max_len = -1) {
  ef::text::EncodeOptions o;
  o.max_length = c.max_length;
  if (model_max_len > 0 && (o.max_length == 0 || o.max_length > model_max_len)) o.max_length = model_max_len;
  o.truncation = c.truncation == "head_tail" ? ef::text::Truncation::head_tail : ef::text::Truncation::head;
  o.head_tokens = c.head_tokens;
  return o;
}

/// The examples of a JSON Lines file given by option; throws ValueError when it holds none.
inline ef::data::TextDataset read_examples(const std::string& path, const char* option) {
  ef::data::TextDataset ds = ef::data::read_jsonl(path);
  if (ds.empty())
    throw ef::ValueError(ef::detail::concat(option, " ", path, " holds no examples, expected one JSON object per ",
                                            "line with a \"text\" and a \"label\""));
  return ds;
}

/// Refuses a run folder (option names it: "--out") that a run may not write into, before any work (fit() checks
/// again when it starts).
inline void check_out_folder(const std::string& dir, bool resume, bool overwrite, const char* option = "--out") {
  std::error_code ec;
  if (std::filesystem::exists(dir, ec) && !std::filesystem::is_directory(dir, ec))
    throw ef::ValueError(std::string(option) + " " + dir + " is a file, expected a folder");
  switch (ef::train::folder_state(dir)) {
    case ef::train::FolderState::run:
      if (!resume && !overwrite)
        throw ef::ValueError(std::string(option) + " " + dir + " holds a run: add --resume to continue it, or " +
                             "--overwrite to replace it once the new run has completed an epoch");
      break;
    case ef::train::FolderState::other:
      throw ef::ValueError(std::string(option) + " " + dir + " holds files that are not a run's: choose an empty " +
                           "or new folder");
    case ef::train::FolderState::absent_or_empty:
      break;
  }
}

/// Labelled training and validation data with their label ids, read and checked before any tokenizing.
struct LabelledData {
  ef::data::TextDataset train, valid;
  ef::data::LabelVocab labels;
  std::vector<std::int64_t> train_labels, valid_labels;
};

/// Reads --train and --valid; an unknown label in the validation file is named (file and line).
inline LabelledData read_labelled_data(const TrainArgs& a) {
  LabelledData d;
  d.train = read_examples(a.train_file, "--train");
  d.valid = read_examples(a.valid_file, "--valid");
  d.labels = ef::data::LabelVocab::from_dataset(d.train);
  d.train_labels = d.labels.encode(d.train);
  d.valid_labels = d.labels.encode(d.valid);
  std::cerr << "data: " << d.train.size() << " training, " << d.valid.size() << " validation examples, "
            << d.labels.size() << " labels\n";
  if (d.labels.size() == 1)
    std::cerr << "text_classifier: warning: every example of " << a.train_file << " has the label \""
              << d.labels.label(0) << "\": the classifier can only learn to answer it\n";
  check_step_count(a.fit.epochs, d.train.size(), a.fit.batch_size, a.fit.accumulation);
  return d;
}

/// Training batches (shuffled by the seed, bucketed by length) and validation batches.
inline std::pair<ef::data::Batcher, ef::data::Batcher> make_batchers(std::vector<std::vector<std::int64_t>> train_ids,
                                                                     std::vector<std::int64_t> train_labels,
                                                                     std::vector<std::vector<std::int64_t>> valid_ids,
                                                                     std::vector<std::int64_t> valid_labels,
                                                                     const FitArgs& f, std::int64_t pad_id) {
  ef::data::Batcher::Options bo;
  bo.batch_size = f.batch_size * world_size();  // --batch-size is per rank: N ranks train on batches of N of them
  bo.shuffle = true;
  bo.seed = f.seed;
  bo.pad_id = pad_id;
  bo.bucket_batches = 50;  // similar lengths per batch: less padding
  ef::data::Batcher train(std::move(train_ids), std::move(train_labels), bo);
  bo.shuffle = false;
  ef::data::Batcher valid(std::move(valid_ids), std::move(valid_labels), bo);
  return {std::move(train), std::move(valid)};
}

/// Prints the reporter's output and redraws curves.svg from metrics.csv after every epoch; then calls the
/// epoch hook, if any (pretrain writes its model folder there).
class CurvesReporter : public ef::train::ConsoleReporter {
 public:
  using EpochHook = std::function<void(const ef::train::EpochRecord&)>;
  CurvesReporter(std::ostream& out, Options options, ef::train::RunFolder run, EpochHook hook = {})
      : ConsoleReporter(out, std::move(options)), run_(std::move(run)), hook_(std::move(hook)) {}
  void on_epoch_end(const ef::train::EpochRecord& r, const std::string& details) override {
    ConsoleReporter::on_epoch_end(r, details);
    write_curves_svg(run_.metrics(), run_.dir / "curves.svg");
    if (hook_) hook_(r);
  }

 private:
  ef::train::RunFolder run_;
  EpochHook hook_;
};

/// The console reporter's options for stderr: a redrawn progress bar on a terminal, plain lines otherwise.
inline ef::train::ConsoleReporter::Options console_options(bool show_details) {
  ef::train::ConsoleReporter::Options ro;
  ro.interactive = ef::train::is_terminal(stderr);
  ro.show_details = show_details;
  return ro;
}

/// "1,234,567".
inline std::string with_commas(Index n) {
  std::string digits = std::to_string(n < 0 ? -n : n), out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return (n < 0 ? "-" : "") + out;
}

}  // namespace text_classifier
