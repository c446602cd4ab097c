// BasicTokenizer: BERT's basic tokenization (google-research/bert tokenization.py BasicTokenizer, HuggingFace's
// BertTokenizer BasicTokenizer): clean the text, isolate CJK ideographs, lower-case and strip accents, split on
// whitespace and punctuation.
//
// The rules are applied in one streaming pass over the bytes, with the output of BERT's sequence of string
// passes: malformed UTF-8 becomes U+FFFD (Python's errors="replace"), which is dropped like U+0000 and the Cc/Cf
// controls; whitespace (\t \n \r, Zs, and U+2028/U+2029, on which Python's str.split() also splits) ends a word;
// each CJK ideograph and each punctuation character (after lower-casing and NFD) is a token of its own.
// Lower-casing is Python's str.lower(): utf8proc's simple mapping plus the two rules that need more, U+0130 ->
// "i\u0307" and the final sigma (Σ -> ς after a cased letter and not before one, skipping case-ignorable
// characters, with Unicode's Cased and Case_Ignorable properties spelled out below). Accent
// stripping is NFD followed by dropping category Mn, with NFD's canonical reordering applied to the combining
// marks that survive (the spacing marks with a nonzero combining class).
// Printable ASCII letters and digits take a fast path that never calls into utf8proc.
//
// BertRules::rust follows Hugging Face tokenizers' BertNormalizer and BertPreTokenizer (tokenizer.json) where they
// differ from the Python code: Σ always lower-cases to σ (Rust lower-cases character by character), private-use
// characters (Co) are dropped with the controls, and U+2B820..U+2B91F (the start of CJK Extension E) are not
// isolated as ideographs (tokenizers' table starts that block at U+2B920). Accents are stripped before
// lower-casing there, which gives the same text. With clean_text off (tokenizers' option) nothing is dropped and
// words split at White_Space characters and punctuation. Character classes come from utf8proc's Unicode tables;
// characters assigned in recent Unicode versions may be classed otherwise by the reference implementations,
// whose tables are older (tokenizers 0.23 keeps U+0891, a Cf character since Unicode 14, as a letter).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "eigenformer/text/unicode.hpp"
#include "eigenformer/text/white_space.hpp"

namespace eigenformer::text {

/// Whose rules BasicTokenizer follows where google-research/bert's and transformers' Python BasicTokenizer and
/// Hugging Face tokenizers' Rust BertNormalizer differ (see the top of this header).
enum class BertRules {
  python,  // google-research/bert tokenization.py, transformers' BertTokenizer
  rust,    // tokenizers' BertNormalizer + BertPreTokenizer: tokenizer.json, transformers' BertTokenizerFast
};

namespace detail {

enum AsciiClass : unsigned char { kAsciiDrop, kAsciiSpace, kAsciiPunct, kAsciiLetter, kAsciiDigit };

/// What BERT does with each ASCII byte: controls other than \t \n \r are dropped (U+0000 too).
constexpr std::array<unsigned char, 128> make_ascii_classes() {
  std::array<unsigned char, 128> t{};
  for (int c = 0; c < 128; ++c) {
    unsigned char k = kAsciiDrop;
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
      k = kAsciiSpace;
    else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
      k = kAsciiLetter;
    else if (c >= '0' && c <= '9')
      k = kAsciiDigit;
    else if (c >= 33 && c <= 126)
      k = kAsciiPunct;
    t[static_cast<std::size_t>(c)] = k;
  }
  return t;
}
inline constexpr std::array<unsigned char, 128> kAsciiClasses = make_ascii_classes();

/// Unicode's Cased property for a character that is not case-ignorable: Lu, Ll, Lt and the Other_Lowercase /
/// Other_Uppercase characters outside them (ª, º, Roman numerals, circled and squared Latin letters).
inline bool is_cased(char32_t cp, utf8proc_category_t c) noexcept {
  if (c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LL || c == UTF8PROC_CATEGORY_LT) return true;
  return cp == 0xAA || cp == 0xBA || (cp >= 0x2160 && cp <= 0x217F) || (cp >= 0x24B6 && cp <= 0x24E9) ||
         (cp >= 0x1F130 && cp <= 0x1F149) || (cp >= 0x1F150 && cp <= 0x1F169) || (cp >= 0x1F170 && cp <= 0x1F189);
}

/// Unicode's Case_Ignorable: Mn, Me, Cf, Lm, Sk and the Word_Break MidLetter, MidNumLet and Single_Quote
/// characters.
inline bool is_case_ignorable(char32_t cp, utf8proc_category_t c) noexcept {
  switch (c) {
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_SK:
      return true;
    default:
      break;
  }
  switch (cp) {
    case 0x27: case 0x2E: case 0x3A: case 0xB7: case 0x387: case 0x55F: case 0x5F4: case 0x2018: case 0x2019:
    case 0x2024: case 0x2027: case 0xFE13: case 0xFE52: case 0xFE55: case 0xFF07: case 0xFF0E: case 0xFF1A:
      return true;
    default:
      return false;
  }
}

inline bool is_ascii_case_ignorable(unsigned char c) noexcept {
  return c == '\'' || c == '.' || c == ':' || c == '^' || c == '`';  // ^ and ` are Sk
}

/// Whitespace after cleaning (U+2028/U+2029 are not Zs, but Python's str.split() splits on them).
inline bool is_separator(char32_t cp, utf8proc_category_t c) noexcept {
  return c == UTF8PROC_CATEGORY_ZS || cp == 0x2028 || cp == 0x2029;
}

}  // namespace detail

/// BERT's basic tokenizer: text in, words and punctuation out (UTF-8, never empty).
class BasicTokenizer {
 public:
  struct Options {
    bool lowercase = true;      // BERT's do_lower_case
    bool strip_accents = true;  // NFD, then drop Mn (BERT strips exactly when it lower-cases; HF allows either)
    bool split_cjk = true;      // HF's tokenize_chinese_chars: each CJK ideograph is a token
    bool clean_text = true;     // drop U+0000, U+FFFD and controls; false: keep them (tokenizers' clean_text)
    BertRules rules = BertRules::python;
  };

