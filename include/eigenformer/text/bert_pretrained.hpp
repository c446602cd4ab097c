// Loading BERT's tokenizer (tokenizer.hpp) from Hugging Face files: a tokenizer.json (model WordPiece, normalizer
// BertNormalizer, pre-tokenizer BertPreTokenizer, post-processor with BERT's [CLS]/[SEP] template), or a model
// folder (its tokenizer.json, else vocab.txt with the options of tokenizer_config.json, as transformers'
// BertTokenizerFast converts it). Both follow tokenizers' character rules (BertRules::rust) and treat the special
// tokens as added tokens, found in the raw text before anything else.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "eigenformer/core/error.hpp"
#include "eigenformer/io/file.hpp"
#include "eigenformer/text/added_tokens.hpp"
#include "eigenformer/text/json_reader.hpp"
#include "eigenformer/text/tokenizer.hpp"
#include "eigenformer/text/vocab.hpp"

namespace eigenformer::text {

namespace detail {

/// The [CLS] and [SEP] of BERT's post-processor: TemplateProcessing "[CLS]:0 $A:0 [SEP]:0" with pair
/// "[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1", or BertProcessing {"cls": [token, id], "sep": [token, id]}.
inline std::pair<std::string, std::string> bert_post_processor(const JsonReader& r, const nlohmann::json& j) {
  const std::string& type = r.type_of(j, "post_processor");
  if (type == "BertProcessing") {
    std::string tokens[2];
    const char* keys[2] = {"cls", "sep"};
    for (int i = 0; i < 2; ++i) {
      const std::string path = std::string("post_processor.") + keys[i];
      const nlohmann::json& e = r.require(j, "post_processor", keys[i]);
      if (!e.is_array() || e.size() != 2) r.fail(path, "expected [token, id]");
      tokens[i] = r.string(e[0], path + "[0]");
    }
    return {tokens[0], tokens[1]};
  }
  if (type != "TemplateProcessing")
    r.fail("post_processor.type", concat("is \"", type, "\", expected \"TemplateProcessing\" or \"BertProcessing\""));
  // Each template piece: {"SpecialToken": {"id": token, "type_id": t}} or {"Sequence": {"id": "A"|"B", ...}}.
  const auto pieces = [&](const char* key) {
    const std::string path = std::string("post_processor.") + key;
    const nlohmann::json& list = r.require(j, "post_processor", key);
    r.expect_array(list, path);
    std::vector<std::pair<std::string, std::int64_t>> out;  // token, or "$A"/"$B"; type id
    for (std::size_t i = 0; i < list.size(); ++i) {
      const std::string at = JsonReader::element_path(path, i);
      r.expect_object(list[i], at);
      if (const nlohmann::json* s = r.optional(list[i], at, "SpecialToken")) {
        out.emplace_back(r.string(r.require(*s, at + ".SpecialToken", "id"), at + ".SpecialToken.id"),
                         r.integer(r.require(*s, at + ".SpecialToken", "type_id"), at + ".SpecialToken.type_id"));
      } else if (const nlohmann::json* q = r.optional(list[i], at, "Sequence")) {
        out.emplace_back("$" + r.string(r.require(*q, at + ".Sequence", "id"), at + ".Sequence.id"),
                         r.integer(r.require(*q, at + ".Sequence", "type_id"), at + ".Sequence.type_id"));
      } else {
        r.fail(at, "expected {\"SpecialToken\": ...} or {\"Sequence\": ...}");
      }
    }
    return out;
  };
  const auto single = pieces("single");
  const auto pair = pieces("pair");
  const bool bert = single.size() == 3 && single[1] == std::make_pair(std::string("$A"), std::int64_t(0)) &&
                    single[0].second == 0 && single[2].second == 0 && pair.size() == 5 && pair[0] == single[0] &&
                    pair[1] == single[1] && pair[2] == single[2] &&
                    pair[3] == std::make_pair(std::string("$B"), std::int64_t(1)) &&
                    pair[4] == std::make_pair(single[2].first, std::int64_t(1)) && single[0].first[0] != '$' &&
                    single[2].first[0] != '$';
  if (!bert)
    r.fail("post_processor", "is not BERT's template: expected single \"[CLS]:0 $A:0 [SEP]:0\" and pair "
                             "\"[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1\" (any names for [CLS] and [SEP])");
  return {single[0].first, single[2].first};
}

/// A token option of tokenizer_config.json: a string or {"content": string, ...}; fallback when absent or null.
inline std::string config_token(const JsonReader& r, const char* key, const std::string& fallback) {
  const nlohmann::json* j = r.optional(r.root(), "", key);
  if (!j) return fallback;
  if (j->is_object()) return r.string(r.require(*j, key, "content"), std::string(key) + ".content");
  return r.string(*j, key);
}

}  // namespace detail

/// BERT's tokenizer from a Hugging Face tokenizer.json. Throws IoError naming the file and the JSON path of
/// anything missing, mistyped or unsupported (another model, normalizer, pre-tokenizer or post-processor).
inline Tokenizer load_bert_tokenizer_json(const std::filesystem::path& path) {
  const detail::JsonReader r("load_bert_tokenizer_json", path);
  const nlohmann::json& root = r.root();
  r.expect_object(root, "");

  const nlohmann::json& model = r.require(root, "", "model");
  const std::string& type = r.type_of(model, "model");
  if (type != "WordPiece") r.fail("model.type", detail::concat("is \"", type, "\", expected \"WordPiece\""));
  Vocab::SpecialTokens specials;
  Tokenizer::Options o;
  o.basic.rules = BertRules::rust;
  if (const nlohmann::json* j = r.optional(model, "model", "unk_token")) specials.unk = r.string(*j, "model.unk_token");
  if (const nlohmann::json* j = r.optional(model, "model", "continuing_subword_prefix"))
    o.wordpiece.continuation_prefix = r.string(*j, "model.continuing_subword_prefix");
  if (const nlohmann::json* j = r.optional(model, "model", "max_input_chars_per_word"))
    o.wordpiece.max_input_chars_per_word = static_cast<Index>(r.integer(*j, "model.max_input_chars_per_word"));

  if (const nlohmann::json* n = r.optional(root, "", "normalizer")) {
    const std::string& t = r.type_of(*n, "normalizer");
    if (t != "BertNormalizer")
      r.fail("normalizer.type", detail::concat("is \"", t, "\", expected \"BertNormalizer\" or a null normalizer"));
    o.basic.clean_text = r.boolean_or(*n, "normalizer", "clean_text", true);
    o.basic.split_cjk = r.boolean_or(*n, "normalizer", "handle_chinese_chars", true);
    o.basic.lowercase = r.boolean_or(*n, "normalizer", "lowercase", true);
    o.basic.strip_accents = r.boolean_or(*n, "normalizer", "strip_accents", o.basic.lowercase);  // null: lowercase
  } else {
    o.basic.clean_text = false;
    o.basic.split_cjk = false;
    o.basic.lowercase = false;
    o.basic.strip_accents = false;
  }
  const nlohmann::json* pre = r.optional(root, "", "pre_tokenizer");
  if (!pre) r.fail("pre_tokenizer", "is null, expected a BertPreTokenizer");
  const std::string& pre_type = r.type_of(*pre, "pre_tokenizer");
  if (pre_type != "BertPreTokenizer")
    r.fail("pre_tokenizer.type", detail::concat("is \"", pre_type, "\", expected \"BertPreTokenizer\""));
  const nlohmann::json* post = r.optional(root, "", "post_processor");
  if (!post) r.fail("post_processor", "is null, expected BERT's [CLS]/[SEP] template");
  std::tie(specials.cls, specials.sep) = detail::bert_post_processor(r, *post);
  if (const nlohmann::json* padding = r.optional(root, "", "padding"))
    if (const nlohmann::json* pad = r.optional(*padding, "padding", "pad_token"))
      specials.pad = r.string(*pad, "padding.pad_token");

  const std::vector<std::string> tokens =
      detail::read_vocabulary(r, r.require(model, "model", "vocab"), "model.vocab");
  std::vector<AddedToken> added = detail::read_added_tokens(r);
  for (std::size_t i = 0; i < added.size(); ++i)
    if (added[i].id >= static_cast<std::int64_t>(tokens.size()) || added[i].id < 0 ||
        tokens[static_cast<std::size_t>(added[i].id)] != added[i].content)
      r.fail(detail::JsonReader::element_path("added_tokens", i),
             detail::concat(detail::quoted(added[i].content), " with id ", added[i].id,
                            " is not the vocabulary's token of that id (tokens outside the vocabulary are not "
                            "supported)"));
  o.added_tokens = std::move(added);
  try {
    Vocab vocab(tokens, specials);
    for (const std::string* s : {&specials.unk, &specials.cls, &specials.sep})
      if (!vocab.contains(*s))
        r.fail("model.vocab", detail::concat("lacks the special token ", detail::quoted(*s)));
    return Tokenizer(std::move(vocab), std::move(o));
  } catch (const ValueError& e) {
    r.fail("model", e.what());
  }
}

/// BERT's tokenizer from a model folder: its tokenizer.json when present, else its vocab.txt with
/// tokenizer_config.json's do_lower_case (default true), strip_accents (null: as do_lower_case),
/// tokenize_chinese_chars (default true) and special tokens. Throws IoError naming the file of any problem.
inline Tokenizer load_bert_tokenizer(const std::filesystem::path& folder) {
  static constexpr const char* fn = "load_bert_tokenizer";
  std::error_code ec;
  if (!std::filesystem::is_directory(folder, ec))
    throw IoError(detail::concat(fn, ": ", folder.string(), ": no such folder"));
  if (std::filesystem::exists(folder / "tokenizer.json", ec)) return load_bert_tokenizer_json(folder / "tokenizer.json");
  if (!std::filesystem::exists(folder / "vocab.txt", ec))
    throw IoError(detail::concat(fn, ": ", folder.string(), ": holds neither tokenizer.json nor vocab.txt"));
  Tokenizer::Options o;
  o.basic.rules = BertRules::rust;
  Vocab::SpecialTokens specials;
  if (std::filesystem::exists(folder / "tokenizer_config.json", ec)) {
    const detail::JsonReader r(fn, folder / "tokenizer_config.json");
    r.expect_object(r.root(), "");
    o.basic.lowercase = r.boolean_or(r.root(), "", "do_lower_case", true);
    o.basic.strip_accents = r.boolean_or(r.root(), "", "strip_accents", o.basic.lowercase);
    o.basic.split_cjk = r.boolean_or(r.root(), "", "tokenize_chinese_chars", true);
    specials.unk = detail::config_token(r, "unk_token", specials.unk);
    specials.sep = detail::config_token(r, "sep_token", specials.sep);
    specials.pad = detail::config_token(r, "pad_token", specials.pad);
    specials.cls = detail::config_token(r, "cls_token", specials.cls);
    specials.mask = detail::config_token(r, "mask_token", specials.mask);
  }
  Vocab vocab = Vocab::load(folder / "vocab.txt", specials);
  for (const std::string* s : {&specials.pad, &specials.unk, &specials.cls, &specials.sep, &specials.mask}) {
    const std::int64_t id = vocab.find(*s);
    if (id < 0) continue;
    AddedToken t;
    t.content = *s;
    t.id = id;
    o.added_tokens.push_back(std::move(t));
  }
  return Tokenizer(std::move(vocab), std::move(o));
}

/// Writes tokenizer's files into a model folder as transformers' BertTokenizer saves them: vocab.txt,
/// tokenizer_config.json (do_lower_case, strip_accents, tokenize_chinese_chars, the special tokens,
/// model_max_length) and special_tokens_map.json; each file atomically. load_bert_tokenizer reads them back.
inline void save_bert_tokenizer(const Tokenizer& tokenizer, const std::filesystem::path& folder,
                                Index model_max_length = 512) {
  std::error_code ec;
  std::filesystem::create_directories(folder, ec);
  if (ec) throw IoError(detail::concat("save_bert_tokenizer: cannot create '", folder.string(), "': ", ec.message()));
  const Vocab& v = tokenizer.vocab();
  const BasicTokenizer::Options& b = tokenizer.basic_tokenizer().options();
  const Vocab::SpecialTokens& t = v.special_tokens();
  const nlohmann::json specials = {{"unk_token", t.unk}, {"sep_token", t.sep}, {"pad_token", t.pad},
                                   {"cls_token", t.cls}, {"mask_token", t.mask}};
  nlohmann::json config = specials;
  config["tokenizer_class"] = "BertTokenizer";
  config["do_lower_case"] = b.lowercase;
  config["strip_accents"] = b.strip_accents == b.lowercase ? nlohmann::json() : nlohmann::json(b.strip_accents);
  config["tokenize_chinese_chars"] = b.split_cjk;
  config["clean_up_tokenization_spaces"] = true;
  config["model_max_length"] = model_max_length;
  v.save(folder / "vocab.txt");
  io::write_text_file_atomically(folder / "tokenizer_config.json", config.dump(2) + "\n", "save_bert_tokenizer");
  io::write_text_file_atomically(folder / "special_tokens_map.json", specials.dump(2) + "\n", "save_bert_tokenizer");
}

}  // namespace eigenformer::text
