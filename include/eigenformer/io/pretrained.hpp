// Hugging Face model folders (the files of transformers' from_pretrained / save_pretrained): config.json, and the
// weights as model.safetensors or sharded (model-0000K-of-0000N.safetensors with model.safetensors.index.json),
// F32, F16 or BF16. Loading maps the checkpoint's names onto a module's state-dict names as transformers does
// (the base model's prefix added or removed, the old LayerNorm gamma / beta names, saved buffers dropped), checks
// everything before it changes anything, and reports the keys the checkpoint lacks (a new head, initialized by the
// model) and the keys the model does not use; anything else that does not fit throws with every problem named.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "eigenformer/core/error.hpp"
#include "eigenformer/io/file.hpp"
#include "eigenformer/io/safetensors.hpp"
#include "eigenformer/io/state_dict.hpp"
#include "eigenformer/nn/module.hpp"

namespace eigenformer::io {

namespace detail {

/// binary32 -> IEEE binary16, rounding to nearest even; overflow to infinity, NaN stays NaN (quiet).
inline std::uint16_t float_to_half(float f) {
  const std::uint32_t x = bit_cast<std::uint32_t>(f);
  const std::uint32_t sign = (x >> 16) & 0x8000u;
  const std::uint32_t abs = x & 0x7FFFFFFFu;
  if (abs >= 0x7F800000u) return static_cast<std::uint16_t>(sign | 0x7C00u | (abs > 0x7F800000u ? 0x200u : 0u));
  if (abs >= 0x477FF000u) return static_cast<std::uint16_t>(sign | 0x7C00u);  // rounds past the largest half
  if (abs < 0x38800000u) {  // a half subnormal (or zero): shift the mantissa with its implicit bit, round
    if (abs < 0x33000000u) return static_cast<std::uint16_t>(sign);  // below half the smallest subnormal
    const std::uint32_t exponent = abs >> 23, mantissa = (abs & 0x7FFFFFu) | 0x800000u;
    const std::uint32_t shift = 126 - exponent;  // 14 .. 24
    std::uint32_t h = mantissa >> shift;
    const std::uint32_t rest = mantissa & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rest > half || (rest == half && (h & 1u))) ++h;
    return static_cast<std::uint16_t>(sign | h);
  }
  std::uint32_t h = ((abs - 0x38000000u) >> 13);  // rebias 127 -> 15
  const std::uint32_t rest = abs & 0x1FFFu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;  // may carry into the exponent: still right
  return static_cast<std::uint16_t>(sign | h);
}

/// binary32 -> bfloat16, rounding to nearest even; NaN stays NaN (quiet).
inline std::uint16_t float_to_bfloat16(float f) {
  const std::uint32_t x = bit_cast<std::uint32_t>(f);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<std::uint16_t>((x >> 16) | 0x40u);
  return static_cast<std::uint16_t>((x + 0x7FFFu + ((x >> 16) & 1u)) >> 16);
}

/// True when name ends with suffix.
inline bool ends_with(const std::string& name, const std::string& suffix) {
  return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace detail

/// A Hugging Face config.json: the JSON object and typed reads whose errors name the reading function, the file
/// and the key.
class PretrainedConfig {
 public:
  PretrainedConfig() = default;
  /// j read from source by the function fn (both named in every error).
  PretrainedConfig(nlohmann::json j, std::string source, std::string fn = "PretrainedConfig")
      : json_(std::move(j)), source_(std::move(source)), where_(fn + ": " + source_) {
    if (!json_.is_object())
      throw IoError(eigenformer::detail::concat(where_, ": expected a JSON object, got ", json_.dump()));
  }
  /// Reads dir/config.json for fn; throws IoError when it is missing or not a JSON object.
  static PretrainedConfig read(const std::filesystem::path& dir, const std::string& fn = "from_pretrained") {
    const std::filesystem::path path = dir / "config.json";
    const std::string text = read_text_file(path, fn.c_str());
    try {
      return PretrainedConfig(nlohmann::json::parse(text), path.string(), fn);
    } catch (const nlohmann::json::parse_error& e) {
      throw IoError(eigenformer::detail::concat(fn, ": '", path.string(), "' is not valid JSON: ", e.what()));
    }
  }

  const nlohmann::json& json() const { return json_; }
  const std::string& source() const { return source_; }
  /// "fn: source", the start of every error about this config.
  const std::string& where() const { return where_; }
  bool has(const std::string& key) const { return json_.contains(key) && !json_.at(key).is_null(); }

  /// The value of key as V (an integer, floating-point, bool or string type), or fallback when absent or null.
  /// Throws IoError naming the file and the key for a value of another type.
  template <class V>
  V get(const std::string& key, V fallback) const {
    return has(key) ? get<V>(key) : fallback;
  }
  /// The value of key as V; throws IoError when it is absent or of another type.
  template <class V>
  V get(const std::string& key) const {
    using eigenformer::detail::concat;
    if (!has(key)) throw IoError(concat(where_, ": \"", key, "\" is missing"));
    const nlohmann::json& v = json_.at(key);
    bool ok;
    const char* expected;
    if constexpr (std::is_same_v<V, bool>) {
      ok = v.is_boolean();
      expected = "a boolean";
    } else if constexpr (std::is_integral_v<V>) {
      ok = v.is_number_integer();
      expected = "an integer";
    } else if constexpr (std::is_floating_point_v<V>) {
      ok = v.is_number();
      expected = "a number";
    } else {
      ok = v.is_string();
      expected = "a string";
    }
    if (!ok) throw IoError(concat(where_, ": \"", key, "\" is ", v.dump(), ", expected ", expected));
    return v.get<V>();
  }

 private:
  nlohmann::json json_ = nlohmann::json::object();
  std::string source_ = "config.json";
  std::string where_ = "PretrainedConfig: config.json";
};

/// The weights of a model folder: model.safetensors, or the shards a model.safetensors.index.json lists. Tensors
/// are read by name, converted to the requested type.
class PretrainedWeights {
 public:
  /// Opens dir's weights; throws IoError naming the folder and what is missing or damaged (a shard the index lists
  /// but the folder lacks, a tensor listed in the index but not in its shard, ...).
  static PretrainedWeights open(const std::filesystem::path& dir) {
    using eigenformer::detail::concat;
    PretrainedWeights w;
    std::error_code ec;
    const std::filesystem::path single = dir / "model.safetensors", index = dir / "model.safetensors.index.json";
    if (std::filesystem::exists(single, ec)) {
      w.add_file(single, nullptr);
      return w;
    }
    if (!std::filesystem::exists(index, ec)) {
      const bool bin = std::filesystem::exists(dir / "pytorch_model.bin", ec);
      throw IoError(concat("from_pretrained: '", dir.string(), "' holds neither model.safetensors nor ",
                           "model.safetensors.index.json", bin ? " (pytorch_model.bin is not read: convert it to "
                                                                 "safetensors)" : ""));
    }
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(read_text_file(index, "from_pretrained"));
    } catch (const nlohmann::json::parse_error& e) {
      throw IoError(concat("from_pretrained: '", index.string(), "' is not valid JSON: ", e.what()));
    }
    if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
      throw IoError(concat("from_pretrained: '", index.string(), "' has no \"weight_map\" object"));
    std::map<std::string, std::set<std::string>> shards;  // shard file -> the tensors the index puts there
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      if (!it->is_string())
        throw IoError(concat("from_pretrained: '", index.string(), "': weight_map[\"", it.key(), "\"] is ",
                             it->dump(), ", expected a file name"));
      const std::string shard = it->get<std::string>();
      if (shard.empty() || shard.find('/') != std::string::npos || shard.find('\\') != std::string::npos)
        throw IoError(concat("from_pretrained: '", index.string(), "': shard name \"", shard,
                             "\" must be a file name in the folder"));
      shards[shard].insert(it.key());
    }
    for (const auto& [shard, names] : shards) {
      if (!std::filesystem::exists(dir / shard, ec))
        throw IoError(concat("from_pretrained: '", dir.string(), "': shard '", shard, "' (listed in ",
                             "model.safetensors.index.json) is missing"));
      w.add_file(dir / shard, &names);
    }
    return w;
  }

