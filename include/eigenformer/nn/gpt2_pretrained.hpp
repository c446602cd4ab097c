// GPT-2's Hugging Face folders (transformers' GPT2Model / GPT2LMHeadModel from_pretrained and save_pretrained):
// config.json under GPT2Config's keys, and the checkpoint names of every transformers version, for
// io::from_pretrained and io::save_pretrained (io/pretrained.hpp does the loading):
//   auto model = nn::gpt2_from_pretrained<float>("gpt2", &report);            strict, in eval mode
//   auto bare = io::from_pretrained<nn::GPT2Model<float>>("gpt2", &report);   the generic loader
//   io::save_pretrained(model, "runs/gpt/hf", {io::DType::F16});
// Every layout loads: with or without the "transformer." prefix (OpenAI's converted "gpt2" has none), with or
// without a separate lm_head.weight (a tied model drops the copy), with the causal-mask buffers h.N.attn.bias and
// h.N.attn.masked_bias that versions up to 4.30 saved (dropped).
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "eigenformer/io/pretrained.hpp"
#include "eigenformer/nn/gpt2_lm_head_model.hpp"
#include "eigenformer/nn/gpt2_model.hpp"
#include "eigenformer/nn/hf_activation.hpp"

namespace eigenformer::nn {

namespace detail {

/// A token id of config.json: an integer, null (-1: none), or a list (its first id: configs may give several
/// end-of-sequence ids); absent: fallback.
inline std::int64_t gpt2_config_token_id(const io::PretrainedConfig& c, const std::string& key, std::int64_t fallback) {
  if (!c.json().contains(key)) return fallback;
  const nlohmann::json& v = c.json().at(key);
  if (v.is_null()) return -1;
  if (v.is_array() && !v.empty() && v.front().is_number_integer()) return v.front().get<std::int64_t>();
  return c.get<std::int64_t>(key);
}

}  // namespace detail

/// GPT2LMHeadModel's options from a config.json (transformers' GPT2Config: absent keys take its defaults; n_inner
/// null = 4 * n_embd; n_positions, else the old n_ctx; absent token ids are GPT-2's <|endoftext|>, 50256, when the
/// vocabulary holds it). Throws IoError naming the file and the key for a value of the wrong type or out of range,
/// an unsupported setting (cross-attention, an unknown activation) or another model_type.
template <typename T = float>
typename GPT2LMHeadModel<T>::Options gpt2_options_from_config(const io::PretrainedConfig& c) {
  using eigenformer::detail::concat;
  const std::string model_type = c.get<std::string>("model_type", "gpt2");
  if (model_type != "gpt2") throw IoError(concat(c.where(), ": model_type is \"", model_type, "\", expected \"gpt2\""));
  if (c.get<bool>("add_cross_attention", false))
    throw IoError(concat(c.where(), ": add_cross_attention is true: GPT-2 with cross-attention is not supported"));
  typename GPT2LMHeadModel<T>::Options o;
  auto& t = o.transformer;
  t.vocab_size = c.get<Index>("vocab_size", t.vocab_size);
  t.n_positions = c.get<Index>("n_positions", c.get<Index>("n_ctx", t.n_positions));
  t.n_embd = c.get<Index>("n_embd", t.n_embd);
  t.n_layer = c.get<Index>("n_layer", t.n_layer);
  t.n_head = c.get<Index>("n_head", t.n_head);
  t.n_inner = c.get<Index>("n_inner", 0);
  t.activation_function = c.get<std::string>("activation_function", t.activation_function);
  if (!is_hf_activation(t.activation_function))
    throw IoError(concat(c.where(), ": activation_function is \"", t.activation_function, "\", expected one of ",
                         hf_activation_names()));
  t.resid_pdrop = static_cast<T>(c.get<double>("resid_pdrop", t.resid_pdrop));
  t.embd_pdrop = static_cast<T>(c.get<double>("embd_pdrop", t.embd_pdrop));
  t.attn_pdrop = static_cast<T>(c.get<double>("attn_pdrop", t.attn_pdrop));
  t.layer_norm_epsilon = static_cast<T>(c.get<double>("layer_norm_epsilon", t.layer_norm_epsilon));
  t.initializer_range = static_cast<T>(c.get<double>("initializer_range", t.initializer_range));
  t.scale_attn_weights = c.get<bool>("scale_attn_weights", t.scale_attn_weights);
  t.scale_attn_by_inverse_layer_idx = c.get<bool>("scale_attn_by_inverse_layer_idx", t.scale_attn_by_inverse_layer_idx);
  t.reorder_and_upcast_attn = c.get<bool>("reorder_and_upcast_attn", t.reorder_and_upcast_attn);
  o.tie_word_embeddings = c.get<bool>("tie_word_embeddings", true);
  const std::int64_t end_of_text = t.vocab_size > 50256 ? 50256 : -1;
  o.bos_token_id = detail::gpt2_config_token_id(c, "bos_token_id", end_of_text);
  o.eos_token_id = detail::gpt2_config_token_id(c, "eos_token_id", end_of_text);
  const auto bad = [&](const char* key, std::int64_t value, const char* expected) {
    return IoError(concat(c.where(), ": ", key, " is ", value, ", expected ", expected));
  };
  if (t.vocab_size < 1) throw bad("vocab_size", t.vocab_size, ">= 1");
  if (t.n_positions < 1) throw bad("n_positions", t.n_positions, ">= 1");
  if (t.n_embd < 1) throw bad("n_embd", t.n_embd, ">= 1");
  if (t.n_layer < 0) throw bad("n_layer", t.n_layer, ">= 0");
  if (t.n_head < 1 || t.n_embd % t.n_head != 0) throw bad("n_head", t.n_head, "a divisor of n_embd >= 1");
  if (t.n_inner < 0) throw bad("n_inner", t.n_inner, "null or >= 1");
  for (const auto& [key, id] :
       {std::pair<const char*, std::int64_t>{"bos_token_id", o.bos_token_id}, {"eos_token_id", o.eos_token_id}})
    if (id < -1 || id >= t.vocab_size) throw bad(key, id, "null or an id below vocab_size");
  return o;
}

/// The keys of a GPT-2 config.json as transformers' save_pretrained writes them (without model_type, architectures
/// and torch_dtype, which io::save_pretrained adds).
template <typename T>
nlohmann::json gpt2_config_to_json(const typename GPT2LMHeadModel<T>::Options& o) {
  const auto& t = o.transformer;
  const auto id = [](std::int64_t v) { return v < 0 ? nlohmann::json() : nlohmann::json(v); };
  nlohmann::json j = {{"activation_function", t.activation_function},
                      {"attn_pdrop", static_cast<double>(t.attn_pdrop)},
                      {"bos_token_id", id(o.bos_token_id)},
                      {"embd_pdrop", static_cast<double>(t.embd_pdrop)},
                      {"eos_token_id", id(o.eos_token_id)},
                      {"initializer_range", static_cast<double>(t.initializer_range)},
                      {"layer_norm_epsilon", static_cast<double>(t.layer_norm_epsilon)},
                      {"n_embd", t.n_embd},
                      {"n_head", t.n_head},
                      {"n_inner", t.n_inner > 0 ? nlohmann::json(t.n_inner) : nlohmann::json()},
                      {"n_layer", t.n_layer},
                      {"n_positions", t.n_positions},
                      {"reorder_and_upcast_attn", t.reorder_and_upcast_attn},
                      {"resid_pdrop", static_cast<double>(t.resid_pdrop)},
                      {"scale_attn_by_inverse_layer_idx", t.scale_attn_by_inverse_layer_idx},
                      {"scale_attn_weights", t.scale_attn_weights},
                      {"summary_activation", nullptr},
                      {"summary_first_dropout", 0.1},
                      {"summary_proj_to_labels", true},
                      {"summary_type", "cls_index"},
                      {"summary_use_proj", true},
                      {"use_cache", true},
                      {"vocab_size", t.vocab_size}};
  if (!o.tie_word_embeddings) j["tie_word_embeddings"] = false;
  return j;
}

/// How gpt2_from_pretrained treats a checkpoint that does not cover the model exactly.
struct GPT2LoadOptions {
  /// Refuse (IoError listing them) a checkpoint that lacks weights of the model (lm_head.weight of an untied model
  /// excepted: it is initialized, as transformers does) or holds tensors the model does not use: a folder whose
  /// weights do not match its config.json. false: list them in the report only (io::from_pretrained's behavior).
  bool strict = true;
};

/// Loads a Hugging Face GPT-2 folder as a GPT2LMHeadModel in eval mode (the tokenizer's files are
/// text::ByteLevelBpe::from_pretrained's). report, when given, receives the missing, unexpected and dropped names.
/// Throws IoError naming the folder and every problem: a missing or damaged file, a config value of the wrong type,
/// a tensor whose shape differs from what config.json implies, and with options.strict missing or unexpected
/// weights.
template <typename T = float>
GPT2LMHeadModel<T> gpt2_from_pretrained(const std::filesystem::path& dir, io::PretrainedReport* report = nullptr,
                                        const GPT2LoadOptions& options = {}) {
  using eigenformer::detail::concat;
  io::PretrainedReport r;
  GPT2LMHeadModel<T> model = io::from_pretrained<GPT2LMHeadModel<T>>(dir, &r);
  model.eval();
  if (report) *report = r;
  std::vector<std::string> missing;
  for (const std::string& name : r.missing)
    if (name != "lm_head.weight") missing.push_back(name);
  if (!options.strict || (missing.empty() && r.unexpected.empty())) return model;
  std::string problems;
  const auto list = [&problems](const char* what, const std::vector<std::string>& names) {
    if (names.empty()) return;
    problems += concat(problems.empty() ? "" : "; ", what, " (", names.size(), "):");
    for (const std::string& n : names) problems += " " + n;
  };
  list("weights of the model not in the checkpoint", missing);
  list("tensors of the checkpoint the model does not use", r.unexpected);
  throw IoError(concat("from_pretrained: the checkpoint in '", dir.string(), "' does not match its config.json: ",
                       problems, " (load with strict = false to accept it)"));
}

namespace detail {

/// What GPT2Model and GPT2LMHeadModel share in their Hugging Face format.
struct GPT2Format {
  static constexpr const char* model_type = "gpt2";
  /// The base model under "transformer."; the causal-mask buffers of old versions dropped, and the lm_head copy
  /// of the token embedding where the model ties them (an untied model has lm_head.weight and reads it).
  static io::PretrainedNames names() {
    io::PretrainedNames n;
    n.base_prefix = "transformer.";
    n.renames.clear();
    n.dropped = {".attn.bias", ".attn.masked_bias", "lm_head.weight"};
    return n;
  }
};

}  // namespace detail

}  // namespace eigenformer::nn

