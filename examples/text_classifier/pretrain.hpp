// text_classifier pretrain: masked-language-model pretraining of a BERT on unlabeled text (Devlin et al. 2019;
// train/masked_lm.hpp: 15% of each text's tokens chosen, 80% of them [MASK], 10% a random token, 10% kept, drawn
// anew every epoch; optionally whole words), writing a Hugging Face BertForMaskedLM folder that `train --init`
// fine-tunes and transformers loads.
//
// --out DIR holds
//   config.json model.safetensors       the Hugging Face BertForMaskedLM of the best epoch (lowest validation loss)
//   vocab.txt tokenizer_config.json special_tokens_map.json   its tokenizer (BertTokenizer's files)
//   training/                           fit()'s run folder: checkpoints, metrics.csv, curves.svg; --resume continues it
// The model files are replaced (each atomically, weights before config.json) after every epoch that improves the
// validation loss, and once more when training ends, so a killed run leaves the last best epoch's folder, and a
// resumed run writes the folder of its best epoch whatever the kill interrupted.
#pragma once

#include <cstdint>
#include <eigenformer/data/shuffle.hpp>
#include <eigenformer/eigenformer.hpp>
#include <eigenformer/text/wordpiece_trainer.hpp>
#include <eigenformer/train/masked_lm.hpp>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "bert_commands.hpp"
#include "cli_common.hpp"

namespace text_classifier {

/// The options of `pretrain`.
struct PretrainArgs {
  std::vector<std::string> corpus;
  std::string valid_file;
  double valid_fraction = 0.05;
  std::string out_dir;
  std::string tokenizer_dir;  // empty: learn a WordPiece vocabulary from the corpus
  Index vocab_size = 8000;
  Index hidden = 256;
  Index layers = 4;
  Index heads = 4;
  Index intermediate = 1024;
  Index max_length = 128;  // ids per text, [CLS] and [SEP] included; also the model's position table
  std::string truncation = "head";  // or head_tail: the first head_tokens and the last tokens of a long text
  Index head_tokens = -1;           // head_tail: -1 = a quarter of what fits
  double dropout = 0.1;
  double mask_probability = 0.15;
  bool whole_word = false;
  FitArgs fit;
  PretrainArgs() { fit.lr = 5e-4; }
};

/// The texts of a corpus file: the "text" field of each line of a .jsonl file, else each non-blank line. Throws
/// IoError naming the option, the file and the line of a bad JSON line.
inline std::vector<std::string> read_corpus(const std::string& path, const char* option) {
  const std::string data = ef::data::detail::read_text_file("pretrain", path);
  const bool jsonl = path.size() >= 6 && path.compare(path.size() - 6, 6, ".jsonl") == 0;
  std::vector<std::string> texts;
  std::string_view rest = ef::data::detail::skip_bom(data);
  for (Index line_no = 1; !rest.empty(); ++line_no) {
    const std::size_t eol = rest.find('\n');
    std::string_view line = rest.substr(0, eol);
    rest = eol == std::string_view::npos ? std::string_view() : rest.substr(eol + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (ef::data::detail::is_blank(line)) continue;
    if (!jsonl) {
      texts.emplace_back(line);
      continue;
    }
    const auto fail = [&](const std::string& what) {
      return ef::IoError(concat(option, " ", path, ", line ", line_no, ": ", what));
    };
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line.begin(), line.end());
    } catch (const nlohmann::json::parse_error& e) {
      throw fail(concat("bad JSON: ", ef::data::detail::json_error_detail(e)));
    }
    if (!j.is_object() || !j.contains("text") || !j["text"].is_string())
      throw fail("expected a JSON object with a string \"text\"");
    std::string text = j["text"].get<std::string>();
    if (!ef::data::detail::is_blank(text)) texts.push_back(std::move(text));
  }
  return texts;
}

