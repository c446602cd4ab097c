// text_classifier's BERT commands: `train --init DIR` fine-tunes a BertForSequenceClassification from a Hugging Face
// BERT folder (one written by `pretrain`, or any transformers BERT folder: bert-base-uncased, a BertForMaskedLM, a
// BertForSequenceClassification), optionally with LoRA adapters (Hu et al. 2021; PEFT's LoraConfig); the folders
// eval and predict read (a run folder, or a Hugging Face BertForSequenceClassification folder); `export` writes a
// bert run as a Hugging Face folder that transformers' from_pretrained loads.
//
// A bert run folder is an ordinary run folder: config.json (a RunConfig: model_type "bert", the Hugging Face config
// in "model", and "model.lora" with the LoRA options when adapters were trained), model.safetensors (the adapters'
// tensors included), vocab.txt, tokenizer_config.json and special_tokens_map.json, metrics.csv, curves.svg, the
// checkpoints; with LoRA also adapter/ (adapter_config.json, adapter_model.safetensors: a PEFT folder). eval and
// predict rebuild the adapters, load the weights and merge the adapters into them.
#pragma once

#include <algorithm>
#include <cstdio>
#include <eigenformer/eigenformer.hpp>
#include <eigenformer/io/peft.hpp>
#include <eigenformer/io/pretrained.hpp>
#include <eigenformer/nn/bert.hpp>
#include <eigenformer/nn/bert_pretrained.hpp>
#include <eigenformer/nn/lora.hpp>
#include <eigenformer/text/bert_pretrained.hpp>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "cli_common.hpp"

namespace text_classifier {

using ef::detail::concat;

/// What training a BERT costs in memory, estimated as limits.hpp does for the encoder classifier: the word, position
/// and token-type tables, per layer four projections, the feed-forward pair and two layer norms, then the
/// classifier's pooler and linear layer, or the masked-LM head (its transform and the decoder's bias; the decoder's
/// weight is the word table). A batch keeps per layer about 12 (B, T, C) and 3 (B, T, F) activations and 3
/// (B, H, T, T) attention maps; the masked-LM head's logits are (N, V) for the ~15% of tokens it predicts.
inline MemoryEstimate bert_memory_estimate(const ef::nn::BertConfig& c, double batch, double length, bool masked_lm) {
  const double V = double(c.vocab_size), P = double(c.max_position_embeddings), S = double(c.type_vocab_size),
               C = double(c.hidden_size), F = double(c.intermediate_size), L = double(c.num_hidden_layers),
               H = double(c.num_attention_heads), K = double(c.num_labels());
  MemoryEstimate m;
  m.parameters = (V + P + S) * C + 2 * C + L * (4 * C * C + 2 * C * F + 9 * C + F) +
                 (masked_lm ? C * C + 3 * C + V : C * C + C + C * K + K);
  const double BT = batch * length, predicted = masked_lm ? 0.15 * BT : 0;
  m.activation_floats =
      3 * BT * C + L * (BT * (12 * C + 3 * F) + 3 * batch * H * length * length) + predicted * (3 * C + 2 * V);
  return m;
}

/// The BasicTokenizer settings of BERT uncased as load_bert_tokenizer reads them from a folder of vocab.txt and
/// BertTokenizer's tokenizer_config.json: lower-cased, accents stripped, CJK ideographs split, tokenizers' rules.
inline ef::text::BasicTokenizer::Options uncased_basic_options() {
  ef::text::BasicTokenizer::Options o;
  o.lowercase = true;
  o.strip_accents = true;
  o.split_cjk = true;
  o.rules = ef::text::BertRules::rust;
  return o;
}

/// The tokenizer load_bert_tokenizer gives a folder holding vocab (save_bert_tokenizer's files of an uncased
/// tokenizer): pretrain tokenizes with the tokenizer its model folder will load.
inline ef::text::Tokenizer uncased_bert_tokenizer(ef::text::Vocab vocab) {
  ef::text::Tokenizer::Options o;
  o.basic = uncased_basic_options();
  const ef::text::Vocab::SpecialTokens& s = vocab.special_tokens();
  for (const std::string* t : {&s.pad, &s.unk, &s.cls, &s.sep, &s.mask}) {
    const std::int64_t id = vocab.find(*t);
    if (id < 0) continue;
    ef::text::AddedToken added;
    added.content = *t;
    added.id = id;
    o.added_tokens.push_back(std::move(added));
  }
  return ef::text::Tokenizer(std::move(vocab), std::move(o));
}

/// "a, b, c".
inline std::string join(const std::vector<std::string>& names, const char* separator = ", ") {
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "" : separator) + n;
  return out;
}

