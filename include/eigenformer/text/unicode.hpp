// UTF-8 decoding with U+FFFD replacement (the Unicode "maximal subpart" practice that Python's
// bytes.decode(errors="replace") follows) and the character classes of BERT's tokenization.py (_is_whitespace,
// _is_control, _is_punctuation, _is_chinese_char, lower-casing and NFD accent stripping) on top of utf8proc.
#pragma once

#include <utf8proc.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "eigenformer/core/error.hpp"

namespace eigenformer::text {

/// U+FFFD, which replaces every malformed UTF-8 sequence.
inline constexpr char32_t kReplacementChar = 0xFFFD;

/// Decodes the code point at p (p < end) and advances p past it. A malformed sequence (a stray continuation byte,
/// an invalid lead byte, a truncated, overlong or surrogate sequence, a value above U+10FFFF) yields U+FFFD and
/// consumes its maximal subpart: the longest prefix that could still have begun a valid sequence, at least one
/// byte (Unicode 15, section 3.9, "U+FFFD Substitution of Maximal Subparts").
inline char32_t decode_utf8(const char*& p, const char* end) noexcept {
  const auto byte = [](const char* q) { return static_cast<unsigned char>(*q); };
  const unsigned char b0 = byte(p);
  if (b0 < 0x80) {
    ++p;
    return b0;
  }
  int length = 0;
  char32_t cp = 0;
  // The valid range of the second byte narrows for E0 (no overlongs), ED (no surrogates), F0 (no overlongs) and
  // F4 (nothing above U+10FFFF); every later continuation byte is 80..BF.
  unsigned char lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    length = 2;
    cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    length = 3;
    cp = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    length = 4;
    cp = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {  // 80..BF (stray continuation), C0, C1 (always overlong), F5..FF (above U+10FFFF)
    ++p;
    return kReplacementChar;
  }
  const char* q = p + 1;
  for (int i = 1; i < length; ++i, ++q) {
    if (q == end) {  // truncated at the end of the input
      p = q;
      return kReplacementChar;
    }
    const unsigned char b = byte(q);
    if (b < lo || b > hi) {  // the bad byte is not consumed: it may begin the next sequence
      p = q;
      return kReplacementChar;
    }
    cp = (cp << 6) | (b & 0x3F);
    lo = 0x80;
    hi = 0xBF;
  }
  p = q;
  return cp;
}

/// Appends the UTF-8 encoding of cp (a Unicode scalar value: at most U+10FFFF, no surrogate) to out.
inline void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    const char b[2] = {static_cast<char>(0xC0 | (cp >> 6)), static_cast<char>(0x80 | (cp & 0x3F))};
    out.append(b, 2);
  } else if (cp < 0x10000) {
    const char b[3] = {static_cast<char>(0xE0 | (cp >> 12)), static_cast<char>(0x80 | ((cp >> 6) & 0x3F)),
                       static_cast<char>(0x80 | (cp & 0x3F))};
    out.append(b, 3);
  } else {
    const char b[4] = {static_cast<char>(0xF0 | (cp >> 18)), static_cast<char>(0x80 | ((cp >> 12) & 0x3F)),
                       static_cast<char>(0x80 | ((cp >> 6) & 0x3F)), static_cast<char>(0x80 | (cp & 0x3F))};
    out.append(b, 4);
  }
}

/// The code points of s, each malformed sequence replaced by U+FFFD.
inline std::u32string decode_utf8(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  const char* p = s.data();
  const char* end = p + s.size();
  while (p < end) out.push_back(decode_utf8(p, end));
  return out;
}

/// s with each malformed sequence replaced by U+FFFD (valid input comes back unchanged).
inline std::string sanitize_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  const char* p = s.data();
  const char* end = p + s.size();
  while (p < end) {
    const char* start = p;
    const char32_t cp = decode_utf8(p, end);
    if (cp == kReplacementChar && !(p - start == 3 && static_cast<unsigned char>(*start) == 0xEF))
      append_utf8(out, cp);  // malformed (a literal U+FFFD is EF BF BD and is copied below)
    else
      out.append(start, static_cast<std::size_t>(p - start));
  }
  return out;
}

/// True when s is well-formed UTF-8.
inline bool is_valid_utf8(std::string_view s) noexcept {
  const char* p = s.data();
  const char* end = p + s.size();
  while (p < end) {
    const char* start = p;
    if (decode_utf8(p, end) == kReplacementChar && !(p - start == 3 && static_cast<unsigned char>(*start) == 0xEF))
      return false;
  }
  return true;
}