  /// Every tensor name, sorted.
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& [name, where] : index_) out.push_back(name);
    std::sort(out.begin(), out.end());
    return out;
  }
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  /// The description of a tensor (dtype, shape); throws IoError when there is none.
  const TensorInfo& info(const std::string& name) const { return file_of(name).info(name); }
  /// The tensor converted to T (see SafetensorsView::get).
  template <typename T>
  Tensor<T> get(const std::string& name) const {
    return file_of(name).template get<T>(name);
  }
  /// The file holding name.
  const std::string& source(const std::string& name) const { return file_of(name).source_name(); }

 private:
  /// Reads one file; with expected, its tensors must be exactly those the index assigns to it.
  void add_file(const std::filesystem::path& path, const std::set<std::string>* expected) {
    using eigenformer::detail::concat;
    files_.push_back(read_safetensors(path));
    const SafetensorsFile& f = files_.back();
    std::set<std::string> present;
    for (const TensorInfo& t : f.tensors()) {
      present.insert(t.name);
      if (!index_.emplace(t.name, files_.size() - 1).second)
        throw IoError(concat("from_pretrained: tensor '", t.name, "' is in two shards (", source(t.name), " and ",
                             path.string(), ")"));
    }
    if (expected && present != *expected) {
      std::string problems;
      for (const std::string& n : *expected)
        if (!present.count(n)) problems += concat(problems.empty() ? "" : ", ", "'", n, "' is missing");
      for (const std::string& n : present)
        if (!expected->count(n)) problems += concat(problems.empty() ? "" : ", ", "'", n, "' is not in the index");
      throw IoError(concat("from_pretrained: '", path.string(), "' does not match model.safetensors.index.json: ",
                           problems));
    }
  }
  const SafetensorsFile& file_of(const std::string& name) const {
    const auto it = index_.find(name);
    if (it == index_.end())
      throw IoError(eigenformer::detail::concat("from_pretrained: the checkpoint has no tensor '", name, "'"));
    return files_[it->second];
  }

  std::vector<SafetensorsFile> files_;
  std::unordered_map<std::string, std::size_t> index_;
};