  BasicTokenizer() = default;
  explicit BasicTokenizer(const Options& options) : options_(options) {}

  const Options& options() const { return options_; }

  /// Calls on_token(std::string_view) for each token of text in order; the view is valid during the call only.
  /// When on_token returns bool, false stops the pass (the rest of the text is not read).
  template <typename F>
  void tokenize(std::string_view text, F&& on_token) const {
    Run<F> run(options_, on_token);
    const char* p = text.data();
    const char* const end = p + text.size();
    while (p < end && !run.stopped) {
      const auto c = static_cast<unsigned char>(*p);
      if (c >= 0x80) {
        const char32_t cp = decode_utf8(p, end);
        run.add_code_point(cp, p, end);
        continue;
      }
      switch (detail::kAsciiClasses[c]) {
        case detail::kAsciiLetter:
        case detail::kAsciiDigit: {
          const char* q = p + 1;
          while (q < end && static_cast<unsigned char>(*q) < 0x80 &&
                 detail::kAsciiClasses[static_cast<unsigned char>(*q)] >= detail::kAsciiLetter)
            ++q;
          run.append_ascii_run(p, q);
          p = q;
          break;
        }
        case detail::kAsciiSpace:
          run.end_word();
          run.prev_cased = false;
          ++p;
          break;
        case detail::kAsciiPunct:
          run.end_word();
          run.emit(std::string_view(p, 1));
          if (!detail::is_ascii_case_ignorable(c)) run.prev_cased = false;
          ++p;
          break;
        default:  // a control: removed, it does not separate words (unless kept by clean_text off)
          if (!options_.clean_text) run.add_code_point(c, p + 1, end);
          ++p;
          break;
      }
    }
    run.end_word();
  }

  /// The tokens of text (BERT's BasicTokenizer.tokenize).
  std::vector<std::string> tokenize(std::string_view text) const {
    std::vector<std::string> out;
    tokenize(text, [&out](std::string_view t) { out.emplace_back(t); });
    return out;
  }

  /// True for a character that always forms a token of its own (punctuation, and CJK ideographs when split):
  /// such a character never continues a word, so a vocabulary needs no "##" form of it.
  bool is_isolated(char32_t cp) const noexcept { return is_punctuation(cp) || is_cjk(options_, cp); }

  /// A CJK ideograph that split_cjk isolates, under options' rules.
  static bool is_cjk(const Options& o, char32_t cp) noexcept {
    if (!o.split_cjk || !is_cjk_ideograph(cp)) return false;
    return o.rules == BertRules::python || cp < 0x2B820 || cp > 0x2B91F;
  }

 private:
  // The state of one pass: the word being built, the combining marks waiting for canonical reordering, and the
  // final-sigma context (was the last character that is not case-ignorable cased?).
  template <typename F>
  struct Run {
    Run(const Options& o, F& f) : options(o), on_token(f) { word.reserve(64); }

    void end_word() {
      flush_marks();
      if (!word.empty()) {
        emit(std::string_view(word));
        word.clear();
      }
    }

    void emit(std::string_view token) {
      if (stopped) return;
      if constexpr (std::is_same_v<std::invoke_result_t<F&, std::string_view>, bool>)
        stopped = !on_token(token);
      else
        on_token(token);
    }

