// ByteLevelBpe: GPT-2's tokenizer (Radford et al. 2019; openai/gpt-2 encoder.py), as Hugging Face tokenizers runs
// it from tokenizer.json (model BPE, ByteLevel pre-tokenizer and decoder): added tokens such as <|endoftext|> are
// found first, the rest is split by GPT-2's pattern (gpt2_pre_tokenizer.hpp), each piece's bytes start as the
// tokens of single bytes (byte_level.hpp), and adjacent tokens merge, the pair of lowest merge rank first and the
// leftmost of equal pairs first, until no pair of the word is in merges.txt.
//
// Bytes are bytes: any byte string encodes, valid UTF-8 or not (malformed sequences are split as U+FFFD would
// be, and keep their bytes), and decode gives back exactly the bytes that were encoded, for any input, as long as
// the vocabulary has the 256 single-byte tokens (GPT-2's and every BpeTrainer vocabulary have). tokenizers takes
// Unicode strings only: feed it and this class the same valid UTF-8 and they agree.
//
// Immutable after construction: one instance may encode from several threads at once. Each thread caches the ids
// of the words it met in memory of its own (bpe_cache.hpp): no lock, no sharing.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "eigenformer/core/config.hpp"
#include "eigenformer/core/error.hpp"
#include "eigenformer/io/file.hpp"
#include "eigenformer/text/added_tokens.hpp"
#include "eigenformer/text/bpe_cache.hpp"
#include "eigenformer/text/byte_level.hpp"
#include "eigenformer/text/gpt2_pre_tokenizer.hpp"
#include "eigenformer/text/json_reader.hpp"
#include "eigenformer/text/unicode.hpp"
#include "eigenformer/text/vocab.hpp"

namespace eigenformer::text {

namespace detail {

/// Open-addressing map from a pair of token ids to the pair's merge rank and the id of the merged token.
class MergeTable {
 public:
  struct Value {
    std::int32_t rank;
    std::int32_t id;
  };

  void reserve(std::size_t n) {
    std::size_t size = 16;
    while (size < 2 * n) size *= 2;  // load factor at most 1/2
    slots_.assign(size, Slot{kEmpty, {0, 0}});
    mask_ = size - 1;
  }

  /// Sets the value of (a, b); a later merge of the same pair replaces an earlier one, as in tokenizers.
  void insert_or_assign(std::int32_t a, std::int32_t b, Value v) {
    const std::uint64_t k = key(a, b);
    for (std::size_t i = slot_of(k);; i = (i + 1) & mask_) {
      if (slots_[i].key == kEmpty || slots_[i].key == k) {
        slots_[i] = Slot{k, v};
        return;
      }
    }
  }

  const Value* find(std::int32_t a, std::int32_t b) const noexcept {
    const std::uint64_t k = key(a, b);
    for (std::size_t i = slot_of(k);; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.key == k) return &s.value;
      if (s.key == kEmpty) return nullptr;
    }
  }

 private:
  static constexpr std::uint64_t kEmpty = ~std::uint64_t(0);  // ids are >= 0: no real key has all bits set
  struct Slot {
    std::uint64_t key;
    Value value;
  };

  static std::uint64_t key(std::int32_t a, std::int32_t b) noexcept {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) | static_cast<std::uint32_t>(b);
  }
  // The slot is the hash's low bits, and both ids must reach them: fold the high half (the first id) in,
  // multiply, fold again.
  std::size_t slot_of(std::uint64_t k) const noexcept {
    k ^= k >> 32;
    k *= 0x9E3779B97F4A7C15ull;
    return static_cast<std::size_t>(k ^ (k >> 29)) & mask_;
  }

  std::vector<Slot> slots_{Slot{kEmpty, {0, 0}}};
  std::size_t mask_ = 0;
};

}  // namespace detail

/// The options of tokenizer.json's ByteLevel pre-tokenizer and BPE model that ByteLevelBpe supports.
struct ByteLevelBpeOptions {
  bool add_prefix_space = false;  // a space before each stretch of text that lacks one (" Hello" == "Hello")
  bool use_regex = true;          // split with GPT-2's pattern; false: each stretch of text is one word
  bool ignore_merges = false;     // a word that is a token as a whole becomes that token, merges unused
  std::string unk_token;          // for bytes without a token; empty: such bytes are dropped
  bool fuse_unk = false;          // consecutive unknown bytes become one unk_token
};