namespace eigenformer::io {

template <typename T>
struct PretrainedFormat<nn::GPT2LMHeadModel<T>> : nn::detail::GPT2Format {
  using Config = typename nn::GPT2LMHeadModel<T>::Options;
  static const char* architecture() { return "GPT2LMHeadModel"; }
  static Config config_from(const PretrainedConfig& c) { return nn::gpt2_options_from_config<T>(c); }
  static const Config& config_of(const nn::GPT2LMHeadModel<T>& m) { return m.options; }
  static nlohmann::json config_json(const nn::GPT2LMHeadModel<T>& m) { return nn::gpt2_config_to_json<T>(m.options); }
};

template <typename T>
struct PretrainedFormat<nn::GPT2Model<T>> : nn::detail::GPT2Format {
  using Config = typename nn::GPT2Model<T>::Options;
  static const char* architecture() { return "GPT2Model"; }
  static Config config_from(const PretrainedConfig& c) { return nn::gpt2_options_from_config<T>(c).transformer; }
  static const Config& config_of(const nn::GPT2Model<T>& m) { return m.options; }
  static nlohmann::json config_json(const nn::GPT2Model<T>& m) {
    typename nn::GPT2LMHeadModel<T>::Options o;
    o.transformer = m.options;
    const std::int64_t end_of_text = m.options.vocab_size > 50256 ? 50256 : -1;  // GPT-2's <|endoftext|>
    o.bos_token_id = o.eos_token_id = end_of_text;
    return nn::gpt2_config_to_json<T>(o);
  }
};

}  // namespace eigenformer::io
