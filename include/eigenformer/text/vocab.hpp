// Vocab: a WordPiece vocabulary in BERT's vocab.txt format (one UTF-8 token per line, id = line number from 0,
// as google-research/bert load_vocab and HuggingFace's BertTokenizer read it), with token <-> id lookups and the
// ids of the special tokens [PAD], [UNK], [CLS], [SEP] and [MASK].
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "eigenformer/core/config.hpp"
#include "eigenformer/core/error.hpp"
#include "eigenformer/io/file.hpp"
#include "eigenformer/text/unicode.hpp"

namespace eigenformer::text {

namespace detail {

/// An open-addressing hash set of strings that numbers its keys 0, 1, 2, ... in insertion order (string
/// interning). Keys live in one buffer, so lookups by std::string_view allocate nothing and copies stay valid.
class StringTable {
 public:
  Index size() const { return static_cast<Index>(offsets_.size()) - 1; }

  /// The number of key, or -1.
  std::int32_t find(std::string_view key) const noexcept { return find(key, hash(key)); }

  std::int32_t find(std::string_view key, std::size_t h) const noexcept {
    if (slots_.empty()) return -1;
    const std::uint32_t tag = static_cast<std::uint32_t>(h >> 32);
    for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.index < 0) return -1;
      if (s.tag == tag && this->key(s.index) == key) return s.index;
    }
  }

  /// Adds key if absent; returns its number and whether it was added.
  std::pair<std::int32_t, bool> insert(std::string_view key) {
    const std::size_t h = hash(key);
    const std::int32_t found = find(key, h);
    if (found >= 0) return {found, false};
    if (size() >= std::numeric_limits<std::int32_t>::max() - 1)
      throw ValueError("StringTable::insert: more than 2^31 - 2 distinct strings");
    if (static_cast<std::size_t>(size() + 1) * 2 > slots_.size()) grow();  // load factor at most 1/2
    const auto index = static_cast<std::int32_t>(size());
    chars_.append(key.data(), key.size());
    offsets_.push_back(chars_.size());
    place(index, h);
    return {index, true};
  }

  std::string_view key(std::int32_t index) const noexcept {
    const std::size_t b = offsets_[static_cast<std::size_t>(index)];
    return std::string_view(chars_).substr(b, offsets_[static_cast<std::size_t>(index) + 1] - b);
  }

  static std::size_t hash(std::string_view key) noexcept {
    // std::hash is 64 bits here; on a 32-bit size_t the tag is 0 and only the equality test decides.
    return std::hash<std::string_view>()(key);
  }

 private:
  struct Slot {
    std::uint32_t tag = 0;    // high hash bits: most mismatches are rejected without touching the key bytes
    std::int32_t index = -1;  // -1: empty
  };

  void place(std::int32_t index, std::size_t h) {
    std::size_t i = h & mask_;
    while (slots_[i].index >= 0) i = (i + 1) & mask_;
    slots_[i] = Slot{static_cast<std::uint32_t>(h >> 32), index};
  }

  void grow() {
    const std::size_t n = slots_.empty() ? 16 : slots_.size() * 2;
    slots_.assign(n, Slot{});
    mask_ = n - 1;
    for (std::int32_t i = 0; i < static_cast<std::int32_t>(size()); ++i) place(i, hash(key(i)));
  }

  std::vector<Slot> slots_;
  std::size_t mask_ = 0;
  std::string chars_;
  std::vector<std::size_t> offsets_{0};  // key i is chars_[offsets_[i], offsets_[i + 1])
};

}  // namespace detail

/// A token <-> id table; id = position in the token list (line number of vocab.txt, from 0).
class Vocab {
 public:
  /// The strings of the special tokens (BERT's defaults); a vocabulary need not hold all of them.
  struct SpecialTokens {
    std::string pad = "[PAD]";
    std::string unk = "[UNK]";
    std::string cls = "[CLS]";
    std::string sep = "[SEP]";
    std::string mask = "[MASK]";
  };

  /// An empty vocabulary.
  Vocab() { resolve_specials(); }

