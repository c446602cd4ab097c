// A training run's config.json: the model's type and options, the label names and the tokenizer settings needed
// to load the model again (the role of Hugging Face's config.json next to model.safetensors and vocab.txt). The
// model's options are written from the one list of fields its Options declare (io/options_json.hpp).
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "eigenformer/core/config.hpp"
#include "eigenformer/core/error.hpp"
#include "eigenformer/io/file.hpp"
#include "eigenformer/io/options_json.hpp"

namespace eigenformer::train {

/// What config.json holds.
struct RunConfig {
  std::string model_type = "transformer";              // the caller's name for the architecture
  nlohmann::json model = nlohmann::json::object();     // the model's options (io::options_to_json)
  std::vector<std::string> labels;                     // class names in id order; empty for a language model
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
  if (!labels.is_array()) throw fail("labels", "an array of non-empty strings");
  for (const nlohmann::json& l : labels) {
    if (!l.is_string() || l.get<std::string>().empty()) throw fail("labels", "an array of non-empty strings");
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
  io::write_text_file_atomically(path, run_config_to_json(config).dump(2) + "\n", "save_run_config");
}

/// Reads config.json; throws IoError when it cannot be read or is not JSON, ValueError for a bad field.
inline RunConfig load_run_config(const std::filesystem::path& path) {
  const std::string text = io::read_text_file(path, "load_run_config");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw IoError(eigenformer::detail::concat("load_run_config: ", path.string(), " is not valid JSON: ", e.what()));
  }
  return run_config_from_json(j, path.string());
}

/// The model options O of a run's config ("model"); throws ValueError naming the file and the field.
template <class O>
O model_options(const RunConfig& config, const std::string& source = "config.json") {
  const std::string fn = "model_options: " + source;
  return io::options_from_json<O>(config.model, fn.c_str());
}

}  // namespace eigenformer::train
