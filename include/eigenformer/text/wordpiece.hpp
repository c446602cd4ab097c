// WordPiece: BERT's greedy longest-match-first subword tokenizer (google-research/bert WordpieceTokenizer,
// HuggingFace's WordpieceTokenizer; Wu et al. 2016): "unaffable" -> ["un", "##aff", "##able"].
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "eigenformer/core/config.hpp"
#include "eigenformer/core/error.hpp"
#include "eigenformer/text/unicode.hpp"
#include "eigenformer/text/vocab.hpp"

namespace eigenformer::text {

/// Splits words into the vocabulary's pieces; a word that cannot be matched completely, or that is longer than
/// max_input_chars_per_word code points, becomes the single [UNK].
class WordPiece {
 public:
  struct Options {
    Index max_input_chars_per_word = 100;    // HuggingFace's default (tokenization.py has 200)
    std::string continuation_prefix = "##";  // marks a piece that continues a word
  };

  /// Throws ValueError when the vocabulary lacks its unknown token or an option is out of range.
  explicit WordPiece(Vocab vocab) : WordPiece(std::move(vocab), Options()) {}
  WordPiece(Vocab vocab, Options options) : vocab_(std::move(vocab)), options_(std::move(options)) {
    if (options_.max_input_chars_per_word < 1)
      throw ValueError(detail::concat("WordPiece: max_input_chars_per_word is ", options_.max_input_chars_per_word,
                                      ", expected at least 1"));
    if (options_.continuation_prefix.empty())
      throw ValueError("WordPiece: continuation_prefix is empty, expected a marker such as \"##\"");
    unk_ = vocab_.unk_id();
    const std::string_view prefix = options_.continuation_prefix;
    for (Index id = 0; id < vocab_.size(); ++id) {
      const std::string_view t = vocab_.token(id);
      max_start_bytes_ = std::max(max_start_bytes_, t.size());
      if (t.size() > prefix.size() && t.compare(0, prefix.size(), prefix) == 0) {
        const std::string_view rest = t.substr(prefix.size());
        if (continuations_.insert(rest).second) continuation_ids_.push_back(static_cast<std::int32_t>(id));
        max_continuation_bytes_ = std::max(max_continuation_bytes_, rest.size());
      }
    }
  }

  const Vocab& vocab() const { return vocab_; }
  const Options& options() const { return options_; }

  /// Appends the ids of one word (a basic token: no whitespace) to ids.
  void encode_word(std::string_view word, std::vector<std::int64_t>& ids) const {
    const std::size_t n = word.size();
    if (n == 0) return;
    const auto max_chars = static_cast<std::size_t>(options_.max_input_chars_per_word);
    if (n > max_chars && count_code_points(word) > max_chars) {  // bytes >= code points: most words skip the count
      ids.push_back(unk_);
      return;
    }
    const std::size_t mark = ids.size();
    std::size_t start = 0;
    while (start < n) {
      // Longest match first: no token is longer than the longest in the table, so start there.
      std::size_t end = std::min(n, start + (start == 0 ? max_start_bytes_ : max_continuation_bytes_));
      while (end > start && end < n && is_continuation_byte(word[end])) --end;
      std::int32_t found = -1;
      while (end > start) {
        const std::string_view piece = word.substr(start, end - start);
        if (start == 0) {
          found = static_cast<std::int32_t>(vocab_.find(piece));
        } else {
          const std::int32_t k = continuations_.find(piece);
          found = k < 0 ? -1 : continuation_ids_[static_cast<std::size_t>(k)];
        }
        if (found >= 0) break;
        do --end;
        while (end > start && is_continuation_byte(word[end]));
      }
      if (found < 0) {  // the whole word becomes [UNK], as in BERT
        ids.resize(mark);
        ids.push_back(unk_);
        return;
      }
      ids.push_back(found);
      start = end;
    }
  }

  /// The pieces of whitespace-separated words (BERT's WordpieceTokenizer.tokenize; splits on ASCII whitespace
  /// only, as its input is the basic tokenizer's output).
  std::vector<std::string> tokenize(std::string_view text) const {
    std::vector<std::string> out;
    std::vector<std::int64_t> ids;
    std::size_t i = 0;
    while (i < text.size()) {
      while (i < text.size() && is_ascii_space(text[i])) ++i;
      std::size_t j = i;
      while (j < text.size() && !is_ascii_space(text[j])) ++j;
      if (j > i) {
        ids.clear();
        encode_word(text.substr(i, j - i), ids);
        for (const std::int64_t id : ids) out.emplace_back(vocab_.token(id));
      }
      i = j;
    }
    return out;
  }

 private:
  static bool is_continuation_byte(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }
  static bool is_ascii_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
  }

  Vocab vocab_;
  Options options_;
  std::int64_t unk_ = -1;
  detail::StringTable continuations_;           // the tokens that start with the prefix, prefix removed
  std::vector<std::int32_t> continuation_ids_;  // vocabulary id of each entry of continuations_
  std::size_t max_start_bytes_ = 0;
  std::size_t max_continuation_bytes_ = 0;
};

}  // namespace eigenformer::text
