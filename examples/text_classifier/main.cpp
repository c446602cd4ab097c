// text_classifier: trains a text classifier on JSON Lines data ({"text": ..., "label": ...} per line), evaluates it
// and applies it, with eigenformer alone: a WordPiece tokenizer learned from the training texts, a small
// transformer encoder (or a bag-of-words baseline), AdamW with warmup and linear decay, the best validation epoch
// kept. Every run folder holds config.json, vocab.txt, model.safetensors, metrics.csv and curves.svg. It also
// pretrains a BERT on unlabeled text and fine-tunes Hugging Face BERT folders, fully or with LoRA.
//
//   text_classifier train   --train data/spam/train.jsonl --valid data/spam/valid.jsonl --out runs/spam
//   text_classifier eval    --model runs/spam --data data/spam/test.jsonl      (last line: "accuracy 0.9xxx")
//   text_classifier predict --model runs/spam < texts.txt                     (one text per line -> label, p)
//   text_classifier plot    --model runs/spam                                 (metrics.csv -> curves.svg)
//   text_classifier pretrain --corpus texts.txt --out runs/bert               (masked-LM; a Hugging Face folder)
//   text_classifier train   --init runs/bert ... [--lora-rank 8]               (fine-tunes any HF BERT folder)
//   text_classifier predict --model hf-classifier-folder --logits < texts.txt  (one line of logits per text)
//   text_classifier export  --model runs/spam-bert --out hf-folder            (a bert run -> Hugging Face folder)
// `text_classifier train --help` lists the options (model size, truncation, --model bow, ...).
//
// Every option is checked before any work starts (thread count against the cores, step count, the memory the model
// needs, the run folder); a folder holding a run is continued with --resume or replaced with --overwrite. eval and
// predict check that the run folder's files belong together, and truncate texts to the run's max_length (a text
// longer than the model's position table never fails). Exit status: 0 success, 1 error, 2 bad command line.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <eigenformer/eigenformer.hpp>
#include <eigenformer/text/tokenizer.hpp>
#include <eigenformer/text/wordpiece_trainer.hpp>
#include <exception>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <new>
#include <string>
#include <type_traits>
#include <vector>

#include "bert_commands.hpp"
#include "bow_classifier.hpp"
#include "cli_common.hpp"
#include "curves_svg.hpp"
#include "limits.hpp"
#include "pretrain.hpp"