/// Refuses an --out that pretrain may not write into: a file, a folder of other files, a finished or interrupted
/// pretraining without --resume or --overwrite.
inline void check_pretrain_folder(const PretrainArgs& a) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(a.out_dir, ec)) return;
  if (!fs::is_directory(a.out_dir, ec)) throw ef::ValueError("--out " + a.out_dir + " is a file, expected a folder");
  const fs::path training = fs::path(a.out_dir) / "training";
  const bool has_run = ef::train::folder_state(training) == ef::train::FolderState::run;
  for (const auto& entry : fs::directory_iterator(a.out_dir, ec)) {
    const std::string name = entry.path().filename().string();
    const bool ours = name == "training" || name.rfind("training.", 0) == 0 ||  // the run and fit's staging folders
                      ((name == "config.json" || name == "model.safetensors" || name == "vocab.txt" ||
                        name == "tokenizer_config.json" || name == "special_tokens_map.json" ||
                        name.find(".tmp.") != std::string::npos) &&
                       has_run);
    if (!ours)
      throw ef::ValueError("--out " + a.out_dir + " holds files that are not a pretraining run's (" + name +
                           "): choose an empty or new folder");
  }
  if (has_run && !a.fit.resume && !a.fit.overwrite)
    throw ef::ValueError("--out " + a.out_dir + " holds a pretraining run (" + training.string() + "): add --resume " +
                         "to continue it, or --overwrite to replace it once the new run has completed an epoch");
  if (!has_run && ef::train::folder_state(training) == ef::train::FolderState::other)
    throw ef::ValueError("--out " + a.out_dir + ": " + training.string() +
                         " holds files that are not a run's: " + "choose an empty or new folder");
}

