// GPT-2's pre-tokenizer: the split of openai/gpt-2 encoder.py and of Hugging Face tokenizers' ByteLevel
// pre-tokenizer (use_regex), the first match at each position of
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// written out by hand over code points: \p{L} is categories L*, \p{N} is N*, \s is Unicode's White_Space property
// (as in Oniguruma, which tokenizers runs the pattern on); contractions are lower-case ASCII only, as in the
// pattern. Malformed UTF-8 is split as if each maximal subpart were U+FFFD (category So, so "other"), and the
// pieces keep the original bytes: every byte of the input lands in exactly one piece, in order.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "eigenformer/text/unicode.hpp"
#include "eigenformer/text/white_space.hpp"

namespace eigenformer::text {

namespace detail {

enum class Gpt2Class : unsigned char { letter, number, space, other };

constexpr std::array<Gpt2Class, 128> make_gpt2_ascii_classes() {
  std::array<Gpt2Class, 128> t{};
  for (int c = 0; c < 128; ++c) {
    Gpt2Class k = Gpt2Class::other;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
      k = Gpt2Class::letter;
    else if (c >= '0' && c <= '9')
      k = Gpt2Class::number;
    else if (c == ' ' || (c >= 0x09 && c <= 0x0D))
      k = Gpt2Class::space;
    t[static_cast<std::size_t>(c)] = k;
  }
  return t;
}
inline constexpr std::array<Gpt2Class, 128> kGpt2AsciiClasses = make_gpt2_ascii_classes();

inline Gpt2Class gpt2_class(char32_t cp) noexcept {
  if (cp < 0x80) return kGpt2AsciiClasses[cp];
  if (is_white_space(cp)) return Gpt2Class::space;
  switch (category(cp)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
      return Gpt2Class::letter;
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
      return Gpt2Class::number;
    default:
      return Gpt2Class::other;
  }
}

/// The class of the character at p (p < end), its byte length in *length. ASCII takes a table look-up.
inline Gpt2Class gpt2_class_at(const char* p, const char* end, std::size_t* length) noexcept {
  const auto b = static_cast<unsigned char>(*p);
  if (b < 0x80) {
    *length = 1;
    return kGpt2AsciiClasses[b];
  }
  const char* q = p;
  const char32_t cp = decode_utf8(q, end);
  *length = static_cast<std::size_t>(q - p);
  return gpt2_class(cp);
}

/// The length of a contraction ('s 't 're 've 'm 'll 'd) at p, which holds an apostrophe, or 0.
inline std::size_t gpt2_contraction(const char* p, const char* end) noexcept {
  if (end - p < 2) return 0;
  const char c = p[1];
  if (c == 's' || c == 't' || c == 'm' || c == 'd') return 2;
  if (end - p < 3) return 0;
  const char d = p[2];
  if ((c == 'r' && d == 'e') || (c == 'v' && d == 'e') || (c == 'l' && d == 'l')) return 3;
  return 0;
}

}  // namespace detail

/// Calls on_piece(std::string_view) for each piece of text in order (views into text). Never empty pieces; the
/// pieces concatenate to text. Linear time.
template <typename F>
void gpt2_pre_tokenize(std::string_view text, F&& on_piece) {
  using detail::Gpt2Class;
  const char* p = text.data();
  const char* const end = p + text.size();
  while (p < end) {
    const char* const start = p;
    if (*p == '\'') {
      if (const std::size_t n = detail::gpt2_contraction(p, end)) {
        on_piece(std::string_view(p, n));
        p += n;
        continue;
      }
    }
    std::size_t length = 0;
    Gpt2Class k = detail::gpt2_class_at(p, end, &length);
    if (k == Gpt2Class::space && *p == ' ' && p + 1 < end) {
      // " ?X+": a single space joins the run of letters, digits or other characters that follows it.
      std::size_t next_length = 0;
      const Gpt2Class next = detail::gpt2_class_at(p + 1, end, &next_length);
      if (next != Gpt2Class::space) {
        k = next;
        p += 1;
        length = next_length;
      }
    }
    if (k != Gpt2Class::space) {
      p += length;
      while (p < end) {
        const auto b = static_cast<unsigned char>(*p);
        if (b < 0x80) {  // the common case: stay in the table
          if (detail::kGpt2AsciiClasses[b] != k) break;
          ++p;
          continue;
        }
        std::size_t n = 0;
        if (detail::gpt2_class_at(p, end, &n) != k) break;
        p += n;
      }
      on_piece(std::string_view(start, static_cast<std::size_t>(p - start)));
      continue;
    }
    // A run of whitespace. "\s+(?!\S)" takes all of it at the end of the text, else all but its last character
    // (which then leads the next piece, as the space of " ?X+" or alone); a single whitespace character before a
    // non-space is "\s+" alone.
    const char* last = p;  // start of the run's last character
    p += length;
    while (p < end) {
      std::size_t n = 0;
      if (detail::gpt2_class_at(p, end, &n) != Gpt2Class::space) break;
      last = p;
      p += n;
    }
    if (p < end && last > start) p = last;
    on_piece(std::string_view(start, static_cast<std::size_t>(p - start)));
  }
}

/// The pieces of text as strings.
inline std::vector<std::string> gpt2_pre_tokenize(std::string_view text) {
  std::vector<std::string> out;
  gpt2_pre_tokenize(text, [&out](std::string_view piece) { out.emplace_back(piece); });
  return out;
}

}  // namespace eigenformer::text
