// text_classifier: trains a text classifier on JSON Lines data ({"text": ..., "label": ...} per line), evaluates it
// and applies it, with eigenformer alone: a WordPiece tokenizer learned from the training texts, a small
// transformer encoder (or a bag-of-words baseline), AdamW with warmup and linear decay, the best validation epoch
// kept. Every run folder holds config.json, vocab.txt, model.safetensors, metrics.csv and curves.svg.
//
//   text_classifier train   --train data/spam/train.jsonl --valid data/spam/valid.jsonl --out runs/spam
//   text_classifier eval    --model runs/spam --data data/spam/test.jsonl      (last line: "accuracy 0.9xxx")
//   text_classifier predict --model runs/spam < texts.txt                     (one text per line -> label, p)
//   text_classifier plot    --model runs/spam                                 (metrics.csv -> curves.svg)
// `text_classifier train --help` lists the options (model size, truncation, --model bow, ...).
//
// Every option is checked before any work starts (thread count against the cores, step count, the memory the model
// needs, the run folder); a folder holding a run is continued with --resume or replaced with --overwrite. eval and
// predict check that the run folder's files belong together, and truncate texts to the run's max_length (a text
// longer than the model's position table never fails). Exit status: 0 success, 1 error, 2 bad command line.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <eigenformer/eigenformer.hpp>
#include <eigenformer/text/tokenizer.hpp>
#include <eigenformer/text/wordpiece_trainer.hpp>
#include <exception>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <mutex>
#include <new>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "bow_classifier.hpp"
#include "curves_svg.hpp"
#include "limits.hpp"