namespace {

namespace ef = eigenformer;
using ef::Index;
using text_classifier::at_least;
using text_classifier::Clock;
using text_classifier::default_threads;
using text_classifier::non_negative;
using text_classifier::seconds_since;
using text_classifier::threads_check;
using text_classifier::TrainArgs;

/// The options that set the model's size, for messages.
std::string size_options(const TrainArgs& a) {
  if (a.model == "bow")
    return ef::detail::concat("--model bow --bow-dim ", a.bow_dim, " --vocab-size ", a.vocab_size, " --max-length ",
                              a.max_length, " --batch-size ", a.fit.batch_size);
  return ef::detail::concat("--d-model ", a.d_model, " --ffn ", a.ffn, " --layers ", a.layers, " --heads ", a.heads,
                            " --vocab-size ", a.vocab_size, " --max-length ", a.max_length, " --batch-size ",
                            a.fit.batch_size);
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
  mo.seed = a.fit.seed;
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
  mo.seed = a.fit.seed;
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
  text_classifier::check_out_folder(a.out_dir, a.fit.resume, a.fit.overwrite);
  check_model_fits(a, a.vocab_size, a.max_length, 2, 1, 0);  // the parameters alone, from the options
}

int train(const TrainArgs& a) {
  if (!a.init.empty()) return text_classifier::train_bert(a);
  const Clock::time_point start = Clock::now();
  check_train_args(a);
  ef::set_num_threads(a.fit.threads);
  text_classifier::LabelledData d = text_classifier::read_labelled_data(a);

  ef::train::RunConfig config;
  config.model_type = a.model;
  config.labels = d.labels.labels();
  config.max_length = a.max_length;
  config.truncation = a.truncation;
  config.head_tokens = a.head_tokens;

  // A resumed run keeps its tokenizer; a new one learns it from the training texts.
  const ef::train::RunFolder folder{a.out_dir};
  const bool have_vocab = a.fit.resume && std::filesystem::exists(folder.vocab());
  ef::text::WordPieceTrainer::Options wpo;
  wpo.vocab_size = a.vocab_size;
  const ef::text::Tokenizer tokenizer = have_vocab
                                            ? ef::text::Tokenizer::from_file(folder.vocab())
                                            : ef::text::Tokenizer(ef::text::WordPieceTrainer(wpo).train(d.train.texts()));
  const ef::text::EncodeOptions encode = text_classifier::encode_options(config);
  std::vector<std::vector<std::int64_t>> train_ids =
      text_classifier::encode_all(tokenizer, d.train.texts(), encode, a.fit.threads);
  std::vector<std::vector<std::int64_t>> valid_ids =
      text_classifier::encode_all(tokenizer, d.valid.texts(), encode, a.fit.threads);
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
  check_model_fits(a, tokenizer.vocab().size(), max_len, d.labels.size(), std::min(a.fit.batch_size, d.train.size()),
                   longest);
  std::cerr << "tokenizer: " << tokenizer.vocab().size() << " WordPiece tokens, " << tokens
            << " training tokens per epoch, the longest text " << longest << " (" << std::fixed
            << std::setprecision(1) << seconds_since(start) << " s so far)\n"
            << std::defaultfloat;

  // Named references, not a structured binding: the lambda below captures them (C++17 cannot capture a binding).
  auto batchers = text_classifier::make_batchers(std::move(train_ids), std::move(d.train_labels), std::move(valid_ids),
                                                 std::move(d.valid_labels), a.fit, tokenizer.vocab().pad_id());
  ef::data::Batcher& train_batches = batchers.first;
  ef::data::Batcher& valid_batches = batchers.second;
  ef::train::FitOptions fo = text_classifier::fit_options(a.fit, a.out_dir);
  // What a resumed run must find unchanged besides fit's own settings: the data and how it is tokenized.
  fo.fingerprint = {{"train_data", ef::train::file_fingerprint(a.train_file)},
                    {"valid_data", ef::train::file_fingerprint(a.valid_file)},
                    {"vocab_size", a.vocab_size},
                    {"max_length", a.max_length},
                    {"truncation", a.truncation},
                    {"head_tokens", a.head_tokens},
                    {"batch_size", a.fit.batch_size},
                    {"seed", a.fit.seed}};
  fo.save_tokenizer = [&tokenizer](const std::filesystem::path& dir) { tokenizer.vocab().save(dir / "vocab.txt"); };
  config.training = text_classifier::fit_record(a.fit);
  config.training["train"] = a.train_file;
  config.training["valid"] = a.valid_file;
  config.training["vocab_size"] = a.vocab_size;
  text_classifier::CurvesReporter reporter(std::cerr, text_classifier::console_options(true),
                                           ef::train::RunFolder{a.out_dir});
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
    const text_classifier::BowClassifier<float>::Options mo = bow_options(a, vocab_size, d.labels.size(), pad_id);
    fo.config.model = ef::io::options_to_json(mo);
    text_classifier::BowClassifier<float> model(mo);
    run(model);
  } else {
    const ef::nn::EncoderClassifier<float>::Options mo =
        transformer_options(a, vocab_size, max_len, d.labels.size(), pad_id);
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

/// Builds the model of a folder (a run folder: from config.json and model.safetensors; a Hugging Face BERT
/// classifier folder), checks the folder as a whole (the vocabulary against the embedding, the labels against the
/// head, max_length against the position table) and calls f(model, the tokenizer settings for it).
template <class F>
void with_model(const text_classifier::ModelFolder& folder, const ef::text::Tokenizer& tokenizer, F&& f) {
  const ef::train::RunFolder& run = folder.run;
  const ef::train::RunConfig& config = folder.config;
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
    f(model, text_classifier::encode_options(config, max_len));
  };
  if (folder.hf || config.model_type == "bert") {
    text_classifier::with_bert_model(folder, tokenizer, f);
  } else if (config.model_type == "bow") {
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
  const text_classifier::ModelFolder folder = text_classifier::open_model_folder(model_dir);
  const ef::data::LabelVocab labels(folder.config.labels);
  const ef::data::TextDataset ds = text_classifier::read_examples(data_file, "--data");
  std::vector<std::int64_t> label_ids = labels.encode(ds);  // an unknown label: its file and line, before any work
  const ef::text::Tokenizer tokenizer = text_classifier::load_folder_tokenizer(folder);
  ef::data::Batcher::Options bo;
  bo.batch_size = batch_size;
  bo.pad_id = tokenizer.vocab().pad_id();
  bo.bucket_batches = 50;
  with_model(folder, tokenizer, [&](auto& model, const ef::text::EncodeOptions& encode) {
    const ef::data::Batcher batches(text_classifier::encode_all(tokenizer, ds.texts(), encode, threads),
                                    std::move(label_ids), bo);
    const ef::train::EvalResult r = ef::train::evaluate(model, batches);
    std::cout << "examples " << r.examples << "\n"
              << "loss " << std::fixed << std::setprecision(4) << r.loss << "\n"
              << "macro-F1 " << r.macro_f1 << "\n"
              << "confusion matrix (rows: true label, columns: predicted label)\n"
              << r.confusion.to_string(folder.config.labels) << "\n";
    for (Index c = 0; c < labels.size(); ++c)
      std::cout << "label " << labels.label(c) << ": precision " << r.confusion.precision(c) << " recall "
                << r.confusion.recall(c) << " F1 " << r.confusion.f1(c) << " support " << r.confusion.support(c)
                << "\n";
    std::cout << "accuracy " << r.accuracy << std::endl;
  });
  return 0;
}

/// Labels each line of stdin (label<TAB>probability), or with logits prints the model's logits (printf's %.6g,
/// separated by spaces). A line longer than the run's max_length is truncated as in training (head or head_tail),
/// so every line gets its answer.
int predict(const std::string& model_dir, bool logits, int threads) {
  ef::set_num_threads(threads);
  const text_classifier::ModelFolder folder = text_classifier::open_model_folder(model_dir);
  const ef::text::Tokenizer tokenizer = text_classifier::load_folder_tokenizer(folder);
  // Answer each line at once on a terminal; batch lines from a file or a pipe.
  const std::size_t batch = ef::train::is_terminal(stdin) ? 1 : 32;
  with_model(folder, tokenizer, [&](auto& model, const ef::text::EncodeOptions& encode) {
    std::vector<std::string> lines;
    const auto flush = [&] {
      if (lines.empty()) return;
      const ef::text::BatchEncoding b = tokenizer.encode_batch(lines, encode);
      const ef::Tensor<float> out = [&] {
        if (!logits) return ef::train::predict_proba(model, b.ids, b.padding_mask);  // (B, C)
        ef::EvalModeGuard<std::decay_t<decltype(model)>> mode(model);
        return ef::infer(model, b.ids, b.padding_mask).value();  // (B, C)
      }();
      const Index classes = out.size(1);
      for (Index i = 0; i < out.size(0); ++i) {
        const float* row = out.data() + i * classes;
        if (logits) {
          char value[32];
          for (Index c = 0; c < classes; ++c) {
            std::snprintf(value, sizeof value, "%.6g", static_cast<double>(row[c]));
            std::cout << (c > 0 ? " " : "") << value;
          }
          std::cout << '\n';
          continue;
        }
        const Index best = std::max_element(row, row + classes) - row;
        std::cout << folder.config.labels[static_cast<std::size_t>(best)] << '\t' << std::fixed
                  << std::setprecision(4) << row[best] << '\n';
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

/// The options of train that set the size of a model it builds: --init takes the size from the folder.
const char* const kSizeOptions[] = {"--model",   "--vocab-size", "--d-model",       "--layers",  "--heads",
                                    "--ffn",     "--pooling",    "--positional",    "--bow-dim", "--embedding-std"};

}  // namespace

/// Swallows what is written to it (the progress of ranks other than 0).
struct NullBuffer : std::streambuf {
  int overflow(int c) override { return traits_type::not_eof(c); }
};

int main(int argc, char** argv) {
  CLI::App app{"Train, evaluate and apply a text classifier (eigenformer example)"};
  app.require_subcommand(1);
  app.fallthrough();  // --matmul-precision may follow the command
  std::string matmul_precision = "highest";
  app.add_option("--matmul-precision", matmul_precision,
                 "float32 matmul precision of every command: highest, or medium (matrix products in bf16 with "
                 "float sums on CPUs with AVX512_BF16)")
      ->capture_default_str()
      ->check(CLI::IsMember({"highest", "high", "medium"}));

  TrainArgs t;
  CLI::App* train_cmd = app.add_subcommand("train", "train a classifier on JSON Lines data");
  train_cmd->add_option("--train", t.train_file, "training data (JSON Lines: text, label)")
      ->required()
      ->check(CLI::ExistingFile);
  train_cmd->add_option("--valid", t.valid_file, "validation data (JSON Lines)")->required()->check(CLI::ExistingFile);
  train_cmd->add_option("--out", t.out_dir, "run folder to write")->required()->check(text_classifier::folder_name());
  train_cmd->add_option("--model", t.model, "transformer or bow (bag-of-words baseline)")
      ->capture_default_str()
      ->check(CLI::IsMember({"transformer", "bow"}));
  train_cmd->add_option("--vocab-size", t.vocab_size, "WordPiece vocabulary size")
      ->capture_default_str()
      ->check(CLI::Range(5, 1 << 20));
  train_cmd->add_option("--max-length", t.max_length,
                        "tokens per text, [CLS] and [SEP] included (0 = all: the longest training or validation text; "
                        "with --init at most, and 0 = all of, the model's max_position_embeddings)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1 << 20));
  CLI::Option* truncation = train_cmd->add_option("--truncation", t.truncation, "head or head_tail (first and last tokens; with --init: the folder's, when pretrain recorded it)")
      ->capture_default_str()
      ->check(CLI::IsMember({"head", "head_tail"}));
  CLI::Option* head_tokens = train_cmd->add_option("--head-tokens", t.head_tokens, "head_tail: tokens kept from the start (-1 = a quarter; the rest comes from the end)")
      ->capture_default_str()
      ->check(CLI::Range(-1, 1 << 20));
  train_cmd->add_option("--d-model", t.d_model, "transformer width")->capture_default_str()->check(at_least(1));
  train_cmd->add_option("--layers", t.layers, "encoder layers")->capture_default_str()->check(at_least(0));
  train_cmd->add_option("--heads", t.heads, "attention heads")->capture_default_str()->check(at_least(1));
  train_cmd->add_option("--ffn", t.ffn, "feed-forward width")->capture_default_str()->check(at_least(1));
  CLI::Option* dropout =
      train_cmd->add_option("--dropout", t.dropout, "dropout rate (with --init: the folder's rates unless given)")
          ->capture_default_str()
          ->check(CLI::Range(0.0, 1.0));
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
  CLI::Option* lr = text_classifier::add_fit_options(
      train_cmd, t.fit, "peak learning rate (AdamW; with --init the default is 5e-5, with --lora-rank 5e-4)");
  CLI::Option* init =
      train_cmd->add_option("--init", t.init,
                            "fine-tune a BERT from this Hugging Face folder (written by pretrain, or any BERT: "
                            "config.json, model.safetensors, vocab.txt or tokenizer.json); the model size options "
                            "do not apply")
          ->check(CLI::ExistingDirectory);
  CLI::Option* lora_rank =
      train_cmd->add_option("--lora-rank", t.lora_rank,
                            "with --init: train LoRA adapters of this rank on query and value (the classifier in "
                            "full) instead of every weight")
          ->check(at_least(1))
          ->needs(init);
  train_cmd->add_option("--lora-alpha", t.lora_alpha, "LoRA's alpha: the update is scaled by alpha / rank (default: "
                                                      "twice --lora-rank)")
      ->check(non_negative())
      ->needs(lora_rank);
  train_cmd->add_option("--lora-dropout", t.lora_dropout, "dropout on the LoRA adapters' input")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0))
      ->needs(lora_rank);

  text_classifier::PretrainArgs p;
  CLI::App* pretrain_cmd = app.add_subcommand(
      "pretrain", "pretrain a BERT on unlabeled text (masked-LM); writes a Hugging Face BertForMaskedLM folder");
  pretrain_cmd->add_option("--corpus", p.corpus, "text files: a .jsonl file's \"text\" fields, else one text per line")
      ->required()
      ->expected(1, -1)
      ->check(CLI::ExistingFile);
  CLI::Option* pretrain_valid =
      pretrain_cmd->add_option("--valid", p.valid_file, "validation texts (as --corpus; default: held out)")
          ->check(CLI::ExistingFile);
  pretrain_cmd->add_option("--valid-fraction", p.valid_fraction,
                           "without --valid: the fraction of the texts held out for validation, chosen by --seed")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0))
      ->excludes(pretrain_valid);
  pretrain_cmd->add_option("--out", p.out_dir, "folder to write: the model folder, its run in DIR/training")
      ->required()
      ->check(text_classifier::folder_name());
  CLI::Option* pretrain_tokenizer =
      pretrain_cmd
          ->add_option("--tokenizer", p.tokenizer_dir,
                       "a BERT tokenizer folder to use (vocab.txt or tokenizer.json; default: WordPiece learned from "
                       "the texts)")
          ->check(CLI::ExistingDirectory);
  pretrain_cmd->add_option("--vocab-size", p.vocab_size, "WordPiece vocabulary size (learned, uncased)")
      ->capture_default_str()
      ->check(CLI::Range(6, 1 << 20))
      ->excludes(pretrain_tokenizer);
  pretrain_cmd->add_option("--hidden", p.hidden, "hidden size")->capture_default_str()->check(at_least(1));
  pretrain_cmd->add_option("--layers", p.layers, "encoder layers")->capture_default_str()->check(at_least(0));
  pretrain_cmd->add_option("--heads", p.heads, "attention heads")->capture_default_str()->check(at_least(1));
  pretrain_cmd->add_option("--intermediate", p.intermediate, "feed-forward size")
      ->capture_default_str()
      ->check(at_least(1));
  pretrain_cmd->add_option("--max-length", p.max_length,
                           "tokens per text, [CLS] and [SEP] included (longer texts are truncated); also the "
                           "model's max_position_embeddings")
      ->capture_default_str()
      ->check(CLI::Range(3, 1 << 16));
  pretrain_cmd->add_option("--truncation", p.truncation, "head or head_tail (first and last tokens of a long text)")
      ->capture_default_str()
      ->check(CLI::IsMember({"head", "head_tail"}));
  pretrain_cmd->add_option("--head-tokens", p.head_tokens, "head_tail: tokens kept from the start (-1 = a quarter; the rest comes from the end)")
      ->capture_default_str()
      ->check(CLI::Range(-1, 1 << 20));
  pretrain_cmd->add_option("--dropout", p.dropout, "dropout rate (hidden and attention)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  pretrain_cmd->add_option("--mask-probability", p.mask_probability, "the fraction of each text's tokens predicted")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  pretrain_cmd->add_flag("--whole-word", p.whole_word, "choose whole words (with their ## pieces) to mask");
  text_classifier::add_fit_options(pretrain_cmd, p.fit);

  std::string model_dir, data_file, out_dir;
  Index eval_batch = 64;
  int threads = default_threads();
  bool logits = false, overwrite = false;
  CLI::App* eval_cmd = app.add_subcommand("eval", "evaluate a trained run on JSON Lines data");
  eval_cmd->add_option("--model", model_dir, "run folder written by train, or a Hugging Face BERT classifier folder")
      ->required()
      ->check(CLI::ExistingDirectory);
  eval_cmd->add_option("--data", data_file, "data to evaluate (JSON Lines)")->required()->check(CLI::ExistingFile);
  eval_cmd->add_option("--batch-size", eval_batch, "examples per batch")->capture_default_str()->check(at_least(1));
  eval_cmd->add_option("--threads", threads, "threads")->capture_default_str()->check(threads_check());

  CLI::App* predict_cmd = app.add_subcommand("predict", "label each line of stdin: prints label<TAB>probability");
  predict_cmd->add_option("--model", model_dir, "run folder written by train, or a Hugging Face BERT classifier folder")
      ->required()
      ->check(CLI::ExistingDirectory);
  predict_cmd->add_flag("--logits", logits, "print each line's logits instead (%.6g, separated by spaces)");
  predict_cmd->add_option("--threads", threads, "threads")->capture_default_str()->check(threads_check());

  CLI::App* export_cmd = app.add_subcommand(
      "export", "write a bert run (train --init) as a Hugging Face BertForSequenceClassification folder");
  export_cmd->add_option("--model", model_dir, "run folder written by train --init")
      ->required()
      ->check(CLI::ExistingDirectory);
  export_cmd->add_option("--out", out_dir, "folder to write")->required()->check(text_classifier::folder_name());
  export_cmd->add_flag("--overwrite", overwrite, "write into a folder that is not empty");

  CLI::App* plot_cmd = app.add_subcommand("plot", "write curves.svg from a run's metrics.csv");
  plot_cmd->add_option("--model", model_dir, "run folder written by train")->required()->check(CLI::ExistingDirectory);

  try {
    app.parse(argc, argv);
    if (*train_cmd && !t.init.empty()) {  // the size comes from the folder
      for (const char* name : kSizeOptions)
        if (train_cmd->get_option(name)->count() > 0)
          throw CLI::ValidationError(name, std::string("does not apply with --init: the model's size comes from ") +
                                               t.init + "/config.json");
      if (lr->count() == 0) t.fit.lr = t.lora_rank > 0 ? 5e-4 : 5e-5;
      t.dropout_given = dropout->count() > 0;
      t.truncation_given = truncation->count() > 0 || head_tokens->count() > 0;
    }
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;  // --help: 0; any other parse error is a bad command line
  }
#if defined(EIGENFORMER_WITH_MPI)
  // Started by mpirun or srun: train and pretrain split every batch among the ranks; rank 0 alone prints and
  // writes; the other commands run on rank 0 only.
  std::unique_ptr<ef::dist::Environment> mpi;
  if (ef::dist::launched()) {
    mpi = std::make_unique<ef::dist::Environment>(&argc, &argv);
    if (mpi->size() > 1) text_classifier::world() = &mpi->world();
  }
#endif
  const int rank = text_classifier::world() ? text_classifier::world()->rank() : 0;
  std::streambuf* const errors = std::cerr.rdbuf();
  static NullBuffer quiet;  // outlives main: std::cerr may be flushed at exit
  if (rank != 0) {
    if (!*train_cmd && !*pretrain_cmd) return 0;
    std::cerr.rdbuf(&quiet);  // progress comes from rank 0; errors from any rank (below)
  }
  // One rank's error ends every rank (the others would wait for it in the next sum forever).
  const auto fail = [&](const std::string& message) {
    std::cerr.rdbuf(errors);
    std::cerr << "\ntext_classifier: " << (text_classifier::world_size() > 1 ? "rank " + std::to_string(rank) + ": " : "")
              << "error: " << message << std::endl;
#if defined(EIGENFORMER_WITH_MPI)
    if (text_classifier::world_size() > 1) mpi->abort(1);
#endif
    return 1;
  };
  try {
    ef::set_float32_matmul_precision(matmul_precision);
    if (*train_cmd) return train(t);
    if (*pretrain_cmd) return text_classifier::pretrain(p);
    if (*eval_cmd) return evaluate(model_dir, data_file, eval_batch, threads);
    if (*predict_cmd) return predict(model_dir, logits, threads);
    if (*export_cmd) return text_classifier::export_bert(model_dir, out_dir, overwrite);
    if (*plot_cmd) {
      const ef::train::RunFolder run{model_dir};
      text_classifier::write_curves_svg(run.metrics(), run.dir / "curves.svg");
      std::cout << "wrote " << (run.dir / "curves.svg").string() << "\n";
      return 0;
    }
  } catch (const std::bad_alloc&) {
    return fail("out of memory (std::bad_alloc): a smaller model (--d-model, --ffn, --layers, --vocab-size) or "
                "batch (--batch-size, --max-length) needs less");
  } catch (const std::exception& e) {
    return fail(e.what());
  }
  return 0;
}