/// How a checkpoint's names map onto a model's.
struct PretrainedNames {
  /// The base model's name in the task models ("bert." for BertFor..., "transformer." for GPT2LMHeadModel): a
  /// checkpoint of the bare base model loads into a task model and the other way round.
  std::string base_prefix;
  /// Suffixes renamed in checkpoint names before matching (old transformers: ".gamma" -> ".weight", ".beta" ->
  /// ".bias" of LayerNorms).
  std::vector<std::pair<std::string, std::string>> renames = {{"LayerNorm.gamma", "LayerNorm.weight"},
                                                              {"LayerNorm.beta", "LayerNorm.bias"}};
  /// Checkpoint names (by suffix) that the model drops without a word: buffers that old versions saved
  /// (".position_ids", ".attn.bias", ".attn.masked_bias").
  std::vector<std::string> dropped;
};

/// What loading a checkpoint found, as transformers reports it.
struct PretrainedReport {
  std::vector<std::string> missing;     // model names the checkpoint lacks: kept as the model initialized them
  std::vector<std::string> unexpected;  // checkpoint names the model does not use
  std::vector<std::string> dropped;     // checkpoint names dropped on purpose (saved buffers of old versions)

  /// The report's lines ("" when the checkpoint fit exactly).
  std::string to_string() const {
    std::string out;
    const auto list = [&out](const char* what, const std::vector<std::string>& names) {
      if (names.empty()) return;
      out += eigenformer::detail::concat(what, " (", names.size(), "):");
      for (const std::string& n : names) out += " " + n;
      out += "\n";
    };
    list("newly initialized, not in the checkpoint", missing);
    list("in the checkpoint, not used by the model", unexpected);
    return out;
  }
};

