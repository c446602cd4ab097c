// Added tokens: strings such as [CLS] or <|endoftext|> that are found in the raw text before any other step and
// become one id each, whatever the model would make of them (Hugging Face tokenizers' AddedVocabulary and the
// "added_tokens" of tokenizer.json). Matching is leftmost-longest and non-overlapping, as tokenizers' Aho-Corasick
// automaton does, with its single_word, lstrip and rstrip options.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "eigenformer/core/error.hpp"
#include "eigenformer/text/unicode.hpp"
#include "eigenformer/text/white_space.hpp"

namespace eigenformer::text {

/// One added token (the fields of tokenizer.json's "added_tokens" entries).
struct AddedToken {
  std::string content;
  std::int64_t id = -1;
  bool special = true;       // skipped by decode(..., skip_special_tokens = true)
  bool single_word = false;  // matches only when no word character touches it on either side
  bool lstrip = false;       // the match takes the whitespace before it
  bool rstrip = false;       // the match takes the whitespace after it
  // tokenizers matches normalized tokens in the normalized text; here every token matches the raw text, which is
  // the same for tokenizers without a normalizer (GPT-2) and for tokens the normalizer leaves as they are.
  bool normalized = false;
};

/// Finds added tokens in text.
class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;

  /// Throws ValueError for an empty content or a negative id.
  explicit AddedTokenMatcher(std::vector<AddedToken> tokens) : tokens_(std::move(tokens)) {
    for (std::size_t i = 0; i < tokens_.size(); ++i) {
      if (tokens_[i].content.empty())
        throw ValueError(detail::concat("AddedTokenMatcher: token ", i, " (id ", tokens_[i].id, ") is empty"));
      if (tokens_[i].id < 0)
        throw ValueError(detail::concat("AddedTokenMatcher: token ", i, " ", detail::quoted(tokens_[i].content),
                                        " has id ", tokens_[i].id, ", expected >= 0"));
      first_bytes_[static_cast<unsigned char>(tokens_[i].content[0])] = true;
      by_length_.push_back(i);
    }
    // Longest first, so that the first candidate that matches at a position is the longest there.
    std::stable_sort(by_length_.begin(), by_length_.end(), [this](std::size_t a, std::size_t b) {
      return tokens_[a].content.size() > tokens_[b].content.size();
    });
  }

  bool empty() const noexcept { return tokens_.empty(); }
  const std::vector<AddedToken>& tokens() const noexcept { return tokens_; }

  /// Calls on_text(std::string_view) for each non-empty stretch of text between matches and
  /// on_token(const AddedToken&) for each match, in text order.
  template <typename OnText, typename OnToken>
  void split(std::string_view text, OnText&& on_text, OnToken&& on_token) const {
    if (tokens_.empty()) {
      if (!text.empty()) on_text(text);
      return;
    }
    std::size_t emitted = 0;  // text[0, emitted) has been passed on
    std::size_t i = 0;
    while (i < text.size()) {
      if (!first_bytes_[static_cast<unsigned char>(text[i])]) {
        ++i;
        continue;
      }
      const AddedToken* found = nullptr;
      for (const std::size_t k : by_length_) {
        const std::string& c = tokens_[k].content;
        if (c[0] == text[i] && text.compare(i, c.size(), c) == 0) {
          found = &tokens_[k];
          break;
        }
      }
      if (!found) {
        ++i;
        continue;
      }
      std::size_t start = i;
      std::size_t stop = i + found->content.size();
      i = stop;  // the search goes on after the match, kept or not (as tokenizers' find_iter)
      if (found->single_word && (ends_with_word_char(text.substr(0, start)) ||
                                 starts_with_word_char(text.substr(stop))))
        continue;
      if (found->lstrip) start = std::max(emitted, start - trailing_space(text.substr(0, start)));
      if (found->rstrip) stop += leading_space(text.substr(stop));
      if (start > emitted) on_text(text.substr(emitted, start - emitted));
      on_token(*found);
      emitted = stop;
      i = std::max(i, stop);
    }
    if (emitted < text.size()) on_text(text.substr(emitted));
  }

 private:
  // Word characters as the regex crate's \w: letters, marks, digits and connector punctuation.
  static bool is_word_char(char32_t cp) {
    if (cp < 0x80) return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || (cp >= '0' && cp <= '9') || cp == '_';
    switch (category(cp)) {
      case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT: case UTF8PROC_CATEGORY_LM:
      case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME:
      case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO: case UTF8PROC_CATEGORY_PC:
        return true;
      default:
        return false;
    }
  }

  // The start of the last character of s (non-empty, UTF-8).
  static std::size_t last_char_start(std::string_view s) {
    std::size_t i = s.size() - 1;
    while (i > 0 && s.size() - i < 4 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
    return i;
  }

  static bool ends_with_word_char(std::string_view s) {
    if (s.empty()) return false;
    const char* p = s.data() + last_char_start(s);
    return is_word_char(decode_utf8(p, s.data() + s.size()));
  }

  static bool starts_with_word_char(std::string_view s) {
    if (s.empty()) return false;
    const char* p = s.data();
    return is_word_char(decode_utf8(p, s.data() + s.size()));
  }

  // Bytes of whitespace (White_Space) at the end of s, and at its start.
  static std::size_t trailing_space(std::string_view s) {
    std::size_t n = s.size();
    while (n > 0) {
      const std::size_t c = last_char_start(s.substr(0, n));
      const char* p = s.data() + c;
      if (!is_white_space(decode_utf8(p, s.data() + n))) break;
      n = c;
    }
    return s.size() - n;
  }

  static std::size_t leading_space(std::string_view s) {
    const char* p = s.data();
    const char* const end = p + s.size();
    while (p < end) {
      const char* q = p;
      if (!is_white_space(decode_utf8(q, end))) break;
      p = q;
    }
    return static_cast<std::size_t>(p - s.data());
  }

  std::vector<AddedToken> tokens_;
  std::vector<std::size_t> by_length_;  // indices into tokens_, longest content first
  std::array<bool, 256> first_bytes_{};
};

}  // namespace eigenformer::text