namespace {

namespace ef = eigenformer;
using ef::Index;
using Clock = std::chrono::steady_clock;

/// Every core the machine reports.
int default_threads() { return text_classifier::cores(); }

/// Parses a whole number that fits in a long long (CLI11's own parse saturates at the largest one).
bool parse_whole(const std::string& value, long long& n) {
  errno = 0;
  char* end = nullptr;
  n = std::strtoll(value.c_str(), &end, 10);
  return !value.empty() && end == value.c_str() + value.size() && errno != ERANGE;
}

/// CLI11's check of a whole-number option that must be at least lo; the message names the bound.
CLI::Validator at_least(long long lo) {
  return CLI::Validator(
      [lo](std::string& value) {
        long long n = 0;
        if (!parse_whole(value, n)) return "\"" + value + "\" is not a whole number up to 9223372036854775807";
        return n >= lo ? std::string() : value + ": expected at least " + std::to_string(lo);
      },
      ">= " + std::to_string(lo));
}

/// CLI11's check of a number option that must be finite and >= 0.
CLI::Validator non_negative() {
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
CLI::Validator threads_check() {
  return CLI::Validator(
      [](std::string& value) {
        long long n = 0;
        return parse_whole(value, n) ? text_classifier::check_threads(n) : "\"" + value + "\" is not a whole number";
      },
      "1.." + std::to_string(text_classifier::max_threads()));
}

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

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
  std::string pooling = "mean";
  std::string positional = "learned";
  double embedding_std = 0.02;  // 0: keep torch.nn.Embedding's N(0, 1)
  Index bow_dim = 64;
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

/// One text per element -> token ids, on at most `threads` threads (the tokenizer is immutable, so they share
/// it). Threads take blocks of texts from a shared counter: no more threads than blocks start, a thread the system
/// refuses to start leaves its share to the others, and the first exception stops them all and is rethrown here.
std::vector<std::vector<std::int64_t>> encode_all(const ef::text::Tokenizer& tokenizer,
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
ef::text::EncodeOptions encode_options(const ef::train::RunConfig& c, Index model_max_len = -1) {
  ef::text::EncodeOptions o;
  o.max_length = c.max_length;
  if (model_max_len > 0 && (o.max_length == 0 || o.max_length > model_max_len)) o.max_length = model_max_len;
  o.truncation = c.truncation == "head_tail" ? ef::text::Truncation::head_tail : ef::text::Truncation::head;
  o.head_tokens = c.head_tokens;
  return o;
}

/// The examples of a JSON Lines file given by option; throws ValueError when it holds none.
ef::data::TextDataset read_examples(const std::string& path, const char* option) {
  ef::data::TextDataset ds = ef::data::read_jsonl(path);
  if (ds.empty())
    throw ef::ValueError(ef::detail::concat(option, " ", path, " holds no examples, expected one JSON object per ",
                                            "line with a \"text\" and a \"label\""));
  return ds;
}

/// Refuses an --out that a run may not write into, before any work (fit() checks again when it starts).
void check_out_folder(const TrainArgs& a) {
  std::error_code ec;
  if (std::filesystem::exists(a.out_dir, ec) && !std::filesystem::is_directory(a.out_dir, ec))
    throw ef::ValueError("--out " + a.out_dir + " is a file, expected a folder");
  switch (ef::train::folder_state(a.out_dir)) {
    case ef::train::FolderState::run:
      if (!a.resume && !a.overwrite)
        throw ef::ValueError("--out " + a.out_dir + " holds a run: add --resume to continue it, or --overwrite to " +
                             "replace it once the new run has completed an epoch");
      break;
    case ef::train::FolderState::other:
      throw ef::ValueError("--out " + a.out_dir + " holds files that are not a run's: choose an empty or new " +
                           "folder");
    case ef::train::FolderState::absent_or_empty:
      break;
  }
}

/// The options that set the model's size, for messages.
std::string size_options(const TrainArgs& a) {
  if (a.model == "bow")
    return ef::detail::concat("--model bow --bow-dim ", a.bow_dim, " --vocab-size ", a.vocab_size, " --max-length ",
                              a.max_length, " --batch-size ", a.batch_size);
  return ef::detail::concat("--d-model ", a.d_model, " --ffn ", a.ffn, " --layers ", a.layers, " --heads ", a.heads,
                            " --vocab-size ", a.vocab_size, " --max-length ", a.max_length, " --batch-size ",
                            a.batch_size);
}

/// The transformer the options describe, for a vocabulary, position table and label set.
ef::nn::EncoderClassifier<float>::Options transformer_options(const TrainArgs& a, Index vocab_size, Index max_len,
                                                              Index classes, Index pad_id) {
  ef::nn::EncoderClassifier<float>::Options mo;
  mo.vocab_size = vocab_size;
  mo.max_len = max_len;
  mo.encoder.layer.d_model = a.d_model;
  mo.encoder.layer.nhead = a.heads;
  mo.encoder.num_layers = a.layers;
  mo.encoder.layer.dim_feedforward = a.ffn;
  mo.encoder.layer.dropout = static_cast<float>(a.dropout);
  mo.positional = a.positional == "none"         ? ef::nn::PositionalKind::none
                  : a.positional == "sinusoidal" ? ef::nn::PositionalKind::sinusoidal
                                                 : ef::nn::PositionalKind::learned;
  mo.head.pooling = a.pooling == "cls" ? ef::nn::Pooling::cls : ef::nn::Pooling::mean;
  mo.head.num_classes = classes;
  mo.padding_idx = pad_id;
  mo.seed = a.seed;
  return mo;
}

/// The bag-of-words baseline the options describe.
text_classifier::BowClassifier<float>::Options bow_options(const TrainArgs& a, Index vocab_size, Index classes,
                                                           Index pad_id) {
  text_classifier::BowClassifier<float>::Options mo;
  mo.vocab_size = vocab_size;
  mo.dim = a.bow_dim;
  mo.num_classes = classes;
  mo.padding_idx = pad_id;
  mo.seed = a.seed;
  return mo;
}

/// Throws ValueError naming the size options when training would not fit in memory: batch rows of length tokens
/// (0 before the data is tokenized: the parameters alone).
void check_model_fits(const TrainArgs& a, Index vocab_size, Index max_len, Index classes, Index batch, Index length) {
  const text_classifier::MemoryEstimate m =
      a.model == "bow"
          ? text_classifier::memory_estimate(bow_options(a, vocab_size, classes, 0), double(batch), double(length))
          : text_classifier::memory_estimate(transformer_options(a, vocab_size, std::max<Index>(1, max_len), classes, 0),
                                             double(batch), double(length));
  text_classifier::check_training_memory(m, size_options(a));
}

/// Checks the options against each other and the machine before any file is read; throws ValueError naming them.
void check_train_args(const TrainArgs& a) {
  using ef::detail::concat;
  if (a.max_length == 1)
    throw ef::ValueError("--max-length 1: expected 0 (the longest text) or at least 2 (for [CLS] and [SEP])");
  if (a.truncation == "head_tail" && a.max_length > 0 && a.head_tokens > a.max_length - 2)
    throw ef::ValueError(concat("--head-tokens ", a.head_tokens, ": expected -1 (a quarter) or 0 to ",
                                a.max_length - 2, " (--max-length ", a.max_length, " minus [CLS] and [SEP])"));
  if (a.model == "transformer" && a.d_model % a.heads != 0)
    throw ef::ValueError(concat("--heads ", a.heads, " does not divide --d-model ", a.d_model,
                                ": each head takes d_model / heads channels"));
  check_out_folder(a);
  check_model_fits(a, a.vocab_size, a.max_length, 2, 1, 0);  // the parameters alone, from the options
}

/// Prints the reporter's output and redraws curves.svg from metrics.csv after every epoch.
class CurvesReporter : public ef::train::ConsoleReporter {
 public:
  CurvesReporter(std::ostream& out, Options options, ef::train::RunFolder run)
      : ConsoleReporter(out, std::move(options)), run_(std::move(run)) {}
  void on_epoch_end(const ef::train::EpochRecord& r, const std::string& details) override {
    ConsoleReporter::on_epoch_end(r, details);
    text_classifier::write_curves_svg(run_.metrics(), run_.dir / "curves.svg");
  }

 private:
  ef::train::RunFolder run_;
};

int train(const TrainArgs& a) {
  const Clock::time_point start = Clock::now();
  check_train_args(a);
  ef::set_num_threads(a.threads);
  const ef::data::TextDataset train_set = read_examples(a.train_file, "--train");
  const ef::data::TextDataset valid_set = read_examples(a.valid_file, "--valid");
  const ef::data::LabelVocab labels = ef::data::LabelVocab::from_dataset(train_set);
  // Labels first: an unknown label in the validation file is named (file and line) before any tokenizing.
  std::vector<std::int64_t> train_labels = labels.encode(train_set), valid_labels = labels.encode(valid_set);
  std::cerr << "data: " << train_set.size() << " training, " << valid_set.size() << " validation examples, "
            << labels.size() << " labels\n";
  if (labels.size() == 1)
    std::cerr << "text_classifier: warning: every example of " << a.train_file << " has the label \""
              << labels.label(0) << "\": the classifier can only learn to answer it\n";
  text_classifier::check_step_count(a.epochs, train_set.size(), a.batch_size, a.accumulation);

  ef::train::RunConfig config;
  config.model_type = a.model;
  config.labels = labels.labels();
  config.max_length = a.max_length;
  config.truncation = a.truncation;
  config.head_tokens = a.head_tokens;

  // A resumed run keeps its tokenizer; a new one learns it from the training texts.
  const ef::train::RunFolder folder{a.out_dir};
  const bool have_vocab = a.resume && std::filesystem::exists(folder.vocab());
  ef::text::WordPieceTrainer::Options wpo;
  wpo.vocab_size = a.vocab_size;
  const ef::text::Tokenizer tokenizer = have_vocab
                                            ? ef::text::Tokenizer::from_file(folder.vocab())
                                            : ef::text::Tokenizer(ef::text::WordPieceTrainer(wpo).train(train_set.texts()));
  const ef::text::EncodeOptions encode = encode_options(config);
  std::vector<std::vector<std::int64_t>> train_ids = encode_all(tokenizer, train_set.texts(), encode, a.threads);
  std::vector<std::vector<std::int64_t>> valid_ids = encode_all(tokenizer, valid_set.texts(), encode, a.threads);
  Index tokens = 0, longest = 0;
  for (const auto& ids : train_ids) tokens += static_cast<Index>(ids.size());
  for (const auto* set : {&train_ids, &valid_ids})
    for (const auto& ids : *set) longest = std::max(longest, static_cast<Index>(ids.size()));
  // --max-length 0 keeps every token: the transformer's position table is sized to the longest text, and the run
  // records that length, so eval and predict truncate longer texts to it.
  Index max_len = a.max_length;
  if (a.max_length == 0 && a.model == "transformer") {
    max_len = config.max_length = std::max<Index>(2, longest);
    if (a.truncation == "head_tail" && a.head_tokens > max_len - 2)
      throw ef::ValueError(ef::detail::concat("--head-tokens ", a.head_tokens, ": expected -1 (a quarter) or 0 to ",
                                              max_len - 2, " (--max-length 0 is the longest text, ", max_len,
                                              " tokens, minus [CLS] and [SEP])"));
  }
  // Now that the lengths are known: the model and its largest batch (the longest texts, bucketed together).
  check_model_fits(a, tokenizer.vocab().size(), max_len, labels.size(), std::min(a.batch_size, train_set.size()),
                   longest);
  std::cerr << "tokenizer: " << tokenizer.vocab().size() << " WordPiece tokens, " << tokens
            << " training tokens per epoch, the longest text " << longest << " (" << std::fixed
            << std::setprecision(1) << seconds_since(start) << " s so far)\n"
            << std::defaultfloat;

  ef::data::Batcher::Options bo;
  bo.batch_size = a.batch_size;
  bo.shuffle = true;
  bo.seed = a.seed;
  bo.pad_id = tokenizer.vocab().pad_id();
  bo.bucket_batches = 50;  // similar lengths per batch: less padding
  const ef::data::Batcher train_batches(std::move(train_ids), std::move(train_labels), bo);
  bo.shuffle = false;
  const ef::data::Batcher valid_batches(std::move(valid_ids), std::move(valid_labels), bo);

  ef::train::FitOptions fo;
  fo.epochs = a.epochs;
  fo.lr = a.lr;
  fo.weight_decay = a.weight_decay;
  fo.warmup_fraction = a.warmup;
  fo.accumulation_steps = a.accumulation;
  fo.max_grad_norm = a.clip;
  fo.patience = a.patience;
  fo.run_dir = a.out_dir;
  fo.resume = a.resume;
  fo.overwrite = a.overwrite;
  fo.allow_changes = a.allow_changes;
  // What a resumed run must find unchanged besides fit's own settings: the data and how it is tokenized.
  fo.fingerprint = {{"train_data", ef::train::file_fingerprint(a.train_file)},
                    {"valid_data", ef::train::file_fingerprint(a.valid_file)},
                    {"vocab_size", a.vocab_size},
                    {"max_length", a.max_length},
                    {"truncation", a.truncation},
                    {"head_tokens", a.head_tokens},
                    {"batch_size", a.batch_size},
                    {"seed", a.seed}};
  fo.save_tokenizer = [&tokenizer](const std::filesystem::path& dir) { tokenizer.vocab().save(dir / "vocab.txt"); };
  config.training = {{"train", a.train_file},
                     {"valid", a.valid_file},
                     {"epochs", a.epochs},
                     {"lr", a.lr},
                     {"weight_decay", a.weight_decay},
                     {"warmup", a.warmup},
                     {"batch_size", a.batch_size},
                     {"accumulation", a.accumulation},
                     {"clip", a.clip},
                     {"seed", a.seed},
                     {"vocab_size", a.vocab_size}};
  ef::train::ConsoleReporter::Options ro;
  ro.interactive = ef::train::is_terminal(stderr);
  ro.show_details = true;
  CurvesReporter reporter(std::cerr, ro, ef::train::RunFolder{a.out_dir});
  fo.reporter = &reporter;

  const auto run = [&](auto& model) {
    const ef::train::FitResult r = ef::train::fit(model, train_batches, valid_batches, fo);
    std::cerr << "run folder: " << a.out_dir << " (model.safetensors = epoch " << r.best_epoch << ", valid accuracy "
              << std::fixed << std::setprecision(4) << r.best().metric("valid_accuracy") << "); total time "
              << ef::train::format_duration(seconds_since(start)) << "\n";
  };
  const Index vocab_size = tokenizer.vocab().size(), pad_id = tokenizer.vocab().pad_id();
  fo.config = config;
  if (a.model == "bow") {
    const text_classifier::BowClassifier<float>::Options mo = bow_options(a, vocab_size, labels.size(), pad_id);
    fo.config.model = ef::io::options_to_json(mo);
    text_classifier::BowClassifier<float> model(mo);
    run(model);
  } else {
    const ef::nn::EncoderClassifier<float>::Options mo =
        transformer_options(a, vocab_size, max_len, labels.size(), pad_id);
    fo.config.model = ef::io::options_to_json(mo);
    ef::nn::EncoderClassifier<float> model(mo);
    if (a.embedding_std > 0) {
      // N(0, 1) rows (torch.nn.Embedding's init) barely move in a few hundred Adam steps of ~lr each: the encoder
      // would learn on nearly random token vectors. BERT initializes its embeddings with N(0, 0.02).
      model.embedding.weight.value() *= static_cast<float>(a.embedding_std);
      if (model.pos_embedding.weight.defined())
        model.pos_embedding.weight.value() *= static_cast<float>(a.embedding_std);
    }
    run(model);
  }
  return 0;
}

/// The encoder classifier options of a run's config.json; also reads the flat form of earlier versions (every
/// field at the top level of "model").
ef::nn::EncoderClassifier<float>::Options encoder_classifier_options(const ef::train::RunConfig& config,
                                                                     const std::string& source) {
  using O = ef::nn::EncoderClassifier<float>::Options;
  if (!config.model.contains("d_model")) return ef::train::model_options<O>(config, source);
  const nlohmann::json& flat = config.model;
  nlohmann::json nested = {{"encoder", {{"layer", nlohmann::json::object()}}}, {"head", nlohmann::json::object()}};
  for (auto it = flat.begin(); it != flat.end(); ++it) {
    const std::string& k = it.key();
    if (k == "vocab_size" || k == "max_len" || k == "positional" || k == "padding_idx" || k == "seed")
      nested[k] = it.value();
    else if (k == "num_layers" || k == "final_norm")
      nested["encoder"][k] = it.value();
    else if (k == "pooling" || k == "pooler" || k == "num_classes")
      nested["head"][k] = it.value();
    else
      nested["encoder"]["layer"][k] = it.value();  // d_model, nhead, dim_feedforward, dropout, activation, ...
    if (k == "layer_norm_eps") nested["head"][k] = it.value();
  }
  return ef::io::options_from_json<O>(nested, ("model_options: " + source).c_str());
}

/// Builds the run's model from config.json, loads model.safetensors, checks the folder as a whole (the vocabulary
/// against the embedding, the labels against the head, max_length against the position table) and calls
/// f(model, the tokenizer settings for it).
template <class F>
void with_model(const ef::train::RunFolder& run, const ef::train::RunConfig& config,
                const ef::text::Tokenizer& tokenizer, F&& f) {
  const auto use = [&](auto& model, Index vocab_size, Index classes, Index max_len) {
    try {
      ef::io::load_state_dict(model, run.model());
    } catch (const ef::IoError& e) {
      throw ef::IoError(std::string(e.what()) + " (the model is built as " + run.config().string() + " describes it)");
    }
    ef::train::ModelLimits limits;
    limits.vocab_size = vocab_size;
    limits.classes = classes;
    limits.max_length = max_len;
    ef::train::check_run_folder(run, config, run.vocab(), tokenizer.vocab().size(), limits);
    f(model, encode_options(config, max_len));
  };
  if (config.model_type == "bow") {
    using Options = text_classifier::BowClassifier<float>::Options;
    const Options o = ef::train::model_options<Options>(config, run.config().string());
    text_classifier::check_weights_fit_config(run.config(), run.model(), text_classifier::memory_estimate(o, 0, 0));
    text_classifier::BowClassifier<float> model(o);
    use(model, o.vocab_size, o.num_classes, -1);
  } else if (config.model_type == "transformer") {
    const ef::nn::EncoderClassifier<float>::Options o = encoder_classifier_options(config, run.config().string());
    text_classifier::check_weights_fit_config(run.config(), run.model(), text_classifier::memory_estimate(o, 0, 0));
    ef::nn::EncoderClassifier<float> model(o);
    use(model, o.vocab_size, model.options.head.num_classes, o.max_len);
  } else {
    throw ef::ValueError("unknown model_type \"" + config.model_type + "\" in " + run.config().string());
  }
}

int evaluate(const std::string& model_dir, const std::string& data_file, Index batch_size, int threads) {
  ef::set_num_threads(threads);
  const ef::train::RunFolder run{model_dir};
  const ef::train::RunConfig config = ef::train::load_run_config(run.config());
  const ef::text::Tokenizer tokenizer = ef::text::Tokenizer::from_file(run.vocab());
  const ef::data::LabelVocab labels(config.labels);
  const ef::data::TextDataset ds = read_examples(data_file, "--data");
  std::vector<std::int64_t> label_ids = labels.encode(ds);  // an unknown label: its file and line, before any work
  ef::data::Batcher::Options bo;
  bo.batch_size = batch_size;
  bo.pad_id = tokenizer.vocab().pad_id();
  bo.bucket_batches = 50;
  with_model(run, config, tokenizer, [&](auto& model, const ef::text::EncodeOptions& encode) {
    const ef::data::Batcher batches(encode_all(tokenizer, ds.texts(), encode, threads), std::move(label_ids), bo);
    const ef::train::EvalResult r = ef::train::evaluate(model, batches);
    std::cout << "examples " << r.examples << "\n"
              << "loss " << std::fixed << std::setprecision(4) << r.loss << "\n"
              << "macro-F1 " << r.macro_f1 << "\n"
              << "confusion matrix (rows: true label, columns: predicted label)\n"
              << r.confusion.to_string(config.labels) << "\n";
    for (Index c = 0; c < labels.size(); ++c)
      std::cout << "label " << labels.label(c) << ": precision " << r.confusion.precision(c) << " recall "
                << r.confusion.recall(c) << " F1 " << r.confusion.f1(c) << " support " << r.confusion.support(c)
                << "\n";
    std::cout << "accuracy " << r.accuracy << std::endl;
  });
  return 0;
}

/// Labels each line of stdin. A line longer than the run's max_length is truncated as in training (head or
/// head_tail), so every line gets its answer.
int predict(const std::string& model_dir, int threads) {
  ef::set_num_threads(threads);
  const ef::train::RunFolder run{model_dir};
  const ef::train::RunConfig config = ef::train::load_run_config(run.config());
  const ef::text::Tokenizer tokenizer = ef::text::Tokenizer::from_file(run.vocab());
  // Answer each line at once on a terminal; batch lines from a file or a pipe.
  const std::size_t batch = ef::train::is_terminal(stdin) ? 1 : 32;
  with_model(run, config, tokenizer, [&](auto& model, const ef::text::EncodeOptions& encode) {
    std::vector<std::string> lines;
    const auto flush = [&] {
      if (lines.empty()) return;
      const ef::text::BatchEncoding b = tokenizer.encode_batch(lines, encode);
      const ef::Tensor<float> p = ef::train::predict_proba(model, b.ids, b.padding_mask);  // (B, C)
      const Index classes = p.size(1);
      for (Index i = 0; i < p.size(0); ++i) {
        const float* row = p.data() + i * classes;
        const Index best = std::max_element(row, row + classes) - row;
        std::cout << config.labels[static_cast<std::size_t>(best)] << '\t' << std::fixed << std::setprecision(4)
                  << row[best] << '\n';
      }
      std::cout.flush();
      lines.clear();
    };
    std::string line;
    while (std::getline(std::cin, line)) {
      lines.push_back(line);
      if (lines.size() >= batch) flush();
    }
    flush();
  });
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Train, evaluate and apply a text classifier (eigenformer example)"};
  app.require_subcommand(1);

  TrainArgs t;
  CLI::App* train_cmd = app.add_subcommand("train", "train a classifier on JSON Lines data");
  train_cmd->add_option("--train", t.train_file, "training data (JSON Lines: text, label)")
      ->required()
      ->check(CLI::ExistingFile);
  train_cmd->add_option("--valid", t.valid_file, "validation data (JSON Lines)")->required()->check(CLI::ExistingFile);
  train_cmd->add_option("--out", t.out_dir, "run folder to write")->required()->check(CLI::Validator(
      [](std::string& v) { return v.empty() ? std::string("expected a folder, got an empty name") : std::string(); },
      "FOLDER"));
  train_cmd->add_option("--model", t.model, "transformer or bow (bag-of-words baseline)")
      ->capture_default_str()
      ->check(CLI::IsMember({"transformer", "bow"}));
  train_cmd->add_option("--vocab-size", t.vocab_size, "WordPiece vocabulary size")
      ->capture_default_str()
      ->check(CLI::Range(5, 1 << 20));
  train_cmd->add_option("--max-length", t.max_length,
                        "tokens per text, [CLS] and [SEP] included (0 = all: the longest training or validation text)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1 << 20));
  train_cmd->add_option("--truncation", t.truncation, "head or head_tail (first and last tokens)")
      ->capture_default_str()
      ->check(CLI::IsMember({"head", "head_tail"}));
  train_cmd->add_option("--head-tokens", t.head_tokens, "head_tail: tokens kept from the start (-1 = a quarter; the rest comes from the end)")
      ->capture_default_str()
      ->check(CLI::Range(-1, 1 << 20));
  train_cmd->add_option("--d-model", t.d_model, "transformer width")->capture_default_str()->check(at_least(1));
  train_cmd->add_option("--layers", t.layers, "encoder layers")->capture_default_str()->check(at_least(0));
  train_cmd->add_option("--heads", t.heads, "attention heads")->capture_default_str()->check(at_least(1));
  train_cmd->add_option("--ffn", t.ffn, "feed-forward width")->capture_default_str()->check(at_least(1));
  train_cmd->add_option("--dropout", t.dropout, "dropout rate")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  train_cmd->add_option("--pooling", t.pooling, "mean or cls")
      ->capture_default_str()
      ->check(CLI::IsMember({"mean", "cls"}));
  train_cmd->add_option("--positional", t.positional, "position embeddings: learned, sinusoidal or none")
      ->capture_default_str()
      ->check(CLI::IsMember({"learned", "sinusoidal", "none"}));
  train_cmd->add_option("--embedding-std", t.embedding_std,
                        "std of the initial token and position embeddings (0 = N(0, 1) as torch)")
      ->capture_default_str()
      ->check(non_negative());
  train_cmd->add_option("--bow-dim", t.bow_dim, "bow: embedding size")->capture_default_str()->check(at_least(1));
  train_cmd->add_option("--epochs", t.epochs, "training epochs")->capture_default_str()->check(at_least(1));
  train_cmd->add_option("--lr", t.lr, "peak learning rate (AdamW)")
      ->capture_default_str()
      ->check(non_negative());
  train_cmd->add_option("--weight-decay", t.weight_decay, "AdamW weight decay")
      ->capture_default_str()
      ->check(non_negative());
  train_cmd->add_option("--warmup", t.warmup, "warmup steps as a fraction of all steps")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  train_cmd->add_option("--batch-size", t.batch_size, "examples per batch")->capture_default_str()->check(at_least(1));
  train_cmd->add_option("--accumulation", t.accumulation, "batches per optimizer step")
      ->capture_default_str()
      ->check(at_least(1));
  train_cmd->add_option("--clip", t.clip, "gradient norm clipping (0 = off)")
      ->capture_default_str()
      ->check(non_negative());
  train_cmd->add_option("--patience", t.patience, "early stopping patience in epochs (0 = off)")
      ->capture_default_str()
      ->check(at_least(0));
  train_cmd->add_option("--seed", t.seed, "seed of initialization, shuffling and dropout")->capture_default_str();
  train_cmd->add_option("--threads", t.threads, "threads")->capture_default_str()->check(threads_check());
  CLI::Option* resume = train_cmd->add_flag("--resume", t.resume, "continue the run in --out from its last checkpoint");
  train_cmd
      ->add_flag("--overwrite", t.overwrite,
                 "replace the run in --out (the old one stays until the new one has completed an epoch)")
      ->excludes(resume);
  train_cmd->add_option("--allow-change", t.allow_changes,
                        "with --resume: a setting that may differ from the run's (lr, epochs, ...; repeatable)");

  std::string model_dir, data_file;
  Index eval_batch = 64;
  int threads = default_threads();
  CLI::App* eval_cmd = app.add_subcommand("eval", "evaluate a trained run on JSON Lines data");
  eval_cmd->add_option("--model", model_dir, "run folder written by train")->required()->check(CLI::ExistingDirectory);
  eval_cmd->add_option("--data", data_file, "data to evaluate (JSON Lines)")->required()->check(CLI::ExistingFile);
  eval_cmd->add_option("--batch-size", eval_batch, "examples per batch")->capture_default_str()->check(at_least(1));
  eval_cmd->add_option("--threads", threads, "threads")->capture_default_str()->check(threads_check());

  CLI::App* predict_cmd = app.add_subcommand("predict", "label each line of stdin: prints label<TAB>probability");
  predict_cmd->add_option("--model", model_dir, "run folder written by train")
      ->required()
      ->check(CLI::ExistingDirectory);
  predict_cmd->add_option("--threads", threads, "threads")->capture_default_str()->check(threads_check());

  CLI::App* plot_cmd = app.add_subcommand("plot", "write curves.svg from a run's metrics.csv");
  plot_cmd->add_option("--model", model_dir, "run folder written by train")->required()->check(CLI::ExistingDirectory);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;  // --help: 0; any other parse error is a bad command line
  }
  try {
    if (*train_cmd) return train(t);
    if (*eval_cmd) return evaluate(model_dir, data_file, eval_batch, threads);
    if (*predict_cmd) return predict(model_dir, threads);
    if (*plot_cmd) {
      const ef::train::RunFolder run{model_dir};
      text_classifier::write_curves_svg(run.metrics(), run.dir / "curves.svg");
      std::cout << "wrote " << (run.dir / "curves.svg").string() << "\n";
      return 0;
    }
  } catch (const std::bad_alloc&) {
    std::cerr << "\ntext_classifier: error: out of memory (std::bad_alloc): a smaller model (--d-model, --ffn, "
              << "--layers, --vocab-size) or batch (--batch-size, --max-length) needs less\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "\ntext_classifier: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