namespace detail {

/// The model's state-dict entries (parameters and persistent buffers) with a way to stage a value into each.
struct StateEntry {
  std::string name;
  Shape shape;
  bool floating = true;
  std::function<std::function<void()>(const PretrainedWeights&, const std::string&)> stage;  // converts; then commit
};

template <class Module>
std::vector<StateEntry> state_entries(Module& module) {
  std::vector<StateEntry> out;
  module.visit_parameters([&out](const std::string& name, auto& param) {
    using V = std::decay_t<decltype(param)>;
    using T = typename V::Scalar;
    V handle = param;
    out.push_back({name, param.shape(), true, [handle](const PretrainedWeights& w, const std::string& key) mutable {
                     auto value = std::make_shared<Tensor<T>>(w.template get<T>(key));
                     return std::function<void()>([handle, value]() mutable {
                       std::copy_n(value->data(), value->numel(), handle.value().data());
                     });
                   }});
  });
  if constexpr (eigenformer::io::detail::HasBuffers<Module>::value)
    module.visit_buffers([&out](const std::string& name, auto& b, nn::Persistence p) {
      if (p != nn::Persistence::persistent) return;
      using U = typename std::decay_t<decltype(b)>::Scalar;
      Tensor<U>* target = &b;
      out.push_back({name, b.shape(), std::is_floating_point_v<U>,
                     [target](const PretrainedWeights& w, const std::string& key) {
                       auto value = std::make_shared<Tensor<U>>(w.template get<U>(key));
                       return std::function<void()>([target, value] {
                         std::copy_n(value->data(), value->numel(), target->data());
                       });
                     }});
    });
  return out;
}

}  // namespace detail

/// Loads a checkpoint's weights into module (parameters and persistent buffers), mapping names as names says.
/// Every shape and dtype is checked and every tensor converted before the first value changes: on any problem the
/// module is unchanged and IoError lists every problem (each mis-shaped tensor with the file's shape and the
/// model's, each tensor of the wrong kind), naming the folder. Missing and unexpected names are reported, not
/// errors, unless no name of the model is in the checkpoint at all.
template <class Module>
PretrainedReport load_pretrained_weights(Module& module, const PretrainedWeights& weights, const PretrainedNames& names,
                                         const std::string& where) {
  using eigenformer::detail::concat;
  const std::vector<detail::StateEntry> entries = detail::state_entries(module);
  std::unordered_map<std::string, const detail::StateEntry*> by_name;
  bool model_has_prefix = false;
  for (const auto& e : entries) {
    by_name.emplace(e.name, &e);
    model_has_prefix = model_has_prefix || (!names.base_prefix.empty() && e.name.rfind(names.base_prefix, 0) == 0);
  }
  bool file_has_prefix = false;
  for (const std::string& key : weights.names())
    file_has_prefix = file_has_prefix || (!names.base_prefix.empty() && key.rfind(names.base_prefix, 0) == 0);

  PretrainedReport report;
  std::vector<std::pair<const detail::StateEntry*, std::string>> matched;  // model entry, checkpoint key
  std::set<std::string> found;
  std::string problems;
  const auto problem = [&problems](const std::string& p) { problems += (problems.empty() ? "" : "; ") + p; };
  for (const std::string& key : weights.names()) {
    std::string name = key;
    for (const auto& [from, to] : names.renames)
      if (detail::ends_with(name, from)) name = name.substr(0, name.size() - from.size()) + to;
    if (model_has_prefix && !file_has_prefix) name = names.base_prefix + name;
    if (!model_has_prefix && file_has_prefix && name.rfind(names.base_prefix, 0) == 0)
      name = name.substr(names.base_prefix.size());
    const auto it = by_name.find(name);
    if (it == by_name.end()) {
      const bool drop = std::any_of(names.dropped.begin(), names.dropped.end(),
                                    [&](const std::string& suffix) { return detail::ends_with(key, suffix); });
      (drop ? report.dropped : report.unexpected).push_back(key);
      continue;
    }
    const TensorInfo& info = weights.info(key);
    const detail::StateEntry& e = *it->second;
    if (info.shape != e.shape)
      problem(concat("'", key, "' is ", to_string(info.shape), " in ", weights.source(key), ", the model's '", name,
                     "' is ", to_string(e.shape)));
    else if (is_floating(info.dtype) != e.floating)
      problem(concat("'", key, "' is ", dtype_name(info.dtype), ", expected ",
                     e.floating ? "F16, BF16, F32 or F64" : "an integer type"));
    else
      matched.emplace_back(&e, key);
    found.insert(name);
  }
  for (const auto& e : entries)
    if (!found.count(e.name)) report.missing.push_back(e.name);
  if (found.empty() && !entries.empty())
    problem(concat("no tensor of the checkpoint is a weight of the model (it holds ", weights.names().size(),
                   " tensors, e.g. '", weights.names().empty() ? std::string() : weights.names().front(),
                   "'; the model's first is '", entries.front().name, "')"));
  if (!problems.empty())
    throw IoError(concat("from_pretrained: the checkpoint in '", where, "' does not fit the model: ", problems,
                         " (nothing was loaded)"));
  std::vector<std::function<void()>> commits;
  commits.reserve(matched.size());
  for (const auto& [entry, key] : matched) commits.push_back(entry->stage(weights, key));  // may throw: no change yet
  for (auto& commit : commits) commit();
  return report;
}