/// The config.json of a Hugging Face BERT folder given by option; throws ValueError naming the option and the
/// folder when it has no config.json or its model_type is not "bert" (expected: what the option takes), IoError for
/// a config.json that is not JSON.
inline ef::io::PretrainedConfig read_bert_config(
    const std::string& dir, const char* option,
    const char* expected = "a Hugging Face BertModel, BertForMaskedLM or BertForSequenceClassification folder") {
  std::error_code ec;
  if (!std::filesystem::exists(std::filesystem::path(dir) / "config.json", ec))
    throw ef::ValueError(concat(option, " ", dir, " holds no config.json: expected a Hugging Face BERT folder ",
                                "(config.json, model.safetensors, vocab.txt)"));
  const ef::io::PretrainedConfig pc = ef::io::PretrainedConfig::read(dir);
  const std::string type = pc.has("model_type") && pc.json().at("model_type").is_string()
                               ? pc.json().at("model_type").get<std::string>()
                               : "";
  if (type != "bert")
    throw ef::ValueError(
        concat(option, " ", dir, ": config.json has model_type \"", type, "\", expected \"bert\" (", expected, ")"));
  return pc;
}

/// The Hugging Face config of a BERT model as a run's config.json holds it in "model".
template <class Model>
nlohmann::json hf_config_json(const Model& model) {
  using Format = ef::io::PretrainedFormat<Model>;
  nlohmann::json j = Format::config_json(model);
  j["model_type"] = Format::model_type;
  j["architectures"] = {Format::architecture()};
  return j;
}

/// Fingerprints of a Hugging Face folder's config and weights (for a resumed run: the same model).
inline nlohmann::json folder_fingerprint(const std::filesystem::path& dir) {
  nlohmann::json f = nlohmann::json::object();
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    const bool weights = name.size() > 12 && (name.compare(name.size() - 12, 12, ".safetensors") == 0 ||
                                              name == "model.safetensors.index.json");
    if (name == "config.json" || weights) f[name] = ef::train::file_fingerprint(entry.path());
  }
  return f;
}

/// A folder eval, predict and export read: a run folder (config.json is a RunConfig) or a Hugging Face BERT
/// classifier folder (config.json is transformers'; its labels, and the truncation of its tokenizer_config.json).
struct ModelFolder {
  ef::train::RunFolder run;
  ef::train::RunConfig config;
  bool hf = false;
};

/// True when dir/config.json is a Hugging Face config (a JSON object with a model_type and no run's "model").
inline bool is_hf_folder(const std::filesystem::path& dir) {
  try {
    const nlohmann::json j = nlohmann::json::parse(ef::io::read_text_file(dir / "config.json"));
    return j.is_object() && j.contains("model_type") && !(j.contains("model") && j.at("model").is_object());
  } catch (const std::exception&) {
    return false;  // no config.json, or not JSON: load_run_config says what is wrong
  }
}