/// GPT-2's byte-level BPE tokenizer.
class ByteLevelBpe {
 public:
  using Options = ByteLevelBpeOptions;

  /// A merge: the two tokens (in byte-level form) whose concatenation is the merged token.
  using Merge = std::pair<std::string, std::string>;

  /// tokens: the vocabulary in id order, in byte-level form ("Ġthe"); merges in rank order, each part and the
  /// concatenation a token; added_tokens: ids either of the vocabulary token with the same content or the next
  /// ids after it, in order. Throws ValueError naming the offending token or merge.
  ByteLevelBpe(const std::vector<std::string>& tokens, const std::vector<Merge>& merges,
               std::vector<AddedToken> added_tokens = {}, Options options = {})
      : options_(std::move(options)) {
    build(tokens, merges, std::move(added_tokens), [](const std::string& what, std::size_t) -> void {
      throw ValueError(detail::concat("ByteLevelBpe: ", what));
    });
  }

  /// Reads GPT-2's vocab.json (token -> id, ids 0..V-1) and merges.txt (an optional "#version" line, then one
  /// merge "a b" per line). Throws IoError naming the file, and the line or JSON path, of any problem.
  static ByteLevelBpe from_files(const std::filesystem::path& vocab_json, const std::filesystem::path& merges_txt,
                                 std::vector<AddedToken> added_tokens = {}, Options options = {}) {
    const detail::JsonReader vocab("ByteLevelBpe::from_files", vocab_json);
    return from_vocab_and_merges(vocab, merges_txt, std::move(added_tokens), std::move(options));
  }

  /// Reads a Hugging Face tokenizer.json with model BPE, a ByteLevel pre-tokenizer, no normalizer, a ByteLevel (or
  /// no) decoder and post-processor. Throws IoError naming the file and the JSON path of anything
  /// missing, mistyped or unsupported (another model type, dropout, a subword prefix or suffix, byte fallback).
  static ByteLevelBpe from_tokenizer_json(const std::filesystem::path& path) {
    const detail::JsonReader r("ByteLevelBpe::from_tokenizer_json", path);
    const nlohmann::json& root = r.root();
    r.expect_object(root, "");
    Options o;

    const nlohmann::json& model = r.require(root, "", "model");
    const std::string& type = r.type_of(model, "model");
    if (type != "BPE") r.fail("model.type", detail::concat("is \"", type, "\", expected \"BPE\""));
    if (r.optional(model, "model", "dropout")) r.fail("model.dropout", "BPE dropout is not supported, expected null");
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
      if (const nlohmann::json* j = r.optional(model, "model", key))
        if (!r.string(*j, detail::concat("model.", key)).empty())
          r.fail(detail::concat("model.", key), "is not supported by byte-level BPE, expected null or \"\"");
    if (r.boolean_or(model, "model", "byte_fallback", false))
      r.fail("model.byte_fallback", "is not supported, expected false");
    if (const nlohmann::json* j = r.optional(model, "model", "unk_token")) o.unk_token = r.string(*j, "model.unk_token");
    o.fuse_unk = r.boolean_or(model, "model", "fuse_unk", false);
    o.ignore_merges = r.boolean_or(model, "model", "ignore_merges", false);

    if (r.optional(root, "", "normalizer"))
      r.fail("normalizer", "is not supported by ByteLevelBpe, expected null");
    const nlohmann::json* pre = r.optional(root, "", "pre_tokenizer");
    if (!pre) r.fail("pre_tokenizer", "is null, expected a ByteLevel pre-tokenizer");
    const std::string& pre_type = r.type_of(*pre, "pre_tokenizer");
    if (pre_type != "ByteLevel")
      r.fail("pre_tokenizer.type", detail::concat("is \"", pre_type, "\", expected \"ByteLevel\""));
    o.add_prefix_space = r.boolean_or(*pre, "pre_tokenizer", "add_prefix_space", true);  // tokenizers' default
    o.use_regex = r.boolean_or(*pre, "pre_tokenizer", "use_regex", true);
    for (const char* key : {"decoder", "post_processor"})
      if (const nlohmann::json* j = r.optional(root, "", key)) {
        const std::string& t = r.type_of(*j, key);
        if (t != "ByteLevel")
          r.fail(detail::concat(key, ".type"), detail::concat("is \"", t, "\", expected \"ByteLevel\" or null"));
      }

    std::vector<std::string> tokens = detail::read_vocabulary(r, r.require(model, "model", "vocab"), "model.vocab");
    std::vector<Merge> merges = read_json_merges(r, r.require(model, "model", "merges"), "model.merges");
    std::vector<AddedToken> added = detail::read_added_tokens(r);
    return ByteLevelBpe(tokens, merges, std::move(added), std::move(o),
                        [&](const std::string& what, std::size_t merge) -> void {
                          if (merge < merges.size()) r.fail(r.element_path("model.merges", merge), what);
                          r.fail("", what);
                        });
  }

