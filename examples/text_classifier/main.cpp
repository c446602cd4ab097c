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
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <eigenformer/eigenformer.hpp>
#include <eigenformer/text/tokenizer.hpp>
#include <eigenformer/text/wordpiece_trainer.hpp>
#include <exception>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "bow_classifier.hpp"
#include "curves_svg.hpp"

namespace {

namespace ef = eigenformer;
using ef::Index;
using Clock = std::chrono::steady_clock;

/// Every core the machine reports (at least one).
int default_threads() { return std::max(1, static_cast<int>(std::thread::hardware_concurrency())); }

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

/// One text per element -> token ids, on `threads` threads (the tokenizer is immutable, so it is shared).
std::vector<std::vector<std::int64_t>> encode_all(const ef::text::Tokenizer& tokenizer,
                                                  const std::vector<std::string>& texts,
                                                  const ef::text::EncodeOptions& options, int threads) {
  std::vector<std::vector<std::int64_t>> out(texts.size());
  const std::size_t n = texts.size(), parts = static_cast<std::size_t>(std::max(1, threads));
  std::vector<std::exception_ptr> errors(parts);  // an exception in a worker is rethrown here, not std::terminate
  const auto work = [&](std::size_t part) {
    try {
      for (std::size_t i = n * part / parts; i < n * (part + 1) / parts; ++i)
        out[i] = tokenizer.encode(texts[i], options);
    } catch (...) {
      errors[part] = std::current_exception();
    }
  };
  std::vector<std::thread> pool;
  for (std::size_t p = 1; p < parts; ++p) pool.emplace_back(work, p);
  work(0);
  for (std::thread& t : pool) t.join();
  for (const std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);
  return out;
}

ef::text::EncodeOptions encode_options(const ef::train::RunConfig& c) {
  ef::text::EncodeOptions o;
  o.max_length = c.max_length;
  o.truncation = c.truncation == "head_tail" ? ef::text::Truncation::head_tail : ef::text::Truncation::head;
  o.head_tokens = c.head_tokens;
  return o;
}

/// The examples of a JSONL file as a Batcher (labels by the run's label list).
ef::data::Batcher make_batcher(const ef::data::TextDataset& ds, const ef::data::LabelVocab& labels,
                               const ef::text::Tokenizer& tokenizer, const ef::text::EncodeOptions& encode,
                               ef::data::Batcher::Options options, int threads) {
  return ef::data::Batcher(encode_all(tokenizer, ds.texts(), encode, threads), labels.encode(ds), options);
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
  ef::set_num_threads(a.threads);
  const ef::data::TextDataset train_set = ef::data::read_jsonl(a.train_file);
  const ef::data::TextDataset valid_set = ef::data::read_jsonl(a.valid_file);
  const ef::data::LabelVocab labels = ef::data::LabelVocab::from_dataset(train_set);
  std::cerr << "data: " << train_set.size() << " training, " << valid_set.size() << " validation examples, "
            << labels.size() << " labels\n";

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
  ef::data::Batcher::Options bo;
  bo.batch_size = a.batch_size;
  bo.shuffle = true;
  bo.seed = a.seed;
  bo.pad_id = tokenizer.vocab().pad_id();
  bo.bucket_batches = 50;  // similar lengths per batch: less padding
  const ef::data::Batcher train_batches = make_batcher(train_set, labels, tokenizer, encode, bo, a.threads);
  bo.shuffle = false;
  const ef::data::Batcher valid_batches = make_batcher(valid_set, labels, tokenizer, encode, bo, a.threads);
  Index tokens = 0;
  for (const auto& s : train_batches.sequences()) tokens += static_cast<Index>(s.size());
  std::cerr << "tokenizer: " << tokenizer.vocab().size() << " WordPiece tokens, " << tokens
            << " training tokens per epoch (" << std::fixed << std::setprecision(1) << seconds_since(start)
            << " s so far)\n"
            << std::defaultfloat;

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
  if (a.model == "bow") {
    text_classifier::BowClassifier<float>::Options mo;
    mo.vocab_size = tokenizer.vocab().size();
    mo.dim = a.bow_dim;
    mo.num_classes = labels.size();
    mo.padding_idx = tokenizer.vocab().pad_id();
    mo.seed = a.seed;
    fo.config = config;
    fo.config.model = ef::io::options_to_json(mo);
    text_classifier::BowClassifier<float> model(mo);
    run(model);
  } else {
    ef::nn::EncoderClassifier<float>::Options mo;
    mo.vocab_size = tokenizer.vocab().size();
    mo.max_len = a.max_length > 0 ? a.max_length : 512;
    mo.encoder.layer.d_model = a.d_model;
    mo.encoder.layer.nhead = a.heads;
    mo.encoder.num_layers = a.layers;
    mo.encoder.layer.dim_feedforward = a.ffn;
    mo.encoder.layer.dropout = static_cast<float>(a.dropout);
    mo.positional = a.positional == "none"         ? ef::nn::PositionalKind::none
                    : a.positional == "sinusoidal" ? ef::nn::PositionalKind::sinusoidal
                                                   : ef::nn::PositionalKind::learned;
    mo.head.pooling = a.pooling == "cls" ? ef::nn::Pooling::cls : ef::nn::Pooling::mean;
    mo.head.num_classes = labels.size();
    mo.padding_idx = tokenizer.vocab().pad_id();
    mo.seed = a.seed;
    fo.config = config;
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

/// Builds the run's model, loads model.safetensors and calls f(model).
template <class F>
void with_model(const std::filesystem::path& dir, const ef::train::RunConfig& config, F&& f) {
  const ef::train::RunFolder run{dir};
  if (config.model_type == "bow") {
    text_classifier::BowClassifier<float> model(
        ef::train::model_options<text_classifier::BowClassifier<float>::Options>(config, run.config().string()));
    ef::io::load_state_dict(model, run.model());
    f(model);
  } else if (config.model_type == "transformer") {
    ef::nn::EncoderClassifier<float> model(encoder_classifier_options(config, run.config().string()));
    ef::io::load_state_dict(model, run.model());
    f(model);
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
  const ef::data::TextDataset ds = ef::data::read_jsonl(data_file);
  ef::data::Batcher::Options bo;
  bo.batch_size = batch_size;
  bo.pad_id = tokenizer.vocab().pad_id();
  bo.bucket_batches = 50;
  const ef::data::Batcher batches = make_batcher(ds, labels, tokenizer, encode_options(config), bo, threads);
  with_model(model_dir, config, [&](auto& model) {
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

int predict(const std::string& model_dir, int threads) {
  ef::set_num_threads(threads);
  const ef::train::RunFolder run{model_dir};
  const ef::train::RunConfig config = ef::train::load_run_config(run.config());
  const ef::text::Tokenizer tokenizer = ef::text::Tokenizer::from_file(run.vocab());
  const ef::text::EncodeOptions encode = encode_options(config);
  // Answer each line at once on a terminal; batch lines from a file or a pipe.
  const std::size_t batch = ef::train::is_terminal(stdin) ? 1 : 32;
  with_model(model_dir, config, [&](auto& model) {
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
  train_cmd->add_option("--out", t.out_dir, "run folder to write")->required();
  train_cmd->add_option("--model", t.model, "transformer or bow (bag-of-words baseline)")
      ->capture_default_str()
      ->check(CLI::IsMember({"transformer", "bow"}));
  train_cmd->add_option("--vocab-size", t.vocab_size, "WordPiece vocabulary size")
      ->capture_default_str()
      ->check(CLI::Range(5, 1 << 20));
  train_cmd->add_option("--max-length", t.max_length, "tokens per text, [CLS] and [SEP] included (0 = all)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1 << 20));
  train_cmd->add_option("--truncation", t.truncation, "head or head_tail (first and last tokens)")
      ->capture_default_str()
      ->check(CLI::IsMember({"head", "head_tail"}));
  train_cmd->add_option("--head-tokens", t.head_tokens, "head_tail: tokens kept from the start (-1 = a quarter; the rest comes from the end)")
      ->capture_default_str();
  train_cmd->add_option("--d-model", t.d_model, "transformer width")->capture_default_str()->check(CLI::PositiveNumber);
  train_cmd->add_option("--layers", t.layers, "encoder layers")->capture_default_str()->check(CLI::NonNegativeNumber);
  train_cmd->add_option("--heads", t.heads, "attention heads")->capture_default_str()->check(CLI::PositiveNumber);
  train_cmd->add_option("--ffn", t.ffn, "feed-forward width")->capture_default_str()->check(CLI::PositiveNumber);
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
      ->check(CLI::NonNegativeNumber);
  train_cmd->add_option("--bow-dim", t.bow_dim, "bow: embedding size")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  train_cmd->add_option("--epochs", t.epochs, "training epochs")->capture_default_str()->check(CLI::NonNegativeNumber);
  train_cmd->add_option("--lr", t.lr, "peak learning rate (AdamW)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  train_cmd->add_option("--weight-decay", t.weight_decay, "AdamW weight decay")->capture_default_str();
  train_cmd->add_option("--warmup", t.warmup, "warmup steps as a fraction of all steps")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  train_cmd->add_option("--batch-size", t.batch_size, "examples per batch")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  train_cmd->add_option("--accumulation", t.accumulation, "batches per optimizer step")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  train_cmd->add_option("--clip", t.clip, "gradient norm clipping (0 = off)")->capture_default_str();
  train_cmd->add_option("--patience", t.patience, "early stopping patience in epochs (0 = off)")->capture_default_str();
  train_cmd->add_option("--seed", t.seed, "seed of initialization, shuffling and dropout")->capture_default_str();
  train_cmd->add_option("--threads", t.threads, "threads")->capture_default_str()->check(CLI::PositiveNumber);
  train_cmd->add_flag("--resume", t.resume, "continue the run in --out from its last checkpoint");
  train_cmd->add_flag("--overwrite", t.overwrite,
                      "replace the run in --out (the old one stays until the new one has completed an epoch)");
  train_cmd->add_option("--allow-change", t.allow_changes,
                        "with --resume: a setting that may differ from the run's (lr, epochs, ...; repeatable)");

  std::string model_dir, data_file;
  Index eval_batch = 64;
  int threads = default_threads();
  CLI::App* eval_cmd = app.add_subcommand("eval", "evaluate a trained run on JSON Lines data");
  eval_cmd->add_option("--model", model_dir, "run folder written by train")->required()->check(CLI::ExistingDirectory);
  eval_cmd->add_option("--data", data_file, "data to evaluate (JSON Lines)")->required()->check(CLI::ExistingFile);
  eval_cmd->add_option("--batch-size", eval_batch, "examples per batch")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  eval_cmd->add_option("--threads", threads, "threads")->capture_default_str()->check(CLI::PositiveNumber);

  CLI::App* predict_cmd = app.add_subcommand("predict", "label each line of stdin: prints label<TAB>probability");
  predict_cmd->add_option("--model", model_dir, "run folder written by train")
      ->required()
      ->check(CLI::ExistingDirectory);
  predict_cmd->add_option("--threads", threads, "threads")->capture_default_str()->check(CLI::PositiveNumber);

  CLI::App* plot_cmd = app.add_subcommand("plot", "write curves.svg from a run's metrics.csv");
  plot_cmd->add_option("--model", model_dir, "run folder written by train")->required()->check(CLI::ExistingDirectory);

  CLI11_PARSE(app, argc, argv);
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
  } catch (const std::exception& e) {
    std::cerr << "\ntext_classifier: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