/// What a Hugging Face BERT folder's tokenizer_config.json says of truncation, into r: its model_max_length (when
/// below r.max_length), and the head_tail truncation eigenformer records (transformers truncates the head only).
inline void read_recorded_truncation(const std::string& dir, const char* fn, ef::train::RunConfig& r) {
  const std::filesystem::path tc = std::filesystem::path(dir) / "tokenizer_config.json";
  std::error_code ec;
  if (!std::filesystem::exists(tc, ec)) return;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(ef::io::read_text_file(tc, fn));
  } catch (const nlohmann::json::parse_error& e) {
    throw ef::IoError(concat(tc.string(), " is not valid JSON: ", e.what()));
  }
  if (j.contains("model_max_length") && j["model_max_length"].is_number()) {
    const double n = j["model_max_length"].get<double>();  // transformers writes 1e30 for "no limit"
    if (n >= 2 && n < double(r.max_length)) r.max_length = static_cast<Index>(n);
  }
  if (j.value("eigenformer_truncation", "") == "head_tail") {
    r.truncation = "head_tail";
    if (j.contains("eigenformer_head_tokens") && j["eigenformer_head_tokens"].is_number_integer())
      r.head_tokens = j["eigenformer_head_tokens"].get<Index>();
  }
}

/// The run settings of a Hugging Face BERT folder: its labels (id2label), truncation to the tokenizer's
/// model_max_length (at most max_position_embeddings) from the head, or as eigenformer's export recorded it.
inline ef::train::RunConfig hf_run_config(const std::string& dir, const char* option) {
  const ef::io::PretrainedConfig pc =
      read_bert_config(dir, option, "a Hugging Face BertForSequenceClassification folder, or a run folder");
  const ef::nn::BertConfig c = ef::nn::detail::bert_config_from_hf(pc);
  ef::train::RunConfig r;
  r.model_type = "bert";
  r.model = pc.json();
  r.labels = c.labels;
  r.max_length = c.max_position_embeddings;
  r.truncation = "head";
  read_recorded_truncation(dir, "predict", r);
  return r;
}

/// Opens a folder given by --model: its config and which kind it is (nothing heavy is read).
inline ModelFolder open_model_folder(const std::string& dir) {
  ModelFolder f;
  f.run = ef::train::RunFolder{dir};
  f.hf = is_hf_folder(dir);
  f.config = f.hf ? hf_run_config(dir, "--model") : ef::train::load_run_config(f.run.config());
  if (f.config.model_type == "bert-mlm")
    throw ef::ValueError("--model " + dir + " is a masked-LM pretraining run (text_classifier pretrain): fine-tune " +
                         "the model folder it belongs to with train --init");
  return f;
}

/// The tokenizer of a model folder: BERT's files (load_bert_tokenizer) for bert runs and Hugging Face folders, the
/// run's vocab.txt otherwise.
inline ef::text::Tokenizer load_folder_tokenizer(const ModelFolder& f) {
  if (f.hf || f.config.model_type == "bert") return ef::text::load_bert_tokenizer(f.run.dir);
  return ef::text::Tokenizer::from_file(f.run.vocab());
}

/// Throws IoError when the tokenizer has ids the model does not embed.
inline void check_bert_vocab(const ef::text::Tokenizer& tokenizer, const ef::nn::BertConfig& c,
                             const std::string& where) {
  if (tokenizer.vocab().size() > c.vocab_size)
    throw ef::IoError(concat(where, ": the tokenizer holds ", tokenizer.vocab().size(),
                             " tokens, but the model embeds ", c.vocab_size, " (the vocabulary is not the model's)"));
}

/// A Hugging Face BertForSequenceClassification folder's model; throws IoError when its checkpoint lacks the
/// classifier (a BertForMaskedLM or BertModel folder must be fine-tuned first).
inline ef::nn::BertForSequenceClassification<float> load_hf_classifier(const std::string& dir) {
  ef::io::PretrainedReport report;
  auto model = ef::io::from_pretrained<ef::nn::BertForSequenceClassification<float>>(dir, &report);
  if (!report.missing.empty())
    throw ef::IoError(concat("--model ", dir, " is not a sequence classifier: its checkpoint lacks ",
                             join(report.missing), " (fine-tune it first: text_classifier train --init ", dir,
                             " ...)"));
  return model;
}