  /// A model folder: tokenizer.json when present, else vocab.json and merges.txt, with the special tokens of
  /// tokenizer_config.json (bos/eos/unk/pad_token; <|endoftext|> when it names none) and its add_prefix_space.
  static ByteLevelBpe from_pretrained(const std::filesystem::path& folder) {
    static constexpr const char* fn = "ByteLevelBpe::from_pretrained";
    std::error_code ec;
    if (!std::filesystem::is_directory(folder, ec))
      throw IoError(detail::concat(fn, ": ", folder.string(), ": no such folder"));
    if (std::filesystem::exists(folder / "tokenizer.json", ec)) return from_tokenizer_json(folder / "tokenizer.json");
    Options o;
    std::vector<std::string> specials;
    if (std::filesystem::exists(folder / "tokenizer_config.json", ec)) {
      const detail::JsonReader r(fn, folder / "tokenizer_config.json");
      r.expect_object(r.root(), "");
      o.add_prefix_space = r.boolean_or(r.root(), "", "add_prefix_space", false);
      for (const char* key : {"bos_token", "eos_token", "unk_token", "pad_token"})
        if (const nlohmann::json* j = r.optional(r.root(), "", key)) {
          const std::string path = key;
          const std::string& s = j->is_object() ? r.string(r.require(*j, path, "content"), path + ".content")
                                                : r.string(*j, path);
          if (std::find(specials.begin(), specials.end(), s) == specials.end()) specials.push_back(s);
        }
    }
    if (specials.empty()) specials.push_back("<|endoftext|>");
    const detail::JsonReader vocab(fn, folder / "vocab.json");
    vocab.expect_object(vocab.root(), "");
    std::vector<AddedToken> added;
    for (const std::string& s : specials) {
      const auto it = vocab.root().find(s);
      if (it != vocab.root().end() && it->is_number_integer()) {
        AddedToken t;
        t.content = s;
        t.id = it->get<std::int64_t>();
        added.push_back(std::move(t));
      }
    }
    return from_vocab_and_merges(vocab, folder / "merges.txt", std::move(added), std::move(o));
  }

  /// Writes vocab.json and merges.txt into folder (created if needed), each atomically. Added tokens outside the
  /// vocabulary are not part of those files: save_tokenizer_json keeps them.
  void save(const std::filesystem::path& folder) const {
    static constexpr const char* fn = "ByteLevelBpe::save";
    create_folder(fn, folder);
    std::string vocab = "{";
    for (std::int32_t id = 0; id < model_size_; ++id) {
      if (id > 0) vocab += ",";
      vocab += nlohmann::json(std::string(tokens_.key(id))).dump();
      vocab += ":";
      vocab += std::to_string(id);
    }
    vocab += "}\n";
    std::string merges = "#version: 0.2\n";
    for (std::size_t r = 0; r < merge_pairs_.size(); ++r) {
      const std::string_view a = tokens_.key(merge_pairs_[r].first);
      const std::string_view b = tokens_.key(merge_pairs_[r].second);
      if (a.find_first_of(" \n\r") != std::string_view::npos || b.find_first_of(" \n\r") != std::string_view::npos)
        throw ValueError(detail::concat(fn, ": merge ", r, " (", detail::quoted(a), ", ", detail::quoted(b),
                                        ") holds a space or a line break, which merges.txt cannot hold"));
      merges.append(a).append(" ").append(b).append("\n");
    }
    io::write_text_file_atomically(folder / "vocab.json", vocab, fn);
    io::write_text_file_atomically(folder / "merges.txt", merges, fn);
  }