/// The number of code points of well-formed UTF-8 (counts the bytes that are not continuation bytes).
inline std::size_t count_code_points(std::string_view s) noexcept {
  std::size_t n = 0;
  for (const char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

/// The Unicode general category of cp (utf8proc's enum; unassigned and invalid values are Cn).
inline utf8proc_category_t category(char32_t cp) noexcept {
  return utf8proc_category(static_cast<utf8proc_int32_t>(cp));
}

/// BERT's _is_whitespace: space, \t, \n, \r and category Zs.
inline bool is_whitespace(char32_t cp) noexcept {
  if (cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r') return true;
  return cp >= 0x80 && category(cp) == UTF8PROC_CATEGORY_ZS;
}

/// BERT's _is_control: categories Cc and Cf, except \t, \n and \r (which count as whitespace).
inline bool is_control(char32_t cp) noexcept {
  if (cp == '\t' || cp == '\n' || cp == '\r') return false;
  if (cp < 0x80) return cp < 0x20 || cp == 0x7F;
  const utf8proc_category_t c = category(cp);
  return c == UTF8PROC_CATEGORY_CC || c == UTF8PROC_CATEGORY_CF;
}

/// BERT's _is_punctuation: every non-alphanumeric printable ASCII character (33-47, 58-64, 91-96, 123-126, so
/// also $, +, <, ^, ` and | which Unicode files under S*) and every category P* character.
inline bool is_punctuation(char32_t cp) noexcept {
  if (cp < 0x80)
    return (cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126);
  switch (category(cp)) {
    case UTF8PROC_CATEGORY_PC:
    case UTF8PROC_CATEGORY_PD:
    case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI:
    case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
      return true;
    default:
      return false;
  }
}

/// BERT's _is_chinese_char: the CJK Unified Ideographs blocks and extensions A-E plus the compatibility
/// ideographs (not Hangul, Hiragana or Katakana, whose words are space-separated).
inline bool is_cjk_ideograph(char32_t cp) noexcept {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
         (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

/// The simple lowercase mapping of cp (UnicodeData.txt), which is Python's str.lower() except for U+0130 and the
/// final sigma (both handled by BasicTokenizer).
inline char32_t to_lower(char32_t cp) noexcept {
  if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
  return static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(cp)));
}

/// The canonical combining class of cp (0 for starters).
inline int combining_class(char32_t cp) noexcept {
  if (cp < 0x300) return 0;  // nothing below U+0300 combines
  return utf8proc_get_property(static_cast<utf8proc_int32_t>(cp))->combining_class;
}

/// Writes the canonical decomposition (NFD, without the reordering of combining marks) of cp to out, which holds
/// 8 code points (canonical decompositions are at most 4 long); returns the count.
inline int decompose_canonical(char32_t cp, char32_t* out) noexcept {
  if (cp < 0xC0) {  // Latin-1 below U+00C0 has no decomposition
    out[0] = cp;
    return 1;
  }
  utf8proc_int32_t buf[8];
  const utf8proc_ssize_t n = utf8proc_decompose_char(static_cast<utf8proc_int32_t>(cp), buf, 8, UTF8PROC_DECOMPOSE,
                                                     nullptr);
  if (n <= 0 || n > 8) {  // cannot happen for a scalar value; keep the character rather than lose it
    out[0] = cp;
    return 1;
  }
  for (utf8proc_ssize_t i = 0; i < n; ++i) out[i] = static_cast<char32_t>(buf[i]);
  return static_cast<int>(n);
}

/// Category Mn (nonspacing mark): what BERT's _run_strip_accents drops after NFD.
inline bool is_nonspacing_mark(char32_t cp) noexcept {
  return cp >= 0x300 && category(cp) == UTF8PROC_CATEGORY_MN;
}

namespace detail {

using ::eigenformer::detail::concat;

/// token in double quotes for error messages, with control bytes and quotes escaped and long tokens cut.
inline std::string quoted(std::string_view token) {
  static const char* hex = "0123456789abcdef";
  std::string out = "\"";
  const std::size_t shown = token.size() > 64 ? 64 : token.size();
  for (std::size_t i = 0; i < shown; ++i) {
    const auto c = static_cast<unsigned char>(token[i]);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c < 0x20 || c == 0x7F) {
      out += "\\x";
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  if (shown < token.size()) out += "...";
  out.push_back('"');
  return out;
}

}  // namespace detail
}  // namespace eigenformer::text