    void append_ascii_run(const char* p, const char* q) {
      flush_marks();
      if (options.lowercase) {
        for (const char* r = p; r < q; ++r) {
          const char c = *r;
          word.push_back((c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c);
        }
      } else {
        word.append(p, static_cast<std::size_t>(q - p));
      }
      prev_cased = detail::kAsciiClasses[static_cast<unsigned char>(q[-1])] == detail::kAsciiLetter;
    }

    // cp was decoded from the text; next..end is the rest of the text (the final sigma looks ahead).
    void add_code_point(char32_t cp, const char* next, const char* end) {
      const utf8proc_category_t cat = category(cp);
      if (options.clean_text) {
        if (cp == 0 || cp == kReplacementChar) return;
        if (cat == UTF8PROC_CATEGORY_CC || cat == UTF8PROC_CATEGORY_CF) return;
        if (cat == UTF8PROC_CATEGORY_CO && options.rules == BertRules::rust) return;
      }
      if (options.clean_text ? detail::is_separator(cp, cat) : is_white_space(cp)) {
        end_word();
        prev_cased = false;
        return;
      }
      if (is_cjk(options, cp)) {  // BERT puts spaces around it before anything else
        end_word();
        add_normalized(cp);
        end_word();
        prev_cased = false;
        return;
      }
      char32_t lower = cp;
      if (options.lowercase) {
        if (cp == 0x3A3 && options.rules == BertRules::python) {
          lower = is_final_sigma(next, end) ? 0x3C2 : 0x3C3;
        } else if (cp == 0x130 && !options.strip_accents) {  // Python: "\u0130".lower() == "i\u0307"
          add_normalized('i');
          add_normalized(0x307);
          prev_cased = true;
          return;
        } else {
          lower = to_lower(cp);
        }
      }
      add_normalized(lower);
      if (detail::is_cased(cp, cat))
        prev_cased = true;
      else if (!detail::is_case_ignorable(cp, cat))
        prev_cased = false;
    }

    // Adds the (lower-cased) character c, decomposed and stripped of Mn when stripping accents.
    void add_normalized(char32_t c) {
      if (!options.strip_accents) {
        add_char(c);
        return;
      }
      char32_t parts[8];
      const int n = decompose_canonical(c, parts);
      for (int i = 0; i < n; ++i) {
        const char32_t d = parts[i];
        const int ccc = combining_class(d);
        if (ccc == 0) {
          flush_marks();
          if (!is_nonspacing_mark(d)) add_char(d);
        } else if (!is_nonspacing_mark(d)) {
          marks.emplace_back(ccc, d);  // a spacing combining mark: kept, reordered with its neighbours
        }
      }
    }

    void add_char(char32_t c) {
      if (is_punctuation(c)) {
        end_word();
        std::string one;
        append_utf8(one, c);
        emit(std::string_view(one));
      } else {
        append_utf8(word, c);
      }
    }

    // NFD's canonical ordering: a run of combining marks sorted stably by combining class.
    void flush_marks() {
      if (marks.empty()) return;
      std::stable_sort(marks.begin(), marks.end(),
                       [](const auto& a, const auto& b) { return a.first < b.first; });
      for (const auto& m : marks) append_utf8(word, m.second);
      marks.clear();
    }

    // Python's Final_Sigma: a cased letter (skipping case-ignorables) before, none after, within the word.
    bool is_final_sigma(const char* p, const char* end) const {
      if (!prev_cased) return false;
      while (p < end) {
        const auto c = static_cast<unsigned char>(*p);
        if (c < 0x80) {
          const unsigned char k = detail::kAsciiClasses[c];
          if (k == detail::kAsciiLetter) return false;
          if (k == detail::kAsciiDrop || detail::is_ascii_case_ignorable(c)) {
            ++p;
            continue;
          }
          return true;  // whitespace, digit or punctuation
        }
        const char32_t cp = decode_utf8(p, end);
        if (cp == kReplacementChar) continue;  // removed by cleaning
        const utf8proc_category_t cat = category(cp);
        if (cat == UTF8PROC_CATEGORY_CC) continue;
        if (detail::is_separator(cp, cat) || is_cjk(options, cp)) return true;
        if (detail::is_case_ignorable(cp, cat)) continue;
        return !detail::is_cased(cp, cat);
      }
      return true;
    }

    const Options& options;
    F& on_token;
    std::string word;
    std::vector<std::pair<int, char32_t>> marks;
    bool prev_cased = false;
    bool stopped = false;
  };

  Options options_;
};

}  // namespace eigenformer::text