/// Builds a bert run's or a Hugging Face folder's classifier (adapters rebuilt, loaded and merged), checks its files
/// against each other and calls f(model, the tokenizer settings for it).
template <class F>
void with_bert_model(const ModelFolder& folder, const ef::text::Tokenizer& tokenizer, F&& f) {
  const ef::train::RunFolder& run = folder.run;
  const ef::train::RunConfig& config = folder.config;
  if (folder.hf) {
    auto model = load_hf_classifier(run.dir.string());
    check_bert_vocab(tokenizer, model.config(), run.dir.string());
    f(model, encode_options(config, model.config().max_position_embeddings));
    return;
  }
  ef::nn::BertConfig c =
      ef::nn::detail::bert_config_from_hf(ef::io::PretrainedConfig(config.model, run.config().string(), "load_bert_model"));
  if (!config.labels.empty()) c.labels = config.labels;
  check_weights_fit_config(run.config(), run.model(), bert_memory_estimate(c, 0, 0, false));
  ef::nn::BertForSequenceClassification<float> model(c);
  const bool lora = config.model.contains("lora");
  if (lora)
    ef::nn::add_lora(model, ef::io::options_from_json<ef::nn::LoraOptions>(
                                config.model.at("lora"), (run.config().string() + ": model.lora").c_str()));
  try {
    ef::io::load_state_dict(model, run.model());
  } catch (const ef::IoError& e) {
    throw ef::IoError(std::string(e.what()) + " (the model is built as " + run.config().string() + " describes it)");
  }
  if (lora) ef::nn::merge_lora(model);
  ef::train::ModelLimits limits;
  limits.classes = c.num_labels();
  limits.max_length = c.max_position_embeddings;
  ef::train::check_run_folder(run, config, run.vocab(), tokenizer.vocab().size(), limits);
  check_bert_vocab(tokenizer, c, run.dir.string());
  f(model, encode_options(config, c.max_position_embeddings));
}

/// What loading the pretrained weights for fine-tuning found, as transformers reports it.
struct InitReport {
  std::vector<std::string> missing;     // newly initialized
  std::vector<std::string> unexpected;  // in the checkpoint, not used (the replaced head's excepted)
  bool head_replaced = false;           // the folder is a classifier of other labels: its head is not used

  /// One line: what was newly initialized and what was not used.
  std::string to_string(const std::string& dir, const std::vector<std::string>& folder_labels) const {
    std::string line = "init: " + dir + ": BertForSequenceClassification";
    line += missing.empty() ? ", every weight from the folder" : "; newly initialized: " + join(missing);
    if (head_replaced) line += "; the folder's classifier (labels " + join(folder_labels) + ") is replaced";
    if (!unexpected.empty()) line += "; not used: " + join(unexpected);
    return line;
  }
};

/// A classifier of config c (its labels those of the training data) from a Hugging Face BERT folder: the encoder's
/// weights, and the head's when the folder is a classifier of the same labels; anything else the model has is newly
/// initialized (seeded by c.seed), as transformers' from_pretrained does for a new head.
inline ef::nn::BertForSequenceClassification<float> bert_classifier_from(const std::string& dir,
                                                                         const ef::nn::BertConfig& c,
                                                                         const std::vector<std::string>& folder_labels,
                                                                         InitReport& report) {
  ef::nn::BertForSequenceClassification<float> model(c);
  const ef::io::PretrainedWeights weights = ef::io::PretrainedWeights::open(dir);
  const ef::io::PretrainedNames names = ef::io::PretrainedFormat<ef::nn::BertForSequenceClassification<float>>::names();
  const std::vector<std::string> keys = weights.names();
  const bool keep_head =
      folder_labels == c.labels && std::find(keys.begin(), keys.end(), "classifier.weight") != keys.end();
  ef::io::PretrainedReport r;
  if (keep_head) {
    r = ef::io::load_pretrained_weights(model, weights, names, dir);
  } else {  // the encoder only: the folder's head (if any) is of other labels or a language model's
    r = ef::io::load_pretrained_weights(model.bert, weights, names, dir);
    for (std::string& m : r.missing) m = "bert." + m;
    model.visit_parameters([&r](const std::string& name, auto&) {
      if (name.rfind("classifier.", 0) == 0) r.missing.push_back(name);
    });
  }
  report.missing = std::move(r.missing);
  for (std::string& u : r.unexpected) {
    if (u.rfind("classifier.", 0) == 0)
      report.head_replaced = true;
    else
      report.unexpected.push_back(std::move(u));
  }
  return model;
}

