// BERT's Hugging Face folders: config.json under transformers' BertConfig keys, the checkpoint names of every
// transformers version (io/pretrained.hpp does the loading), for BertModel, BertForSequenceClassification and
// BertForMaskedLM:
//   auto model = io::from_pretrained<nn::BertForSequenceClassification<float>>("bert-base-uncased", &report);
//   io::save_pretrained(model, "runs/bert-spam");
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "eigenformer/io/pretrained.hpp"
#include "eigenformer/nn/bert.hpp"

namespace eigenformer::nn {

namespace detail {

/// transformers' ACT2FN names of the activations BERT and GPT-2 configs use.
inline Activation activation_from_hf(const io::PretrainedConfig& c, const std::string& key, Activation fallback) {
  if (!c.has(key)) return fallback;
  const std::string name = c.get<std::string>(key);
  if (name == "gelu") return Activation::gelu;
  if (name == "gelu_new" || name == "gelu_pytorch_tanh" || name == "gelu_fast") return Activation::gelu_tanh;
  if (name == "relu") return Activation::relu;
  if (name == "silu" || name == "swish") return Activation::silu;
  throw IoError(eigenformer::detail::concat(c.where(), ": \"", key, "\" is \"", name,
                                            "\", expected one of \"gelu\", \"gelu_new\", \"gelu_pytorch_tanh\", ",
                                            "\"gelu_fast\", \"relu\", \"silu\", \"swish\""));
}

inline const char* activation_to_hf(Activation a) {
  switch (a) {
    case Activation::gelu:
      return "gelu";
    case Activation::gelu_tanh:
      return "gelu_new";
    case Activation::relu:
      return "relu";
    case Activation::silu:
    default:
      return "silu";
  }
}

/// The labels of a config: id2label in id order, else num_labels generic names, else fallback.
inline std::vector<std::string> labels_from_hf(const io::PretrainedConfig& c, std::vector<std::string> fallback) {
  using eigenformer::detail::concat;
  if (c.has("id2label")) {
    const nlohmann::json& j = c.json().at("id2label");
    if (!j.is_object() || j.empty()) throw IoError(concat(c.where(), ": \"id2label\" is ", j.dump(), ", expected an object"));
    std::vector<std::string> labels(j.size());
    for (auto it = j.begin(); it != j.end(); ++it) {
      std::size_t id = 0;
      try {
        std::size_t used = 0;
        id = std::stoul(it.key(), &used);
        if (used != it.key().size()) throw std::invalid_argument(it.key());
      } catch (const std::logic_error&) {
        throw IoError(concat(c.where(), ": \"id2label\" has the key \"", it.key(), "\", expected label ids 0 .. ",
                             j.size() - 1));
      }
      if (id >= labels.size() || !it->is_string() || !labels[id].empty())
        throw IoError(concat(c.where(), ": \"id2label\" is ", j.dump(), ", expected the ids 0 .. ", j.size() - 1,
                             " once each, with string labels"));
      labels[id] = it->get<std::string>();
    }
    return labels;
  }
  const Index n = c.get<Index>("num_labels", c.get<Index>("_num_labels", static_cast<Index>(fallback.size())));
  if (n <= 0) throw IoError(concat(c.where(), ": \"num_labels\" is ", n, ", expected > 0"));
  std::vector<std::string> labels;
  for (Index i = 0; i < n; ++i) labels.push_back("LABEL_" + std::to_string(i));
  return labels;
}

/// True for transformers' default labels LABEL_0, LABEL_1, ...
inline bool default_labels(const std::vector<std::string>& labels) {
  for (std::size_t i = 0; i < labels.size(); ++i)
    if (labels[i] != "LABEL_" + std::to_string(i)) return false;
  return true;
}

inline BertConfig bert_config_from_hf(const io::PretrainedConfig& c) {
  using eigenformer::detail::concat;
  BertConfig b;
  b.vocab_size = c.get<Index>("vocab_size", b.vocab_size);
  b.hidden_size = c.get<Index>("hidden_size", b.hidden_size);
  b.num_hidden_layers = c.get<Index>("num_hidden_layers", b.num_hidden_layers);
  b.num_attention_heads = c.get<Index>("num_attention_heads", b.num_attention_heads);
  b.intermediate_size = c.get<Index>("intermediate_size", b.intermediate_size);
  b.hidden_act = activation_from_hf(c, "hidden_act", b.hidden_act);
  b.hidden_dropout_prob = c.get<double>("hidden_dropout_prob", b.hidden_dropout_prob);
  b.attention_probs_dropout_prob = c.get<double>("attention_probs_dropout_prob", b.attention_probs_dropout_prob);
  b.max_position_embeddings = c.get<Index>("max_position_embeddings", b.max_position_embeddings);
  b.type_vocab_size = c.get<Index>("type_vocab_size", b.type_vocab_size);
  b.initializer_range = c.get<double>("initializer_range", b.initializer_range);
  b.layer_norm_eps = c.get<double>("layer_norm_eps", b.layer_norm_eps);
  b.pad_token_id = c.get<Index>("pad_token_id", b.pad_token_id);
  b.classifier_dropout = c.get<double>("classifier_dropout", -1.0);
  b.labels = labels_from_hf(c, b.labels);
  const std::string positions = c.get<std::string>("position_embedding_type", "absolute");
  if (positions != "absolute")
    throw IoError(concat(c.where(), ": \"position_embedding_type\" is \"", positions, "\", only \"absolute\" is supported"));
  if (c.get<bool>("is_decoder", false) || c.get<bool>("add_cross_attention", false))
    throw IoError(concat(c.where(), ": a BERT decoder (is_decoder, add_cross_attention) is not supported"));
  try {
    b.check(c.where().c_str());  // "from_pretrained: .../config.json: hidden_size is 0, expected > 0"
  } catch (const ValueError& e) {
    throw IoError(e.what());
  }
  return b;
}

/// The keys transformers' BertConfig writes (to_diff_dict), labels when they are not the default ones or the
/// model is a classifier.
inline nlohmann::json bert_config_to_hf(const BertConfig& b, bool classifier) {
  nlohmann::json j = {{"attention_probs_dropout_prob", b.attention_probs_dropout_prob},
                      {"classifier_dropout", b.classifier_dropout >= 0 ? nlohmann::json(b.classifier_dropout) : nlohmann::json()},
                      {"hidden_act", activation_to_hf(b.hidden_act)},
                      {"hidden_dropout_prob", b.hidden_dropout_prob},
                      {"hidden_size", b.hidden_size},
                      {"initializer_range", b.initializer_range},
                      {"intermediate_size", b.intermediate_size},
                      {"layer_norm_eps", b.layer_norm_eps},
                      {"max_position_embeddings", b.max_position_embeddings},
                      {"num_attention_heads", b.num_attention_heads},
                      {"num_hidden_layers", b.num_hidden_layers},
                      {"pad_token_id", b.pad_token_id},
                      {"position_embedding_type", "absolute"},
                      {"type_vocab_size", b.type_vocab_size},
                      {"use_cache", true},
                      {"vocab_size", b.vocab_size}};
  if (classifier || !default_labels(b.labels)) {
    nlohmann::json id2label = nlohmann::json::object(), label2id = nlohmann::json::object();
    for (std::size_t i = 0; i < b.labels.size(); ++i) {
      id2label[std::to_string(i)] = b.labels[i];
      label2id[b.labels[i]] = i;
    }
    j["id2label"] = id2label;
    j["label2id"] = label2id;
  }
  return j;
}

/// What the three BERT classes share in their Hugging Face format.
template <class Model>
struct BertFormat {
  static constexpr const char* model_type = "bert";
  static BertConfig config_from(const io::PretrainedConfig& c) { return bert_config_from_hf(c); }
  static io::PretrainedNames names() {
    io::PretrainedNames n;
    n.base_prefix = "bert.";
    n.dropped = {".position_ids", ".token_type_ids"};  // buffers older versions saved
    return n;
  }
};

}  // namespace detail

}  // namespace eigenformer::nn