  /// A vocabulary of the given tokens, ids 0, 1, ...; throws ValueError for an empty, duplicate or non-UTF-8
  /// token, or one that vocab.txt cannot hold (a newline inside, a carriage return at the end).
  explicit Vocab(const std::vector<std::string>& tokens) : Vocab(tokens, SpecialTokens()) {}
  Vocab(const std::vector<std::string>& tokens, SpecialTokens specials)
      : specials_(std::move(specials)), source_("<memory>") {
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      const std::string_view t = tokens[i];
      if (const char* problem = check_token(t))
        throw ValueError(detail::concat("Vocab: token ", i, " ", detail::quoted(t), " ", problem));
      const auto [id, added] = table_.insert(t);
      if (!added)
        throw ValueError(detail::concat("Vocab: token ", i, " ", detail::quoted(t), " duplicates token ", id));
    }
    resolve_specials();
  }

  /// Reads a vocab.txt: one token per line, LF or CRLF line ends, nothing else stripped. Throws IoError naming
  /// the file (and the line) when it cannot be read, is empty, or has an empty, duplicate or non-UTF-8 line.
  static Vocab load(const std::filesystem::path& path) { return load(path, SpecialTokens()); }
  static Vocab load(const std::filesystem::path& path, SpecialTokens specials) {
    const std::string name = path.string();
    std::ifstream in(path, std::ios::binary);
    if (!in || std::filesystem::is_directory(path)) {
      const char* reason = !std::filesystem::exists(path) ? "no such file" : "cannot open it for reading";
      throw IoError(detail::concat("Vocab::load: ", name, ": ", reason));
    }
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad()) throw IoError(detail::concat("Vocab::load: ", name, ": read error"));

    Vocab v;
    v.specials_ = std::move(specials);
    v.source_ = name;
    std::size_t pos = 0;
    std::size_t line = 0;
    while (pos < text.size()) {
      ++line;
      std::size_t eol = text.find('\n', pos);
      if (eol == std::string::npos) eol = text.size();  // a last line without a newline still counts
      std::string_view token(text.data() + pos, eol - pos);
      if (!token.empty() && token.back() == '\r') token.remove_suffix(1);  // CRLF
      if (const char* problem = check_token(token))
        throw IoError(detail::concat("Vocab::load: ", name, ":", line, ": token ", detail::quoted(token), " ",
                                     problem));
      const auto [id, added] = v.table_.insert(token);
      if (!added)
        throw IoError(detail::concat("Vocab::load: ", name, ":", line, ": duplicate token ", detail::quoted(token),
                                     " (first on line ", id + 1, ")"));
      pos = eol + 1;
    }
    if (v.size() == 0) throw IoError(detail::concat("Vocab::load: ", name, ": the file holds no token"));
    v.resolve_specials();
    return v;
  }

  /// Writes vocab.txt: each token followed by "\n", in id order, atomically (io::write_text_file_atomically: a
  /// failed or interrupted save leaves any previous file as it was). Throws IoError naming the file on failure.
  void save(const std::filesystem::path& path) const {
    std::string text;
    for (Index i = 0; i < size(); ++i) {
      text.append(table_.key(static_cast<std::int32_t>(i)));
      text.push_back('\n');
    }
    io::write_text_file_atomically(path, text, "Vocab::save");
  }

  /// The number of tokens (V).
  Index size() const { return table_.size(); }

  /// The id of token, or -1 when it is not in the vocabulary.
  std::int64_t find(std::string_view token) const noexcept { return table_.find(token); }

  bool contains(std::string_view token) const noexcept { return table_.find(token) >= 0; }

  /// The id of token; throws ValueError when it is not in the vocabulary.
  std::int64_t id(std::string_view token) const {
    const std::int32_t i = table_.find(token);
    if (i < 0)
      throw ValueError(detail::concat("Vocab::id: token ", detail::quoted(token), " is not in the vocabulary (",
                                      source_, ", ", size(), " tokens)"));
    return i;
  }

  /// The token of id; throws ValueError unless 0 <= id < size().
  std::string_view token(std::int64_t id) const {
    if (id < 0 || id >= size())
      throw ValueError(detail::concat("Vocab::token: id ", id, " is out of range for a vocabulary of ", size(),
                                      " tokens (", source_, ")"));
    return table_.key(static_cast<std::int32_t>(id));
  }

  /// All tokens in id order.
  std::vector<std::string> tokens() const {
    std::vector<std::string> out;
    out.reserve(static_cast<std::size_t>(size()));
    for (Index i = 0; i < size(); ++i) out.emplace_back(table_.key(static_cast<std::int32_t>(i)));
    return out;
  }

  /// The ids of the special tokens; each throws ValueError naming the token and the file when it is missing.
  std::int64_t pad_id() const { return special_id("pad_id", specials_.pad, pad_); }
  std::int64_t unk_id() const { return special_id("unk_id", specials_.unk, unk_); }
  std::int64_t cls_id() const { return special_id("cls_id", specials_.cls, cls_); }
  std::int64_t sep_id() const { return special_id("sep_id", specials_.sep, sep_); }
  std::int64_t mask_id() const { return special_id("mask_id", specials_.mask, mask_); }

  /// True when id is one of the special tokens present (HF's all_special_ids).
  bool is_special(std::int64_t id) const noexcept {
    return id >= 0 && (id == pad_ || id == unk_ || id == cls_ || id == sep_ || id == mask_);
  }

  const SpecialTokens& special_tokens() const { return specials_; }

  /// The file the vocabulary was read from, or "<memory>".
  const std::string& source() const { return source_; }

 private:
  // Why token cannot be a vocab.txt line, or nullptr.
  static const char* check_token(std::string_view token) {
    if (token.empty()) return "is empty";
    if (token.find('\n') != std::string_view::npos) return "holds a newline";
    if (token.back() == '\r') return "ends with a carriage return";
    if (!is_valid_utf8(token)) return "is not valid UTF-8";
    return nullptr;
  }

  void resolve_specials() {
    pad_ = table_.find(specials_.pad);
    unk_ = table_.find(specials_.unk);
    cls_ = table_.find(specials_.cls);
    sep_ = table_.find(specials_.sep);
    mask_ = table_.find(specials_.mask);
  }

  std::int64_t special_id(const char* fn, const std::string& token, std::int64_t id) const {
    if (id < 0)
      throw ValueError(detail::concat("Vocab::", fn, ": special token ", detail::quoted(token),
                                      " is not in the vocabulary (", source_, ", ", size(), " tokens)"));
    return id;
  }

  detail::StringTable table_;
  SpecialTokens specials_;
  std::string source_ = "<memory>";
  std::int64_t pad_ = -1, unk_ = -1, cls_ = -1, sep_ = -1, mask_ = -1;
};

}  // namespace eigenformer::text
