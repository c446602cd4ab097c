// A training run's folder and its config.json: the model's options, the label names and the tokenizer settings
// needed to load the model again (the role of Hugging Face's config.json next to model.safetensors and vocab.txt).
//
// A run folder holds
//   config.json            RunConfig: model type and options, labels, max_length, truncation
//   vocab.txt              the tokenizer's vocabulary (written by the caller's save_tokenizer callback)
//   model.safetensors      the best epoch's weights
//   metrics.csv            one row per epoch (history.hpp)
//   last.safetensors, optimizer.safetensors, trainer_state.json   the last epoch's checkpoint, for resuming
#pragma once

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "eigenformer/core/error.hpp"
#include "eigenformer/nn/encoder_classifier.hpp"
#include "eigenformer/train/history.hpp"

namespace eigenformer::train {

/// The paths of a run folder's files.
struct RunFolder {
  std::filesystem::path dir;

  std::filesystem::path config() const { return dir / "config.json"; }
  std::filesystem::path vocab() const { return dir / "vocab.txt"; }
  std::filesystem::path model() const { return dir / "model.safetensors"; }
  std::filesystem::path metrics() const { return dir / "metrics.csv"; }
  std::filesystem::path last_model() const { return dir / "last.safetensors"; }
  std::filesystem::path optimizer() const { return dir / "optimizer.safetensors"; }
  std::filesystem::path trainer_state() const { return dir / "trainer_state.json"; }
};

/// What config.json holds.
struct RunConfig {
  std::string model_type = "transformer";              // the caller's name for the architecture
  nlohmann::json model = nlohmann::json::object();     // the model's options (e.g. encoder_classifier_config)
  std::vector<std::string> labels;                     // class names in id order
  Index max_length = 0;                                // tokenizer: ids per text, special tokens included; 0 = all
  std::string truncation = "head";                     // "head" or "head_tail"
  Index head_tokens = -1;                              // head_tail: tokens kept from the start; -1 = default
  nlohmann::json training = nlohmann::json::object();  // the hyperparameters of the run (for the record)
};

/// config.json's content.
inline nlohmann::json run_config_to_json(const RunConfig& c) {
  return {{"model_type", c.model_type}, {"model", c.model},           {"labels", c.labels},
          {"max_length", c.max_length}, {"truncation", c.truncation}, {"head_tokens", c.head_tokens},
          {"training", c.training}};
}

/// Parses config.json's content; throws ValueError naming source and the field that is missing or wrong.
inline RunConfig run_config_from_json(const nlohmann::json& j, const std::string& source = "config") {
  using eigenformer::detail::concat;
  const auto field = [&](const char* name) -> const nlohmann::json& {
    if (!j.is_object() || !j.contains(name))
      throw ValueError(concat("run_config_from_json: ", source, " has no field \"", name, "\""));
    return j.at(name);
  };
  const auto fail = [&](const char* name, const char* expected) {
    return ValueError(concat("run_config_from_json: ", source, ": field \"", name, "\" is ", field(name).dump(),
                             ", expected ", expected));
  };
  RunConfig c;
  if (!field("model_type").is_string() || field("model_type").get<std::string>().empty())
    throw fail("model_type", "a non-empty string");
  c.model_type = field("model_type").get<std::string>();
  if (!field("model").is_object()) throw fail("model", "an object");
  c.model = field("model");
  const nlohmann::json& labels = field("labels");
  if (!labels.is_array() || labels.empty()) throw fail("labels", "a non-empty array of strings");
  for (const nlohmann::json& l : labels) {
    if (!l.is_string() || l.get<std::string>().empty()) throw fail("labels", "a non-empty array of strings");
    c.labels.push_back(l.get<std::string>());
  }
  if (!field("max_length").is_number_integer() || field("max_length").get<Index>() < 0)
    throw fail("max_length", "an integer >= 0");
  c.max_length = field("max_length").get<Index>();
  if (!field("truncation").is_string() || (field("truncation") != "head" && field("truncation") != "head_tail"))
    throw fail("truncation", "\"head\" or \"head_tail\"");
  c.truncation = field("truncation").get<std::string>();
  if (j.contains("head_tokens")) {
    if (!j.at("head_tokens").is_number_integer() || j.at("head_tokens").get<Index>() < -1)
      throw fail("head_tokens", "an integer >= -1");
    c.head_tokens = j.at("head_tokens").get<Index>();
  }
  if (j.contains("training")) c.training = j.at("training");
  return c;
}

/// Writes config.json (pretty-printed, replacing the file atomically); throws IoError on failure.
inline void save_run_config(const std::filesystem::path& path, const RunConfig& config) {
  detail::write_text_file("save_run_config", path, run_config_to_json(config).dump(2) + "\n");
}

/// Reads config.json; throws IoError when it cannot be read or is not JSON, ValueError for a bad field.
inline RunConfig load_run_config(const std::filesystem::path& path) {
  const std::string text = detail::read_text_file("load_run_config", path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw IoError(eigenformer::detail::concat("load_run_config: ", path.string(), " is not valid JSON: ", e.what()));
  }
  return run_config_from_json(j, path.string());
}

namespace detail {

/// The double nearest the shortest decimal that reads back as v: a float option 0.1f is written as 0.1, not as
/// 0.10000000149011612.
template <typename T>
double shortest_double(T v) {
  if constexpr (std::is_same_v<T, float>) {
    char buf[32];
    for (int precision = 6; precision <= 9; ++precision) {
      std::snprintf(buf, sizeof buf, "%.*g", precision, static_cast<double>(v));
      if (std::strtof(buf, nullptr) == v) break;
    }
    return std::strtod(buf, nullptr);
  } else {
    return static_cast<double>(v);
  }
}

template <typename E>
struct EnumNames;
template <>
struct EnumNames<nn::Activation> {
  static constexpr std::pair<nn::Activation, const char*> values[] = {{nn::Activation::relu, "relu"},
                                                                      {nn::Activation::gelu, "gelu"}};
};
template <>
struct EnumNames<nn::PositionalKind> {
  static constexpr std::pair<nn::PositionalKind, const char*> values[] = {
      {nn::PositionalKind::none, "none"},
      {nn::PositionalKind::learned, "learned"},
      {nn::PositionalKind::sinusoidal, "sinusoidal"}};
};
template <>
struct EnumNames<nn::Pooling> {
  static constexpr std::pair<nn::Pooling, const char*> values[] = {{nn::Pooling::cls, "cls"},
                                                                   {nn::Pooling::mean, "mean"}};
};

template <typename E>
std::string enum_name(E e) {
  for (const auto& [value, name] : EnumNames<E>::values)
    if (value == e) return name;
  return "?";
}

template <typename E>
E enum_from_name(const char* fn, const char* key, const nlohmann::json& j) {
  std::string expected;
  for (const auto& [value, name] : EnumNames<E>::values) {
    if (j.is_string() && j.get<std::string>() == name) return value;
    expected += (expected.empty() ? "\"" : ", \"") + std::string(name) + "\"";
  }
  throw ValueError(eigenformer::detail::concat(fn, ": \"", key, "\" is ", j.dump(), ", expected one of ", expected));
}

}  // namespace detail

/// The options of an nn::EncoderClassifier as a JSON object (the field names; enums as their names).
template <typename T = float>
nlohmann::json encoder_classifier_config(const typename nn::EncoderClassifier<T>::Options& o) {
  return {{"vocab_size", o.vocab_size},
          {"max_len", o.max_len},
          {"d_model", o.d_model},
          {"nhead", o.nhead},
          {"num_layers", o.num_layers},
          {"dim_feedforward", o.dim_feedforward},
          {"dropout", detail::shortest_double(o.dropout)},
          {"activation", detail::enum_name(o.activation)},
          {"layer_norm_eps", detail::shortest_double(o.layer_norm_eps)},
          {"norm_first", o.norm_first},
          {"final_norm", o.final_norm},
          {"positional", detail::enum_name(o.positional)},
          {"pooling", detail::enum_name(o.pooling)},
          {"pooler", o.pooler},
          {"num_classes", o.num_classes},
          {"padding_idx", o.padding_idx},
          {"seed", o.seed}};
}

/// The inverse of encoder_classifier_config: fields absent from j keep their defaults. Throws ValueError naming a
/// field of the wrong type or an unknown enum name, and for j not an object.
template <typename T = float>
typename nn::EncoderClassifier<T>::Options encoder_classifier_options(const nlohmann::json& j) {
  constexpr const char* fn = "encoder_classifier_options";
  using eigenformer::detail::concat;
  if (!j.is_object()) throw ValueError(concat(fn, ": expected a JSON object, got ", j.dump()));
  typename nn::EncoderClassifier<T>::Options o;
  const auto read = [&](const char* key, auto& out) {
    if (!j.contains(key)) return;
    using V = std::decay_t<decltype(out)>;
    const nlohmann::json& v = j.at(key);
    bool ok;
    if constexpr (std::is_same_v<V, bool>)
      ok = v.is_boolean();
    else if constexpr (std::is_floating_point_v<V>)
      ok = v.is_number();
    else if constexpr (std::is_signed_v<V>)
      ok = v.is_number_integer();
    else
      ok = v.is_number_unsigned();
    if (!ok)
      throw ValueError(concat(fn, ": \"", key, "\" is ", v.dump(), ", expected ",
                              std::is_same_v<V, bool>       ? "a boolean"
                              : std::is_floating_point_v<V> ? "a number"
                              : std::is_signed_v<V>         ? "an integer"
                                                            : "an integer >= 0"));
    if constexpr (std::is_floating_point_v<V>)
      out = static_cast<V>(v.get<double>());
    else
      out = v.get<V>();
  };
  read("vocab_size", o.vocab_size);
  read("max_len", o.max_len);
  read("d_model", o.d_model);
  read("nhead", o.nhead);
  read("num_layers", o.num_layers);
  read("dim_feedforward", o.dim_feedforward);
  read("dropout", o.dropout);
  if (j.contains("activation"))
    o.activation = detail::enum_from_name<nn::Activation>(fn, "activation", j.at("activation"));
  read("layer_norm_eps", o.layer_norm_eps);
  read("norm_first", o.norm_first);
  read("final_norm", o.final_norm);
  if (j.contains("positional"))
    o.positional = detail::enum_from_name<nn::PositionalKind>(fn, "positional", j.at("positional"));
  if (j.contains("pooling")) o.pooling = detail::enum_from_name<nn::Pooling>(fn, "pooling", j.at("pooling"));
  read("pooler", o.pooler);
  read("num_classes", o.num_classes);
  read("padding_idx", o.padding_idx);
  read("seed", o.seed);
  return o;
}

}  // namespace eigenformer::train