  /// Writes a Hugging Face tokenizer.json (atomically) that tokenizers and from_tokenizer_json read back.
  void save_tokenizer_json(const std::filesystem::path& path) const {
    nlohmann::ordered_json root;
    root["version"] = "1.0";
    root["truncation"] = nullptr;
    root["padding"] = nullptr;
    nlohmann::ordered_json added = nlohmann::ordered_json::array();
    for (const AddedToken& t : added_.tokens())
      added.push_back({{"id", t.id}, {"content", t.content}, {"single_word", t.single_word}, {"lstrip", t.lstrip},
                       {"rstrip", t.rstrip}, {"normalized", t.normalized}, {"special", t.special}});
    root["added_tokens"] = std::move(added);
    root["normalizer"] = nullptr;
    const nlohmann::ordered_json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", options_.add_prefix_space},
                                               {"trim_offsets", true}, {"use_regex", options_.use_regex}};
    root["pre_tokenizer"] = byte_level;
    root["post_processor"] = byte_level;
    root["decoder"] = byte_level;
    nlohmann::ordered_json model;
    model["type"] = "BPE";
    model["dropout"] = nullptr;
    model["unk_token"] = options_.unk_token.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(options_.unk_token);
    model["continuing_subword_prefix"] = nullptr;
    model["end_of_word_suffix"] = nullptr;
    model["fuse_unk"] = options_.fuse_unk;
    model["byte_fallback"] = false;
    model["ignore_merges"] = options_.ignore_merges;
    // In id order, as tokenizers writes it. An ordered_json object is a vector of pairs whose operator[] searches
    // it from the start; the table's tokens are distinct, so each one is appended without that search.
    nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
    auto& entries = vocab.get_ref<nlohmann::ordered_json::object_t&>();
    entries.reserve(static_cast<std::size_t>(model_size_));
    for (std::int32_t id = 0; id < model_size_; ++id) entries.emplace_back(std::string(tokens_.key(id)), id);
    model["vocab"] = std::move(vocab);
    nlohmann::ordered_json merges = nlohmann::ordered_json::array();
    for (const auto& [a, b] : merge_pairs_)
      merges.push_back({std::string(tokens_.key(a)), std::string(tokens_.key(b))});
    model["merges"] = std::move(merges);
    root["model"] = std::move(model);
    io::write_text_file_atomically(path, root.dump() + "\n", "ByteLevelBpe::save_tokenizer_json");
  }

  /// The ids of text (HF's encode(text).ids; GPT-2 adds no special tokens).
  std::vector<std::int64_t> encode(std::string_view text) const {
    std::vector<std::int64_t> ids;
    ids.reserve(text.size() / 3 + 4);
    encode(text, ids);
    return ids;
  }

  /// Appends the ids of text to ids.
  void encode(std::string_view text, std::vector<std::int64_t>& ids) const {
    detail::BpeThreadState& state = detail::bpe_thread_state();
    detail::BpeWordCache& cache = state.cache_for(instance_);
    added_.split(
        text, [&](std::string_view segment) { encode_segment(segment, ids, state, cache); },
        [&](const AddedToken& t) { ids.push_back(t.id); });
  }

  /// The token strings (byte-level form, as vocab.json spells them) of text.
  std::vector<std::string> tokenize(std::string_view text) const {
    std::vector<std::string> out;
    for (const std::int64_t id : encode(text)) out.emplace_back(tokens_.key(static_cast<std::int32_t>(id)));
    return out;
  }

  /// The bytes of ids: each token's bytes, added tokens as their content. Throws ValueError for an id out of
  /// range. decode(encode(text)) == text for any bytes.
  std::string decode(const std::vector<std::int64_t>& ids, bool skip_special_tokens = false) const {
    std::string out;
    for (const std::int64_t id : ids) {
      if (id < 0 || id >= size())
        throw ValueError(detail::concat("ByteLevelBpe::decode: id ", id, " is out of range for a vocabulary of ",
                                        size(), " tokens"));
      const auto i = static_cast<std::size_t>(id);
      if (skip_special_tokens && special_[i]) continue;
      out.append(bytes_, bytes_offsets_[i], bytes_offsets_[i + 1] - bytes_offsets_[i]);
    }
    return out;
  }

  /// The number of ids: the model's vocabulary plus the added tokens outside it (HF's get_vocab_size(true)).
  Index size() const noexcept { return tokens_.size(); }

  /// The id of a token (byte-level form, or an added token's content), or -1.
  std::int64_t find(std::string_view token) const noexcept { return tokens_.find(token); }

  /// The id of a token; throws ValueError when it is not in the vocabulary.
  std::int64_t id(std::string_view token) const {
    const std::int64_t i = find(token);
    if (i < 0)
      throw ValueError(detail::concat("ByteLevelBpe::id: token ", detail::quoted(token),
                                      " is not in the vocabulary (", size(), " tokens)"));
    return i;
  }

  /// The token string of id (byte-level form); throws ValueError unless 0 <= id < size().
  std::string_view token(std::int64_t id) const {
    if (id < 0 || id >= size())
      throw ValueError(detail::concat("ByteLevelBpe::token: id ", id, " is out of range for a vocabulary of ",
                                      size(), " tokens"));
    return tokens_.key(static_cast<std::int32_t>(id));
  }

  /// The merges in rank order, as token strings.
  std::vector<Merge> merges() const {
    std::vector<Merge> out;
    out.reserve(merge_pairs_.size());
    for (const auto& [a, b] : merge_pairs_) out.emplace_back(tokens_.key(a), tokens_.key(b));
    return out;
  }

  const std::vector<AddedToken>& added_tokens() const noexcept { return added_.tokens(); }
  const Options& options() const noexcept { return options_; }

  /// True for the id of a special added token (skipped by decode with skip_special_tokens).
  bool is_special(std::int64_t id) const noexcept {
    return id >= 0 && id < size() && special_[static_cast<std::size_t>(id)];
  }

 private:
  using Fail = std::function<void(const std::string& what, std::size_t merge)>;  // throws; merge = index or npos

  ByteLevelBpe(const std::vector<std::string>& tokens, const std::vector<Merge>& merges,
               std::vector<AddedToken> added_tokens, Options options, const Fail& fail)
      : options_(std::move(options)) {
    build(tokens, merges, std::move(added_tokens), fail);
  }

  static ByteLevelBpe from_vocab_and_merges(const detail::JsonReader& vocab, const std::filesystem::path& merges_txt,
                                            std::vector<AddedToken> added_tokens, Options options) {
    const char* fn = vocab.function();
    std::vector<std::string> tokens = detail::read_vocabulary(vocab, vocab.root(), "");
    std::vector<std::size_t> lines;
    std::vector<Merge> merges = read_merges_txt(fn, merges_txt, lines);
    const std::string merges_file = merges_txt.string();
    return ByteLevelBpe(tokens, merges, std::move(added_tokens), std::move(options),
                        [&](const std::string& what, std::size_t merge) -> void {
                          if (merge < lines.size())
                            throw IoError(detail::concat(fn, ": ", merges_file, ":", lines[merge], ": ", what));
                          throw IoError(detail::concat(fn, ": ", vocab.file(), ": ", what));
                        });
  }

  static constexpr std::size_t npos = static_cast<std::size_t>(-1);

  // fail(what, merge index or npos) throws.
  template <typename F>
  void build(const std::vector<std::string>& tokens, const std::vector<Merge>& merges,
             std::vector<AddedToken> added_tokens, F&& fail) {
    if (tokens.size() >= static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max() / 2))
      fail_at(fail, detail::concat("the vocabulary has ", tokens.size(), " tokens, expected fewer than 2^30"));
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      if (tokens[i].empty()) fail_at(fail, detail::concat("token ", i, " is empty"));
      const auto [id, added] = tokens_.insert(tokens[i]);
      if (!added)
        fail_at(fail, detail::concat("token ", i, " ", detail::quoted(tokens[i]), " duplicates token ", id));
      add_bytes(tokens[i]);
    }
    model_size_ = static_cast<std::int32_t>(tokens.size());
    for (int b = 0; b < 256; ++b) {
      std::string s;
      append_utf8(s, byte_level_char(static_cast<unsigned char>(b)));
      byte_ids_[static_cast<std::size_t>(b)] = tokens_.find(s);
    }
    if (!options_.unk_token.empty()) {
      unk_ = tokens_.find(options_.unk_token);
      if (unk_ < 0) fail_at(fail, detail::concat("unk_token ", detail::quoted(options_.unk_token), " is not in the vocabulary"));
    }

    merge_table_.reserve(merges.size());
    merge_pairs_.reserve(merges.size());
    std::string joined;
    for (std::size_t r = 0; r < merges.size(); ++r) {
      const auto& [a, b] = merges[r];
      const std::int32_t ia = tokens_.find(a);
      const std::int32_t ib = tokens_.find(b);
      joined.assign(a).append(b);
      const std::int32_t ij = tokens_.find(joined);
      if (ia < 0 || ib < 0 || ij < 0) {
        const std::string& missing = ia < 0 ? a : ib < 0 ? b : joined;
        fail(detail::concat("merge ", r, " (", detail::quoted(a), " ", detail::quoted(b), "): token ",
                            detail::quoted(missing), " is not in the vocabulary"),
             r);
      }
      merge_table_.insert_or_assign(ia, ib, {static_cast<std::int32_t>(r), ij});
      merge_pairs_.emplace_back(ia, ib);
    }

    special_.assign(tokens.size(), false);
    for (std::size_t i = 0; i < added_tokens.size(); ++i) {
      AddedToken& t = added_tokens[i];
      if (t.content.empty()) fail_at(fail, detail::concat("added token ", i, " is empty"));
      const std::int32_t existing = tokens_.find(t.content);
      if (t.id == existing) {
        // a token of the vocabulary: its bytes become the content itself, as the decoder treats added tokens
      } else if (existing < 0 && t.id == size()) {
        tokens_.insert(t.content);
        add_bytes(t.content);
        special_.push_back(false);
      } else {
        fail_at(fail, detail::concat("added token ", i, " ", detail::quoted(t.content), " has id ", t.id, ", expected ",
                            existing >= 0 ? detail::concat(existing, " (its id in the vocabulary)")
                                          : detail::concat(size(), " (the next free id)")));
      }
      special_[static_cast<std::size_t>(t.id)] = t.special;
      set_bytes(static_cast<std::size_t>(t.id), t.content);
    }
    added_ = AddedTokenMatcher(std::move(added_tokens));

    if (options_.ignore_merges) {
      for (std::int32_t id = 0; id < model_size_; ++id) {
        const auto b = static_cast<std::size_t>(id);
        const auto [k, added] = whole_words_.insert(
            std::string_view(bytes_).substr(bytes_offsets_[b], bytes_offsets_[b + 1] - bytes_offsets_[b]));
        if (added) whole_word_ids_.push_back(id);
      }
    }
    instance_ = detail::next_bpe_instance();
  }

  template <typename F>
  static void fail_at(F& fail, const std::string& what) {
    fail(what, npos);
  }

  // The bytes a token decodes to: its byte-level characters mapped back, or its own UTF-8 bytes when it holds a
  // character outside the alphabet (as tokenizers' ByteLevel decoder does).
  void add_bytes(std::string_view token) {
    if (!append_from_byte_level(bytes_, token)) bytes_.append(token);
    bytes_offsets_.push_back(bytes_.size());
  }

  void set_bytes(std::size_t id, std::string_view content) {
    const std::size_t b = bytes_offsets_[id], e = bytes_offsets_[id + 1];
    if (std::string_view(bytes_).substr(b, e - b) == content) return;
    std::string rebuilt = bytes_.substr(0, b);
    rebuilt.append(content);
    rebuilt.append(bytes_, e, std::string::npos);
    const std::ptrdiff_t shift = static_cast<std::ptrdiff_t>(content.size()) - static_cast<std::ptrdiff_t>(e - b);
    for (std::size_t k = id + 1; k < bytes_offsets_.size(); ++k)
      bytes_offsets_[k] = static_cast<std::size_t>(static_cast<std::ptrdiff_t>(bytes_offsets_[k]) + shift);
    bytes_ = std::move(rebuilt);
  }

  void encode_segment(std::string_view segment, std::vector<std::int64_t>& ids, detail::BpeThreadState& state,
                      detail::BpeWordCache& cache) const {
    std::string prefixed;
    if (options_.add_prefix_space && segment.front() != ' ') {
      prefixed.reserve(segment.size() + 1);
      prefixed.push_back(' ');
      prefixed.append(segment);
      segment = prefixed;
    }
    if (options_.use_regex)
      gpt2_pre_tokenize(segment, [&](std::string_view word) { encode_word(word, ids, state, cache); });
    else
      encode_word(segment, ids, state, cache);
  }

  void encode_word(std::string_view word, std::vector<std::int64_t>& ids, detail::BpeThreadState& state,
                   detail::BpeWordCache& cache) const {
    if (options_.ignore_merges) {
      const std::int32_t k = whole_words_.find(word);
      if (k >= 0) {
        ids.push_back(whole_word_ids_[static_cast<std::size_t>(k)]);
        return;
      }
    }
    const bool cacheable = word.size() <= detail::BpeWordCache::kMaxWordBytes;
    const std::uint64_t h = cacheable ? detail::BpeWordCache::hash(word) : 0;
    if (cacheable && cache.find(word, h, ids)) return;
    std::vector<std::int32_t>& out = state.word_ids;
    out.clear();
    merge_word(word, state, out);
    ids.insert(ids.end(), out.begin(), out.end());
    if (cacheable) cache.insert(word, h, out.data(), out.size());
  }

  // tokenizers' Word::merge_all: a heap of candidate merges, lowest rank first and leftmost among equals; entries
  // made stale by an earlier merge are recognised and skipped when they surface.
  void merge_word(std::string_view word, detail::BpeThreadState& state, std::vector<std::int32_t>& out) const {
    std::vector<detail::BpeSymbol>& s = state.symbols;
    s.clear();
    for (const char c : word) {
      std::int32_t id = byte_ids_[static_cast<unsigned char>(c)];
      if (id < 0) {
        if (unk_ < 0) continue;  // no token and no unk_token: the byte is dropped, as in tokenizers
        if (options_.fuse_unk && !s.empty() && s.back().id == unk_) continue;
        id = unk_;
      }
      const auto n = static_cast<std::int32_t>(s.size());
      s.push_back({id, n - 1, n + 1});
    }
    const auto n = static_cast<std::int32_t>(s.size());
    if (n > 1) {
      std::vector<detail::BpeCandidate>& heap = state.heap;
      heap.clear();
      for (std::int32_t i = 0; i + 1 < n; ++i)
        if (const auto* m = merge_table_.find(s[i].id, s[i + 1].id)) heap.push_back({m->rank, i, m->id});
      std::make_heap(heap.begin(), heap.end());
      while (!heap.empty()) {
        std::pop_heap(heap.begin(), heap.end());
        const detail::BpeCandidate top = heap.back();
        heap.pop_back();
        detail::BpeSymbol& left = s[static_cast<std::size_t>(top.pos)];
        if (left.id < 0 || left.next >= n) continue;  // merged away, or the last symbol
        const detail::BpeSymbol right = s[static_cast<std::size_t>(left.next)];
        const auto* m = merge_table_.find(left.id, right.id);
        if (!m || m->id != top.new_id) continue;  // stale: a neighbour changed since this entry was made
        s[static_cast<std::size_t>(left.next)].id = -1;
        left.id = top.new_id;
        left.next = right.next;
        if (right.next < n) s[static_cast<std::size_t>(right.next)].prev = top.pos;
        if (left.prev >= 0) {
          if (const auto* p = merge_table_.find(s[static_cast<std::size_t>(left.prev)].id, left.id)) {
            heap.push_back({p->rank, left.prev, p->id});
            std::push_heap(heap.begin(), heap.end());
          }
        }
        if (left.next < n) {
          if (const auto* q = merge_table_.find(left.id, s[static_cast<std::size_t>(left.next)].id)) {
            heap.push_back({q->rank, top.pos, q->id});
            std::push_heap(heap.begin(), heap.end());
          }
        }
      }
    }
    for (const detail::BpeSymbol& sym : s)
      if (sym.id >= 0) out.push_back(sym.id);
  }

  static void create_folder(const char* fn, const std::filesystem::path& folder) {
    std::error_code ec;
    std::filesystem::create_directories(folder, ec);
    if (ec || !std::filesystem::is_directory(folder))
      throw IoError(detail::concat(fn, ": cannot create the folder ", folder.string(), ": ",
                                   ec ? ec.message() : std::string("a file has that name")));
  }

  // merges.txt: lines "a b"; "#version" lines skipped, a final line break optional; lines[i] = line of merge i.
  static std::vector<Merge> read_merges_txt(const char* fn, const std::filesystem::path& path,
                                            std::vector<std::size_t>& lines) {
    const std::string name = path.string();
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) throw IoError(detail::concat(fn, ": ", name, ": no such file"));
    if (std::filesystem::is_directory(path, ec))
      throw IoError(detail::concat(fn, ": ", name, ": is a folder, expected merges.txt"));
    const std::string text = io::read_text_file(path, fn);
    std::vector<Merge> merges;
    std::size_t pos = 0, line = 0;
    while (pos < text.size()) {
      ++line;
      std::size_t eol = text.find('\n', pos);
      if (eol == std::string::npos) eol = text.size();
      std::string_view l(text.data() + pos, eol - pos);
      pos = eol + 1;
      if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
      if (l.compare(0, 8, "#version") == 0) continue;
      const std::size_t space = l.find(' ');
      if (space == std::string_view::npos || space == 0 || space + 1 == l.size() ||
          l.find(' ', space + 1) != std::string_view::npos)
        throw IoError(detail::concat(fn, ": ", name, ":", line, ": ", detail::quoted(l),
                                     " is not a merge, expected two tokens separated by one space"));
      merges.emplace_back(std::string(l.substr(0, space)), std::string(l.substr(space + 1)));
      lines.push_back(line);
    }
    return merges;
  }

  // tokenizer.json's merges: strings "a b" (format of tokenizers < 0.20) or pairs ["a", "b"].
  static std::vector<Merge> read_json_merges(const detail::JsonReader& r, const nlohmann::json& j,
                                             const std::string& path) {
    r.expect_array(j, path);
    std::vector<Merge> merges;
    merges.reserve(j.size());
    for (std::size_t i = 0; i < j.size(); ++i) {
      const nlohmann::json& m = j[i];
      const std::string at = r.element_path(path, i);
      if (m.is_string()) {
        const std::string& s = m.get_ref<const std::string&>();
        const std::size_t space = s.find(' ');
        if (space == std::string::npos || space == 0 || space + 1 == s.size() ||
            s.find(' ', space + 1) != std::string::npos)
          r.fail(at, detail::concat(detail::quoted(s), " is not a merge, expected two tokens separated by one space"));
        merges.emplace_back(s.substr(0, space), s.substr(space + 1));
      } else if (m.is_array() && m.size() == 2) {
        merges.emplace_back(r.string(m[0], r.element_path(at, 0)), r.string(m[1], r.element_path(at, 1)));
      } else {
        r.fail(at, detail::concat("expected a string \"a b\" or a pair of strings, got ", r.type_name(m),
                                  m.is_array() ? detail::concat(" of ", m.size()) : std::string()));
      }
    }
    return merges;
  }

 private:
  Options options_;
  detail::StringTable tokens_;           // token string -> id; the model's V tokens, then added tokens beyond them
  std::int32_t model_size_ = 0;          // V
  std::string bytes_;                    // what each id decodes to: bytes_[bytes_offsets_[id], bytes_offsets_[id + 1])
  std::vector<std::size_t> bytes_offsets_{0};
  std::array<std::int32_t, 256> byte_ids_{};  // the token of each single byte, or -1
  std::int32_t unk_ = -1;
  detail::MergeTable merge_table_;
  std::vector<std::pair<std::int32_t, std::int32_t>> merge_pairs_;  // in rank order
  AddedTokenMatcher added_;
  std::vector<bool> special_;               // per id
  detail::StringTable whole_words_;         // ignore_merges: bytes of each token -> index into whole_word_ids_
  std::vector<std::int32_t> whole_word_ids_;
  std::uint64_t instance_ = 0;              // which per-thread cache is this tokenizer's
};

}  // namespace eigenformer::text