namespace eigenformer::io {

template <typename T>
struct PretrainedFormat<nn::BertModel<T>> : nn::detail::BertFormat<nn::BertModel<T>> {
  static const char* architecture() { return "BertModel"; }
  static nlohmann::json config_json(const nn::BertModel<T>& m) { return nn::detail::bert_config_to_hf(m.config, false); }
};

template <typename T>
struct PretrainedFormat<nn::BertForSequenceClassification<T>>
    : nn::detail::BertFormat<nn::BertForSequenceClassification<T>> {
  static const char* architecture() { return "BertForSequenceClassification"; }
  static nlohmann::json config_json(const nn::BertForSequenceClassification<T>& m) {
    return nn::detail::bert_config_to_hf(m.config(), true);
  }
};

template <typename T>
struct PretrainedFormat<nn::BertForMaskedLM<T>> : nn::detail::BertFormat<nn::BertForMaskedLM<T>> {
  static const char* architecture() { return "BertForMaskedLM"; }
  /// Older checkpoints also saved the decoder's tied weight and bias: the same values as the word embeddings and
  /// cls.predictions.bias.
  static io::PretrainedNames names() {
    io::PretrainedNames n = nn::detail::BertFormat<nn::BertForMaskedLM<T>>::names();
    n.dropped.push_back("cls.predictions.decoder.weight");
    n.dropped.push_back("cls.predictions.decoder.bias");
    return n;
  }
  static nlohmann::json config_json(const nn::BertForMaskedLM<T>& m) {
    return nn::detail::bert_config_to_hf(m.config(), false);
  }
};

}  // namespace eigenformer::io