/// train --init: fine-tunes a BERT classifier from a Hugging Face folder on --train, validating on --valid.
inline int train_bert(const TrainArgs& a) {
  const Clock::time_point start = Clock::now();
  const ef::io::PretrainedConfig pc = read_bert_config(a.init, "--init");
  const ef::nn::BertConfig base = ef::nn::detail::bert_config_from_hf(pc);
  // --max-length as in train (0: the longest the model takes), at most the position table.
  if (a.max_length == 1)
    throw ef::ValueError("--max-length 1: expected 0 (the longest the model takes) or at least 2 (for [CLS] and [SEP])");
  const Index positions = base.max_position_embeddings;
  const Index max_len = a.max_length == 0 || a.max_length > positions ? positions : a.max_length;
  if (a.max_length > positions)
    std::cerr << "max_length: " << max_len << " (--max-length " << a.max_length << " is more than the "
              << "max_position_embeddings of " << a.init << ")\n";
  // Truncation: --truncation and --head-tokens, else as the folder records it (pretrain --truncation head_tail),
  // else train's default.
  ef::train::RunConfig recorded;
  recorded.max_length = positions;
  recorded.truncation = a.truncation;
  recorded.head_tokens = a.head_tokens;
  if (!a.truncation_given) read_recorded_truncation(a.init, "train", recorded);
  const std::string truncation = recorded.truncation;
  const Index head_tokens = recorded.head_tokens;
  if (truncation == "head_tail" && head_tokens > max_len - 2)
    throw ef::ValueError(concat(a.truncation_given ? "--head-tokens " : "head tokens ", head_tokens,
                                a.truncation_given ? "" : concat(" (recorded in ", a.init, "/tokenizer_config.json)"),
                                ": expected -1 (a quarter) or 0 to ", max_len - 2, " (max_length ", max_len,
                                " minus [CLS] and [SEP])"));
  check_out_folder(a.out_dir, a.fit.resume, a.fit.overwrite);
  const std::string size_note = concat("--init ", a.init, " (hidden_size ", base.hidden_size, ", ",
                                       base.num_hidden_layers, " layers, vocab_size ", base.vocab_size, ")");
  check_training_memory(bert_memory_estimate(base, 0, 0, false), size_note);
  ef::set_num_threads(a.fit.threads);

  ef::text::Tokenizer tokenizer = [&] {
    try {
      return ef::text::load_bert_tokenizer(a.init);
    } catch (const ef::Error& e) {
      throw ef::IoError(concat("--init ", a.init, ": its tokenizer: ", e.what()));
    }
  }();
  check_bert_vocab(tokenizer, base, "--init " + a.init);
  LabelledData d = read_labelled_data(a);

  ef::nn::BertConfig c = base;
  c.labels = d.labels.labels();
  c.seed = a.fit.seed;
  if (a.dropout_given) c.hidden_dropout_prob = c.attention_probs_dropout_prob = a.dropout;
  InitReport init;
  ef::nn::BertForSequenceClassification<float> model = bert_classifier_from(a.init, c, base.labels, init);
  std::cerr << init.to_string(a.init, base.labels) << "\n";

  ef::train::RunConfig config;
  config.model_type = "bert";
  config.labels = d.labels.labels();
  config.max_length = max_len;
  config.truncation = truncation;
  config.head_tokens = head_tokens;
  config.model = hf_config_json(model);

  ef::nn::LoraOptions lo;
  if (a.lora_rank > 0) {
    lo.rank = a.lora_rank;
    lo.alpha = a.lora_alpha >= 0 ? a.lora_alpha : 2.0 * double(a.lora_rank);
    lo.dropout = a.lora_dropout;
    lo.seed = a.fit.seed;
    lo.trainable = {"classifier"};
    // A pooler the folder lacked (a masked-LM folder's) is random: trained with the classifier, not frozen.
    for (const std::string& m : init.missing)
      if (m.rfind("bert.pooler.", 0) == 0 && lo.trainable.size() == 1) lo.trainable.push_back("pooler");
    const Index adapted = ef::nn::add_lora(model, lo);
    Index trainable = 0, total = 0;
    model.visit_parameters([&](const std::string&, auto& p) {
      total += p.numel();
      trainable += p.requires_grad() ? p.numel() : 0;
    });
    std::cerr << "lora: rank " << lo.rank << ", alpha " << lo.alpha << ", dropout " << lo.dropout << ": adapters on "
              << adapted << " Linears (" << join(lo.targets) << "); trained in full: " << join(lo.trainable)
              << "; trainable parameters: " << trainable << " of " << total << " (" << std::fixed
              << std::setprecision(2) << 100.0 * double(trainable) / double(total) << "%)\n"
              << std::defaultfloat;
    config.model["lora"] = ef::io::options_to_json(lo);
  }

  const ef::text::EncodeOptions encode = encode_options(config);
  std::vector<std::vector<std::int64_t>> train_ids = encode_all(tokenizer, d.train.texts(), encode, a.fit.threads);
  std::vector<std::vector<std::int64_t>> valid_ids = encode_all(tokenizer, d.valid.texts(), encode, a.fit.threads);
  Index tokens = 0, longest = 0;
  for (const auto& ids : train_ids) tokens += static_cast<Index>(ids.size());
  for (const auto* set : {&train_ids, &valid_ids})
    for (const auto& ids : *set) longest = std::max(longest, static_cast<Index>(ids.size()));
  check_training_memory(
      bert_memory_estimate(c, double(std::min(a.fit.batch_size, d.train.size())), double(longest), false),
      concat(size_note, " --max-length ", max_len, " --batch-size ", a.fit.batch_size));
  std::cerr << "tokenizer: " << tokenizer.vocab().size() << " WordPiece tokens (" << a.init << "), " << tokens
            << " training tokens per epoch, the longest text " << longest << " (" << std::fixed << std::setprecision(1)
            << seconds_since(start) << " s so far)\n"
            << std::defaultfloat;

  auto [train_batches, valid_batches] =
      make_batchers(std::move(train_ids), std::move(d.train_labels), std::move(valid_ids), std::move(d.valid_labels),
                    a.fit, tokenizer.vocab().pad_id());
  ef::train::FitOptions fo = fit_options(a.fit, a.out_dir);
  // What a resumed run must find unchanged besides fit's own settings: the data, the model it started from, how
  // texts are tokenized, the adapters.
  fo.fingerprint = {{"train_data", ef::train::file_fingerprint(a.train_file)},
                    {"valid_data", ef::train::file_fingerprint(a.valid_file)},
                    {"init", folder_fingerprint(a.init)},
                    {"max_length", max_len},
                    {"truncation", truncation},
                    {"head_tokens", head_tokens},
                    {"batch_size", a.fit.batch_size},
                    {"seed", a.fit.seed},
                    {"dropout", a.dropout_given ? nlohmann::json(a.dropout) : nlohmann::json()},
                    {"lora", a.lora_rank > 0 ? config.model["lora"] : nlohmann::json()}};
  fo.save_tokenizer = [&tokenizer, max_len](const std::filesystem::path& dir) {
    ef::text::save_bert_tokenizer(tokenizer, dir, max_len);
  };
  config.training = fit_record(a.fit);
  config.training["train"] = a.train_file;
  config.training["valid"] = a.valid_file;
  config.training["init"] = a.init;
  fo.config = config;
  CurvesReporter reporter(std::cerr, console_options(true), ef::train::RunFolder{a.out_dir});
  fo.reporter = &reporter;

  const ef::train::FitResult r = ef::train::fit(model, train_batches, valid_batches, fo);
  if (a.lora_rank > 0) {
    const std::filesystem::path adapter = std::filesystem::path(a.out_dir) / "adapter";
    ef::io::save_lora(model, adapter, lo, "SEQ_CLS", a.init);
    std::cerr << "adapter: " << adapter.string() << " (PEFT LoRA: adapter_config.json, adapter_model.safetensors)\n";
  }
  std::cerr << "run folder: " << a.out_dir << " (model.safetensors = epoch " << r.best_epoch << ", valid accuracy "
            << std::fixed << std::setprecision(4) << r.best().metric("valid_accuracy") << "); total time "
            << ef::train::format_duration(seconds_since(start)) << "\n";
  return 0;
}

