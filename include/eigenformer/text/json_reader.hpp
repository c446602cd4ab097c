// JsonReader: reads a JSON file (tokenizer.json, vocab.json, tokenizer_config.json) with nlohmann/json and turns
// every problem into an IoError that names the calling function, the file and the JSON path of the value:
// "ByteLevelBpe::from_tokenizer_json: gpt2/tokenizer.json: model.merges[3]: expected a string, got number".
// Also the readers of the parts that tokenizer.json files share: a vocabulary object and the added tokens.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "eigenformer/core/error.hpp"
#include "eigenformer/io/file.hpp"
#include "eigenformer/text/added_tokens.hpp"
#include "eigenformer/text/unicode.hpp"

namespace eigenformer::text::detail {

class JsonReader {
 public:
  /// Reads and parses path; throws IoError naming fn and path when it is missing, unreadable or malformed.
  JsonReader(const char* fn, const std::filesystem::path& path) : fn_(fn), file_(path.string()) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) fail_file("no such file");
    if (std::filesystem::is_directory(path, ec)) fail_file("is a folder, expected a JSON file");
    const std::string text = io::read_text_file(path, fn);
    try {
      root_ = nlohmann::json::parse(text);
    } catch (const nlohmann::json::parse_error& e) {
      fail_file(concat("malformed JSON (", e.what(), ")"));
    }
  }

  const nlohmann::json& root() const { return root_; }
  const std::string& file() const { return file_; }
  const char* function() const { return fn_; }

  /// Throws IoError "fn: file: path: what".
  [[noreturn]] void fail(std::string_view path, std::string_view what) const {
    throw IoError(concat(fn_, ": ", file_, ": ", path.empty() ? std::string("(top level)") : std::string(path), ": ",
                         what));
  }

  [[noreturn]] void fail_file(std::string_view what) const { throw IoError(concat(fn_, ": ", file_, ": ", what)); }

  /// "string", "number", "object", ... for messages.
  static std::string type_name(const nlohmann::json& j) { return j.type_name(); }

  /// path + "." + key, or key at the top level.
  static std::string member_path(std::string_view path, std::string_view key) {
    return path.empty() ? std::string(key) : concat(path, ".", key);
  }
  static std::string element_path(std::string_view path, std::size_t i) { return concat(path, "[", i, "]"); }

  /// obj[key], which must exist (obj must be an object).
  const nlohmann::json& require(const nlohmann::json& obj, std::string_view path, const char* key) const {
    expect_object(obj, path);
    const auto it = obj.find(key);
    if (it == obj.end()) fail(member_path(path, key), "missing");
    return *it;
  }

  /// obj[key], or nullptr when absent or null.
  const nlohmann::json* optional(const nlohmann::json& obj, std::string_view path, const char* key) const {
    expect_object(obj, path);
    const auto it = obj.find(key);
    return it == obj.end() || it->is_null() ? nullptr : &*it;
  }

  void expect_object(const nlohmann::json& j, std::string_view path) const {
    if (!j.is_object()) fail(path, concat("expected an object, got ", type_name(j)));
  }
  void expect_array(const nlohmann::json& j, std::string_view path) const {
    if (!j.is_array()) fail(path, concat("expected an array, got ", type_name(j)));
  }

  const std::string& string(const nlohmann::json& j, std::string_view path) const {
    if (!j.is_string()) fail(path, concat("expected a string, got ", type_name(j)));
    return j.get_ref<const std::string&>();
  }

  bool boolean(const nlohmann::json& j, std::string_view path) const {
    if (!j.is_boolean()) fail(path, concat("expected true or false, got ", type_name(j)));
    return j.get<bool>();
  }

  std::int64_t integer(const nlohmann::json& j, std::string_view path) const {
    if (!j.is_number_integer()) fail(path, concat("expected an integer, got ", type_name(j)));
    return j.get<std::int64_t>();
  }

  /// obj[key] as a bool, or fallback when absent or null.
  bool boolean_or(const nlohmann::json& obj, std::string_view path, const char* key, bool fallback) const {
    const nlohmann::json* j = optional(obj, path, key);
    return j ? boolean(*j, member_path(path, key)) : fallback;
  }

  /// The string value of a "type" member.
  const std::string& type_of(const nlohmann::json& obj, std::string_view path) const {
    return string(require(obj, path, "type"), member_path(path, "type"));
  }

 private:
  template <typename... Args>
  static std::string concat(Args&&... args) {
    return ::eigenformer::detail::concat(std::forward<Args>(args)...);
  }

  const char* fn_;
  std::string file_;
  nlohmann::json root_;
};

/// A vocabulary object token -> id (vocab.json, tokenizer.json's model.vocab) as the tokens in id order; the ids
/// must be 0..V-1, each once.
inline std::vector<std::string> read_vocabulary(const JsonReader& r, const nlohmann::json& j, const std::string& path) {
  r.expect_object(j, path);
  std::vector<std::string> tokens(j.size());
  std::vector<bool> seen(j.size(), false);
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string at = JsonReader::member_path(path, text::detail::quoted(it.key()));
    const std::int64_t id = r.integer(it.value(), at);
    if (id < 0 || id >= static_cast<std::int64_t>(j.size()))
      r.fail(at, concat("id ", id, " is out of range: a vocabulary of ", j.size(), " tokens has ids 0..",
                        j.size() - 1));
    if (seen[static_cast<std::size_t>(id)])
      r.fail(at, concat("id ", id, " is also the id of ", text::detail::quoted(tokens[static_cast<std::size_t>(id)])));
    seen[static_cast<std::size_t>(id)] = true;
    tokens[static_cast<std::size_t>(id)] = it.key();
  }
  if (tokens.empty()) r.fail(path, "the vocabulary is empty");
  return tokens;
}

/// tokenizer.json's "added_tokens" (absent or null: none).
inline std::vector<AddedToken> read_added_tokens(const JsonReader& r) {
  std::vector<AddedToken> out;
  const nlohmann::json* list = r.optional(r.root(), "", "added_tokens");
  if (!list) return out;
  r.expect_array(*list, "added_tokens");
  for (std::size_t i = 0; i < list->size(); ++i) {
    const nlohmann::json& e = (*list)[i];
    const std::string at = JsonReader::element_path("added_tokens", i);
    AddedToken t;
    t.id = r.integer(r.require(e, at, "id"), at + ".id");
    t.content = r.string(r.require(e, at, "content"), at + ".content");
    if (t.content.empty()) r.fail(at + ".content", "is empty");
    if (t.id < 0) r.fail(at + ".id", concat("is ", t.id, ", expected >= 0"));
    t.special = r.boolean_or(e, at, "special", false);
    t.single_word = r.boolean_or(e, at, "single_word", false);
    t.lstrip = r.boolean_or(e, at, "lstrip", false);
    t.rstrip = r.boolean_or(e, at, "rstrip", false);
    t.normalized = r.boolean_or(e, at, "normalized", !t.special);
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace eigenformer::text::detail
