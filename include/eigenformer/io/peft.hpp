// LoRA adapters as PEFT folders: adapter_config.json (peft_type LORA, r, lora_alpha, lora_dropout,
// target_modules, modules_to_save) and adapter_model.safetensors with the trainable parameters under PEFT's names
// ("base_model.model." + the model's name): a few MB for a BERT-base classifier, where the model is 440.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "eigenformer/io/file.hpp"
#include "eigenformer/io/pretrained.hpp"
#include "eigenformer/io/safetensors.hpp"
#include "eigenformer/nn/lora.hpp"

namespace eigenformer::io {

/// The prefix PEFT puts before a model's parameter names in adapter files.
inline constexpr const char* kPeftPrefix = "base_model.model.";

/// Writes the model's trainable parameters (the adapters add_lora attached and the modules it kept trainable) and
/// adapter_config.json into dir, each file atomically. task_type is PEFT's ("SEQ_CLS", "CAUSAL_LM", ...).
template <class Model>
void save_lora(Model& model, const std::filesystem::path& dir, const nn::LoraOptions& options,
               const std::string& task_type = "SEQ_CLS", const std::string& base_model = "") {
  Writer w;
  Index count = 0;
  model.visit_parameters([&](const std::string& name, auto& p) {
    if (!p.requires_grad()) return;
    w.add(kPeftPrefix + name, p.value());
    ++count;
  });
  if (count == 0) throw ValueError("save_lora: the model has no trainable parameter (call add_lora first)");
  const nlohmann::json config = {{"peft_type", "LORA"},
                                 {"task_type", task_type},
                                 {"r", options.rank},
                                 {"lora_alpha", options.alpha},
                                 {"lora_dropout", options.dropout},
                                 {"target_modules", options.targets},
                                 {"modules_to_save", options.trainable},
                                 {"bias", "none"},
                                 {"fan_in_fan_out", false},
                                 {"inference_mode", true},
                                 {"base_model_name_or_path", base_model}};
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw IoError(eigenformer::detail::concat("save_lora: cannot create '", dir.string(), "': ", ec.message()));
  w.set_metadata("format", "pt");
  w.write(dir / "adapter_model.safetensors");
  write_text_file_atomically(dir / "adapter_config.json", config.dump(2) + "\n", "save_lora");
}

/// The LoRA options of an adapter folder's adapter_config.json; throws IoError naming the file and key.
inline nn::LoraOptions read_lora_options(const std::filesystem::path& dir) {
  using eigenformer::detail::concat;
  const std::filesystem::path path = dir / "adapter_config.json";
  PretrainedConfig c;
  try {
    c = PretrainedConfig(nlohmann::json::parse(read_text_file(path, "load_lora")), path.string(), "load_lora");
  } catch (const nlohmann::json::parse_error& e) {
    throw IoError(concat("load_lora: '", path.string(), "' is not valid JSON: ", e.what()));
  }
  if (c.get<std::string>("peft_type", "") != "LORA")
    throw IoError(concat(c.where(), ": \"peft_type\" is ", c.json().value("peft_type", nlohmann::json()).dump(),
                         ", expected \"LORA\""));
  nn::LoraOptions o;
  o.rank = c.get<Index>("r");
  o.alpha = c.get<double>("lora_alpha", o.alpha);
  o.dropout = c.get<double>("lora_dropout", o.dropout);
  const auto strings = [&](const char* key, std::vector<std::string> fallback) {
    if (!c.has(key)) return fallback;
    const nlohmann::json& j = c.json().at(key);
    std::vector<std::string> out;
    if (j.is_string()) return std::vector<std::string>{j.get<std::string>()};
    if (!j.is_array()) throw IoError(concat(c.where(), ": \"", key, "\" is ", j.dump(), ", expected a list of names"));
    for (const auto& s : j) {
      if (!s.is_string()) throw IoError(concat(c.where(), ": \"", key, "\" is ", j.dump(), ", expected names"));
      out.push_back(s.get<std::string>());
    }
    return out;
  };
  o.targets = strings("target_modules", o.targets);
  o.trainable = strings("modules_to_save", {});
  if (c.get<std::string>("bias", "none") != "none")
    throw IoError(concat(c.where(), ": \"bias\" is \"", c.get<std::string>("bias"), "\", only \"none\" is supported"));
  return o;
}

/// Attaches the adapters an adapter folder describes to model (add_lora with its options) and loads their values
/// and those of its trainable modules; all-or-nothing for the values, every missing or mis-shaped tensor named.
/// Returns the options read.
template <class Model>
nn::LoraOptions load_lora(Model& model, const std::filesystem::path& dir) {
  using eigenformer::detail::concat;
  const nn::LoraOptions o = read_lora_options(dir);
  const SafetensorsFile file = read_safetensors(dir / "adapter_model.safetensors");
  std::vector<bool> trained;  // to undo add_lora when the values do not fit
  model.visit_parameters([&](const std::string&, auto& p) { trained.push_back(p.requires_grad()); });
  nn::add_lora(model, o);
  try {
    detail::Loader loader(file, "load_lora");
    model.visit_parameters([&](const std::string& name, auto& param) {
      if (!param.requires_grad()) return;
      using V = std::decay_t<decltype(param)>;
      using T = typename V::Scalar;
      V handle = param;
      loader.stage(kPeftPrefix + name, param.value(), false,
                   [handle](const Tensor<T>& v) mutable { detail::copy_into(handle.value(), v); });
    });
    loader.check(true, (dir / "adapter_model.safetensors").string());
    loader.apply();
  } catch (...) {
    model.apply([](const std::string&, auto& m) {
      if constexpr (nn::detail::IsLinear<std::decay_t<decltype(m)>>::value) m.adapter.reset();
    });
    std::size_t i = 0;
    model.visit_parameters([&](const std::string&, auto& p) { p.set_requires_grad(trained[i++]); });
    throw;
  }
  return o;
}

}  // namespace eigenformer::io