/// Adds to a Hugging Face folder's tokenizer_config.json what eigenformer needs to truncate as the run did: the
/// head_tail truncation (transformers truncates the head only and ignores these keys).
inline void record_truncation(const std::filesystem::path& dir, const ef::train::RunConfig& config, const char* fn) {
  if (config.truncation != "head_tail") return;
  const std::filesystem::path path = dir / "tokenizer_config.json";
  nlohmann::json j = nlohmann::json::parse(ef::io::read_text_file(path, fn));
  j["eigenformer_truncation"] = "head_tail";
  j["eigenformer_head_tokens"] = config.head_tokens;
  ef::io::write_text_file_atomically(path, j.dump(2) + "\n", fn);
}

/// export: a bert run as a Hugging Face BertForSequenceClassification folder (adapters merged), with its tokenizer.
inline int export_bert(const std::string& model_dir, const std::string& out_dir, bool overwrite) {
  const ModelFolder folder = open_model_folder(model_dir);
  if (folder.hf || folder.config.model_type != "bert")
    throw ef::ValueError(
        concat("--model ", model_dir, " is ",
               folder.hf ? std::string("a Hugging Face folder already") : "a " + folder.config.model_type + " run",
               ": export writes bert runs (train --init) as Hugging Face folders"));
  std::error_code ec;
  if (std::filesystem::exists(out_dir, ec)) {
    if (!std::filesystem::is_directory(out_dir, ec))
      throw ef::ValueError("--out " + out_dir + " is a file, expected a folder");
    if (std::filesystem::equivalent(out_dir, model_dir, ec))
      throw ef::ValueError("--out " + out_dir + " is the run folder: choose another folder");
    if (!overwrite && std::filesystem::directory_iterator(out_dir, ec) != std::filesystem::directory_iterator())
      throw ef::ValueError("--out " + out_dir +
                           " is not empty: choose an empty or new folder, or add --overwrite "
                           "to replace its model files");
  }
  const ef::text::Tokenizer tokenizer = load_folder_tokenizer(folder);
  with_bert_model(folder, tokenizer, [&](auto& model, const ef::text::EncodeOptions&) {
    ef::text::save_bert_tokenizer(tokenizer, out_dir, folder.config.max_length);
    record_truncation(out_dir, folder.config, "export");
    ef::io::save_pretrained(model, out_dir);
  });
  std::cout << "wrote " << out_dir << " (BertForSequenceClassification, " << folder.config.labels.size()
            << " labels: " << join(folder.config.labels) << ")\n";
  return 0;
}

}  // namespace text_classifier