/// How save_pretrained_weights writes tensors.
struct PretrainedSaveOptions {
  DType dtype = DType::F32;  // F32, F16 or BF16 for floating-point tensors
  std::uint64_t max_shard_bytes = 5000000000ull;  // larger state dicts are split into shards (transformers' 5GB)
};

/// Writes module's state dict (parameters and persistent buffers, each tied parameter once) into dir as
/// model.safetensors, or as shards plus model.safetensors.index.json when it exceeds options.max_shard_bytes, each
/// file atomically, with the metadata transformers writes ({"format": "pt"}). Throws IoError on failure.
template <class Module>
void save_pretrained_weights(Module& module, const std::filesystem::path& dir, const PretrainedSaveOptions& options = {}) {
  using eigenformer::detail::concat;
  if (options.dtype != DType::F32 && options.dtype != DType::F16 && options.dtype != DType::BF16)
    throw ValueError(concat("save_pretrained: dtype is ", dtype_name(options.dtype), ", expected F32, F16 or BF16"));
  struct Entry {
    std::string name;
    std::function<void(Writer&)> add;
    std::uint64_t bytes;
  };
  std::vector<Entry> entries;
  const auto add_float = [&](const std::string& name, const auto& tensor) {
    using T = typename std::decay_t<decltype(tensor)>::Scalar;
    const Tensor<T> t = tensor;
    const DType d = options.dtype;
    const std::uint64_t bytes = static_cast<std::uint64_t>(t.numel()) * dtype_size(d);
    entries.push_back({name,
                       [t, d, name](Writer& w) {
                         if (d == DType::F32) {
                           w.add(name, t.template cast<float>());
                           return;
                         }
                         std::vector<std::uint8_t> raw(static_cast<std::size_t>(t.numel()) * 2);
                         for (Index i = 0; i < t.numel(); ++i) {
                           const float v = static_cast<float>(t.data()[i]);
                           const std::uint16_t h = d == DType::F16 ? detail::float_to_half(v) : detail::float_to_bfloat16(v);
                           raw[2 * static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(h & 0xFF);
                           raw[2 * static_cast<std::size_t>(i) + 1] = static_cast<std::uint8_t>(h >> 8);
                         }
                         w.add_bytes(name, d, t.shape(), std::move(raw));
                       },
                       bytes});
  };
  module.visit_parameters([&](const std::string& name, auto& p) { add_float(name, p.value()); });
  if constexpr (detail::HasBuffers<Module>::value)
    module.visit_buffers([&](const std::string& name, auto& b, nn::Persistence p) {
      using U = typename std::decay_t<decltype(b)>::Scalar;
      if (p != nn::Persistence::persistent) return;
      if constexpr (std::is_floating_point_v<U>) {
        add_float(name, b);
      } else {
        const Tensor<U> t = b;
        entries.push_back({name, [t, name](Writer& w) { w.add(name, t); },
                           static_cast<std::uint64_t>(t.numel()) * sizeof(U)});
      }
    });
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw IoError(concat("save_pretrained: cannot create '", dir.string(), "': ", ec.message()));
  // Shards in declaration order, each up to max_shard_bytes (a tensor larger than that gets a shard of its own).
  std::vector<std::vector<const Entry*>> shards(1);
  std::uint64_t total = 0, current = 0;
  for (const Entry& e : entries) {
    if (current > 0 && current + e.bytes > options.max_shard_bytes) {
      shards.emplace_back();
      current = 0;
    }
    shards.back().push_back(&e);
    current += e.bytes;
    total += e.bytes;
  }
  const auto write_shard = [&](const std::vector<const Entry*>& shard, const std::filesystem::path& path) {
    Writer w;
    for (const Entry* e : shard) e->add(w);
    w.set_metadata("format", "pt");
    w.write(path);
  };
  if (shards.size() == 1) {
    write_shard(shards.front(), dir / "model.safetensors");
    std::filesystem::remove(dir / "model.safetensors.index.json", ec);
    return;
  }
  nlohmann::json weight_map = nlohmann::json::object();
  for (std::size_t k = 0; k < shards.size(); ++k) {
    char file[64];
    std::snprintf(file, sizeof file, "model-%05zu-of-%05zu.safetensors", k + 1, shards.size());
    write_shard(shards[k], dir / file);
    for (const Entry* e : shards[k]) weight_map[e->name] = file;
  }
  const nlohmann::json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  write_text_file_atomically(dir / "model.safetensors.index.json", index.dump(2) + "\n", "save_pretrained");
  std::filesystem::remove(dir / "model.safetensors", ec);  // a single file of an earlier save would shadow the index
}

/// What a model class tells from_pretrained and save_pretrained; specialized for each model (nn/bert_pretrained.hpp,
/// nn/gpt2_pretrained.hpp):
///   static constexpr const char* model_type;                         config.json's "model_type"
///   static const char* architecture();                                "BertForMaskedLM", ...
///   static Config config_from(const PretrainedConfig&);               throws IoError naming the key
///   static nlohmann::json config_json(const Model&);                  the model-specific keys transformers writes
///   static const Config& config_of(const Model&);
///   static PretrainedNames names();
template <class Model>
struct PretrainedFormat;

/// A model of class Model from a Hugging Face folder: its config.json (model_type checked), adjusted by adjust when
/// given (a new head's label count, dropout rates), then the weights; report, when given, receives the keys the
/// checkpoint lacked (newly initialized) and those the model did not use. Throws IoError naming the file and every
/// problem (a missing file, an unknown model_type, a config value of the wrong type, tensors that do not fit).
template <class Model>
Model from_pretrained(const std::filesystem::path& dir, PretrainedReport* report = nullptr,
                      const std::function<void(typename Model::Config&)>& adjust = {}) {
  using Format = PretrainedFormat<Model>;
  using eigenformer::detail::concat;
  const PretrainedConfig config = PretrainedConfig::read(dir);
  const std::string type = config.get<std::string>("model_type", "");
  if (type != Format::model_type)
    throw IoError(concat(config.where(), ": model_type is \"", type, "\", expected \"",
                         Format::model_type, "\" for ", Format::architecture()));
  typename Model::Config c = Format::config_from(config);
  if (adjust) adjust(c);
  Model model(c);
  const PretrainedWeights weights = PretrainedWeights::open(dir);
  PretrainedReport r = load_pretrained_weights(model, weights, Format::names(), dir.string());
  if (report) *report = std::move(r);
  return model;
}

/// Writes model as a Hugging Face folder that transformers' from_pretrained loads unchanged: config.json (the
/// model's keys, model_type, architectures, torch_dtype) and the weights (save_pretrained_weights), each file
/// atomically.
template <class Model>
void save_pretrained(Model& model, const std::filesystem::path& dir, const PretrainedSaveOptions& options = {}) {
  using Format = PretrainedFormat<Model>;
  nlohmann::json config = Format::config_json(model);
  config["model_type"] = Format::model_type;
  config["architectures"] = {Format::architecture()};
  config["torch_dtype"] = options.dtype == DType::F16 ? "float16" : options.dtype == DType::BF16 ? "bfloat16" : "float32";
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw IoError(eigenformer::detail::concat("save_pretrained: cannot create '", dir.string(), "': ", ec.message()));
  save_pretrained_weights(model, dir, options);
  write_text_file_atomically(dir / "config.json", config.dump(2) + "\n", "save_pretrained");
}

}  // namespace eigenformer::io