/// pretrain: masked-LM pretraining on --corpus, validated on --valid or a held-out fraction.
inline int pretrain(const PretrainArgs& a) {
  namespace fs = std::filesystem;
  const Clock::time_point start = Clock::now();
  if (a.hidden % a.heads != 0)
    throw ef::ValueError(concat("--heads ", a.heads, " does not divide --hidden ", a.hidden,
                                ": each head takes hidden / heads channels"));
  if (a.truncation == "head_tail" && a.head_tokens > a.max_length - 2)
    throw ef::ValueError(concat("--head-tokens ", a.head_tokens, ": expected -1 (a quarter) or 0 to ",
                                a.max_length - 2, " (--max-length ", a.max_length, " minus [CLS] and [SEP])"));
  check_pretrain_folder(a);
  const std::string size_note = concat("--hidden ", a.hidden, " --intermediate ", a.intermediate, " --layers ",
                                       a.layers, " --vocab-size ", a.vocab_size, " --max-length ", a.max_length);
  ef::nn::BertConfig c;
  c.vocab_size = a.vocab_size;
  c.hidden_size = a.hidden;
  c.num_hidden_layers = a.layers;
  c.num_attention_heads = a.heads;
  c.intermediate_size = a.intermediate;
  c.max_position_embeddings = a.max_length;
  c.hidden_dropout_prob = c.attention_probs_dropout_prob = a.dropout;
  c.seed = a.fit.seed;
  check_training_memory(bert_memory_estimate(c, 0, 0, true), size_note);
  ef::set_num_threads(a.fit.threads);

  // The texts: the corpus files in order, the validation texts from --valid or held out by the seed.
  std::vector<std::string> texts, valid;
  for (const std::string& file : a.corpus) {
    std::vector<std::string> more = read_corpus(file, "--corpus");
    if (more.empty())
      throw ef::ValueError(concat("--corpus ", file, " holds no text: expected one text per non-blank line, or ",
                                  "JSON Lines (a .jsonl file) with a \"text\" per line"));
    for (std::string& t : more) texts.push_back(std::move(t));
  }
  if (!a.valid_file.empty()) {
    valid = read_corpus(a.valid_file, "--valid");
    if (valid.empty()) throw ef::ValueError(concat("--valid ", a.valid_file, " holds no text"));
  } else {
    const Index n = static_cast<Index>(texts.size());
    if (n < 2)
      throw ef::ValueError(concat("--corpus holds ", n, " text: at least 2 are needed to hold some out for ",
                                  "validation (--valid-fraction), or give --valid FILE"));
    const Index k = std::clamp<Index>(static_cast<Index>(std::llround(a.valid_fraction * double(n))), 1, n - 1);
    std::mt19937_64 gen(ef::data::mix_seed(a.fit.seed, 0x76616c6964ull));  // "valid"
    const std::vector<Index> order = ef::data::permutation(n, gen);
    std::vector<bool> held(static_cast<std::size_t>(n), false);
    for (Index i = 0; i < k; ++i) held[static_cast<std::size_t>(order[static_cast<std::size_t>(i)])] = true;
    std::vector<std::string> kept;
    for (Index i = 0; i < n; ++i) (held[static_cast<std::size_t>(i)] ? valid : kept).push_back(std::move(texts[i]));
    texts = std::move(kept);
  }
  check_step_count(a.fit.epochs, static_cast<Index>(texts.size()), a.fit.batch_size, a.fit.accumulation);
  std::cerr << "data: " << texts.size() << " training, " << valid.size() << " validation texts"
            << (a.valid_file.empty() ? " (held out by --seed)" : "") << "\n";

  // The tokenizer: a resumed run's, the one --tokenizer names, or WordPiece learned from the training texts.
  const fs::path out(a.out_dir), training = out / "training";
  std::error_code ec;
  const bool resumed_tokenizer = a.fit.resume && fs::exists(training / "vocab.txt", ec);
  const ef::text::Tokenizer tokenizer = [&] {
    if (resumed_tokenizer) return ef::text::load_bert_tokenizer(training);
    if (!a.tokenizer_dir.empty()) {
      try {
        return ef::text::load_bert_tokenizer(a.tokenizer_dir);
      } catch (const ef::Error& e) {
        throw ef::IoError(concat("--tokenizer ", a.tokenizer_dir, ": ", e.what()));
      }
    }
    ef::text::WordPieceTrainer::Options wpo;
    wpo.vocab_size = a.vocab_size;
    wpo.basic = uncased_basic_options();
    return uncased_bert_tokenizer(ef::text::WordPieceTrainer(wpo).train(texts));
  }();
  const ef::text::Vocab& vocab = tokenizer.vocab();
  std::vector<std::int64_t> special_ids;
  for (const std::string* s : {&vocab.special_tokens().pad, &vocab.special_tokens().unk, &vocab.special_tokens().cls,
                               &vocab.special_tokens().sep, &vocab.special_tokens().mask})
    if (vocab.find(*s) >= 0) special_ids.push_back(vocab.find(*s));

  // Texts of special tokens only ([UNK]s, or nothing) have nothing to predict: left out.
  ef::text::EncodeOptions encode;
  encode.max_length = a.max_length;
  encode.truncation = a.truncation == "head_tail" ? ef::text::Truncation::head_tail : ef::text::Truncation::head;
  encode.head_tokens = a.head_tokens;
  Index tokens = 0, longest = 0, dropped = 0;
  const auto encode_set = [&](const std::vector<std::string>& set, bool count) {
    std::vector<std::vector<std::int64_t>> ids = encode_all(tokenizer, set, encode, a.fit.threads), kept;
    for (auto& seq : ids) {
      if (std::all_of(seq.begin(), seq.end(), [&](std::int64_t id) {
            return std::find(special_ids.begin(), special_ids.end(), id) != special_ids.end();
          })) {
        ++dropped;
        continue;
      }
      if (count) tokens += static_cast<Index>(seq.size());
      longest = std::max(longest, static_cast<Index>(seq.size()));
      kept.push_back(std::move(seq));
    }
    return kept;
  };
  std::vector<std::vector<std::int64_t>> train_ids = encode_set(texts, true), valid_ids = encode_set(valid, false);
  if (train_ids.empty() || valid_ids.empty())
    throw ef::ValueError(concat(train_ids.empty() ? "--corpus" : "--valid", ": no text has a token besides [UNK] ",
                                "and the special tokens: nothing to predict"));
  c.vocab_size = vocab.size();
  c.pad_token_id = vocab.pad_id();
  check_training_memory(bert_memory_estimate(c, double(std::min<Index>(a.fit.batch_size, Index(train_ids.size()))),
                                             double(longest), true),
                        concat(size_note, " --batch-size ", a.fit.batch_size));
  std::cerr << "tokenizer: " << vocab.size() << " WordPiece tokens"
            << (resumed_tokenizer         ? " (the run's)"
                : a.tokenizer_dir.empty() ? " (learned from the training texts)"
                                          : " (" + a.tokenizer_dir + ")")
            << ", " << tokens << " training tokens per epoch, the longest text " << longest;
  if (dropped > 0) std::cerr << "; " << dropped << " texts of special tokens only left out";
  std::cerr << " (" << std::fixed << std::setprecision(1) << seconds_since(start) << " s so far)\n"
            << std::defaultfloat;

  ef::train::MaskedLmOptions mo;
  mo.probability = a.mask_probability;
  mo.mask_id = vocab.mask_id();
  mo.vocab_size = vocab.size();
  mo.special_ids = special_ids;
  mo.whole_word = a.whole_word;
  if (a.whole_word) {
    const std::string& prefix = tokenizer.wordpiece().options().continuation_prefix;
    for (Index id = 0; id < vocab.size(); ++id) mo.continuation.push_back(vocab.token(id).rfind(prefix, 0) == 0);
  }
  mo.seed = a.fit.seed;
  const ef::train::MaskedLmTask task(mo);

  ef::nn::BertForMaskedLM<float> model(c);
  std::vector<std::int64_t> train_zeros(train_ids.size(), 0), valid_zeros(valid_ids.size(), 0);  // no labels
  auto [train_batches, valid_batches] =
      make_batchers(std::move(train_ids), std::move(train_zeros), std::move(valid_ids), std::move(valid_zeros), a.fit,
                    vocab.pad_id());

  ef::train::FitOptions fo = fit_options(a.fit, training);
  nlohmann::json corpus = nlohmann::json::array();
  for (const std::string& file : a.corpus) corpus.push_back(ef::train::file_fingerprint(file));
  // What a resumed run must find unchanged besides fit's own settings: the texts, the tokenizer, the model.
  fo.fingerprint = {
      {"corpus", corpus},
      {"valid_data", a.valid_file.empty() ? nlohmann::json() : ef::train::file_fingerprint(a.valid_file)},
      {"valid_fraction", a.valid_file.empty() ? nlohmann::json(a.valid_fraction) : nlohmann::json()},
      {"tokenizer", a.tokenizer_dir.empty() ? nlohmann::json(a.vocab_size) : folder_fingerprint(a.tokenizer_dir)},
      {"model", hf_config_json(model)},
      {"mask_probability", a.mask_probability},
      {"whole_word", a.whole_word},
      {"batch_size", a.fit.batch_size},
      {"seed", a.fit.seed}};
  if (a.truncation != "head") {  // head was the only truncation once: runs from then still resume
    fo.fingerprint["truncation"] = a.truncation;
    fo.fingerprint["head_tokens"] = a.head_tokens;
  }
  fo.save_tokenizer = [&](const fs::path& dir) { ef::text::save_bert_tokenizer(tokenizer, dir, a.max_length); };
  fo.config.model_type = "bert-mlm";
  fo.config.model = hf_config_json(model);
  fo.config.max_length = a.max_length;
  fo.config.truncation = a.truncation;
  fo.config.head_tokens = a.head_tokens;
  fo.config.training = fit_record(a.fit);
  fo.config.training["corpus"] = a.corpus;
  fo.config.training["valid"] = a.valid_file;
  fo.config.training["mask_probability"] = a.mask_probability;
  fo.config.training["whole_word"] = a.whole_word;

  // The model folder: the tokenizer, the weights, config.json last (a folder without it is no model yet).
  const auto write_model_folder = [&] {
    ef::text::save_bert_tokenizer(tokenizer, out, a.max_length);
    record_truncation(out, fo.config, "pretrain");
    ef::io::save_pretrained(model, out);
  };
  CurvesReporter reporter(std::cerr, console_options(false), ef::train::RunFolder{training},
                          [&](const ef::train::EpochRecord& r) {
                            if (r.best) write_model_folder();
                          });
  fo.reporter = &reporter;
  const ef::train::FitResult r = ef::train::fit(model, task, train_batches, valid_batches, fo);
  write_model_folder();  // the best epoch's weights (fit restored them)
  std::cerr << "model folder: " << a.out_dir << " (BertForMaskedLM of epoch " << r.best_epoch
            << ": valid masked-LM loss " << std::fixed << std::setprecision(4) << r.best().metric("valid_loss")
            << ", accuracy " << r.best().metric("valid_accuracy") << "); training run: " << training.string()
            << "; total time " << ef::train::format_duration(seconds_since(start)) << "\n"
            << std::defaultfloat;
  return 0;
}

}  // namespace text_classifier
