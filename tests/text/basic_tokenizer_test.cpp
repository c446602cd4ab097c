#include "eigenformer/text/basic_tokenizer.hpp"

#include <string>
#include <vector>

#include "support/test_support.hpp"

using namespace eigenformer::text;

namespace basic_tokenizer_test {

using Tokens = std::vector<std::string>;

namespace {

BasicTokenizer make(bool lowercase, bool strip_accents, bool split_cjk = true) {
  BasicTokenizer::Options o;
  o.lowercase = lowercase;
  o.strip_accents = strip_accents;
  o.split_cjk = split_cjk;
  return BasicTokenizer(o);
}

}  // namespace

// tokenization_test.py: test_basic_tokenizer_lower, test_basic_tokenizer_no_lower, test_chinese.
TEST(BasicTokenizer, BertTestCases) {
  const BasicTokenizer lower;
  EXPECT_EQ(lower.tokenize(" \tHeLLo!how  \n Are yoU?  "), (Tokens{"hello", "!", "how", "are", "you", "?"}));
  EXPECT_EQ(lower.tokenize("H\u00E9llo"), (Tokens{"hello"}));
  EXPECT_EQ(lower.tokenize("ah\u535A\u63A8zz"), (Tokens{"ah", "\u535A", "\u63A8", "zz"}));

  const BasicTokenizer cased = make(false, false);
  EXPECT_EQ(cased.tokenize(" \tHeLLo!how  \n Are yoU?  "), (Tokens{"HeLLo", "!", "how", "Are", "yoU", "?"}));
  EXPECT_EQ(cased.tokenize("H\u00E9llo"), (Tokens{"H\u00E9llo"}));
}

TEST(BasicTokenizer, EmptyAndBlankTextsGiveNoTokens) {
  const BasicTokenizer t;
  EXPECT_TRUE(t.tokenize("").empty());
  EXPECT_TRUE(t.tokenize(" \t\r\n \u3000\u00A0").empty());
  EXPECT_TRUE(t.tokenize(std::string("\0\x01\x7F", 3)).empty());
}

TEST(BasicTokenizer, PunctuationIsSplitOffAsciiAndUnicode) {
  const BasicTokenizer t;
  EXPECT_EQ(t.tokenize("price: $5.00"), (Tokens{"price", ":", "$", "5", ".", "00"}));
  EXPECT_EQ(t.tokenize("e-mail@example.com"), (Tokens{"e", "-", "mail", "@", "example", ".", "com"}));
  EXPECT_EQ(t.tokenize("\u00BFQu\u00E9 tal?"), (Tokens{"\u00BF", "que", "tal", "?"}));
  EXPECT_EQ(t.tokenize("\u00AB hi \u00BB"), (Tokens{"\u00AB", "hi", "\u00BB"}));
  EXPECT_EQ(t.tokenize("a\u2014b"), (Tokens{"a", "\u2014", "b"}));  // em dash is Pd
  EXPECT_EQ(t.tokenize("5\u20AC"), (Tokens{"5\u20AC"}));             // the euro sign is Sc: part of the word
  EXPECT_EQ(t.tokenize("!!"), (Tokens{"!", "!"}));
}

// Controls and format characters are removed before splitting, so they join what surrounds them (BERT's
// _clean_text); whitespace of every kind separates.
TEST(BasicTokenizer, CleaningDropsControlsAndMapsWhitespace) {
  const BasicTokenizer t;
  EXPECT_EQ(t.tokenize(std::string("ab\x01" "cd\0ef", 8)), (Tokens{"abcdef"}));
  EXPECT_EQ(t.tokenize("a\u200Bb\u00ADc\uFEFFd"), (Tokens{"abcd"}));  // ZWSP, soft hyphen, BOM are Cf
  EXPECT_EQ(t.tokenize("a\u0085b"), (Tokens{"ab"}));                  // NEL is Cc, not whitespace, for BERT
  EXPECT_EQ(t.tokenize("x\u2028y\u00A0z\u3000w"), (Tokens{"x", "y", "z", "w"}));
  EXPECT_EQ(t.tokenize("tab\there\r\nline"), (Tokens{"tab", "here", "line"}));
  EXPECT_EQ(t.tokenize("a\xEF\xBF\xBD" "b"), (Tokens{"ab"}));  // a literal U+FFFD is dropped too
}

// Reference outputs from BERT's BasicTokenizer (Python 3.11, unicodedata 14.0).
TEST(BasicTokenizer, LowerCasingAndAccentStrippingMatchPython) {
  const BasicTokenizer t;
  EXPECT_EQ(t.tokenize("\u00C5ngstr\u00F6m \u00C9COLE na\u00EFve caf\u00E9"),
            (Tokens{"angstrom", "ecole", "naive", "cafe"}));
  EXPECT_EQ(t.tokenize("e\u0301t\u00E9\u0300"), (Tokens{"ete"}));
  EXPECT_EQ(t.tokenize("\u0130stanbul"), (Tokens{"istanbul"}));
  // Python's final sigma: ς at the end of a word, σ elsewhere; '.' is case-ignorable, '!' is not.
  EXPECT_EQ(t.tokenize("\u039F\u0394\u039F\u03A3 \u0391\u03A3.\u0392 \u0391\u03A3! \u03A3"),
            (Tokens{"\u03BF\u03B4\u03BF\u03C2", "\u03B1\u03C3", ".", "\u03B2", "\u03B1\u03C2", "!", "\u03C3"}));
  // NFD can produce punctuation: U+037E (Greek question mark) is ';'.
  EXPECT_EQ(t.tokenize("a\u037Eb"), (Tokens{"a", ";", "b"}));
  // Hangul syllables decompose into jamo (BERT's known behaviour for lower-cased models).
  EXPECT_EQ(t.tokenize("\uD55C\uAD6D\uC5B4"),
            (Tokens{"\u1112\u1161\u11AB\u1100\u116E\u11A8\u110B\u1165"}));
  EXPECT_EQ(t.tokenize("\uFF46\uFF55\uFF4C\uFF4C\uFF01"), (Tokens{"\uFF46\uFF55\uFF4C\uFF4C", "\uFF01"}));
  EXPECT_EQ(t.tokenize("\U0001F600smile"), (Tokens{"\U0001F600smile"}));
  // Compatibility ideograph U+F900 is isolated, then decomposed to U+8C48.
  EXPECT_EQ(t.tokenize("\uF900\u4E2D"), (Tokens{"\u8C48", "\u4E2D"}));
  // Spacing marks that survive stripping are put in canonical order (U+1D165 has class 216, U+1D16D 226).
  EXPECT_EQ(t.tokenize("a\U0001D16D\u0301\U0001D165b"), (Tokens{"a\U0001D165\U0001D16Db"}));
}

TEST(BasicTokenizer, LowerCaseWithoutStrippingAccents) {
  const BasicTokenizer t = make(true, false);
  EXPECT_EQ(t.tokenize("\u00C5ngstr\u00F6m \u00C9COLE"), (Tokens{"\u00E5ngstr\u00F6m", "\u00E9cole"}));
  EXPECT_EQ(t.tokenize("\u0130stanbul"), (Tokens{"i\u0307stanbul"}));  // Python: "\u0130".lower() is 2 chars
  EXPECT_EQ(t.tokenize("e\u0301t\u00E9\u0300"), (Tokens{"e\u0301t\u00E9\u0300"}));
}

TEST(BasicTokenizer, CjkSplittingCanBeTurnedOff) {
  EXPECT_EQ(make(true, true, false).tokenize("ah\u535A\u63A8zz"), (Tokens{"ah\u535A\u63A8zz"}));
  EXPECT_EQ(make(true, true, true).tokenize("\u4E2D\u6587 text"), (Tokens{"\u4E2D", "\u6587", "text"}));
}

// Malformed bytes decode to U+FFFD, which cleaning removes: they neither crash nor separate words.
TEST(BasicTokenizer, InvalidUtf8IsDropped) {
  const BasicTokenizer t;
  EXPECT_EQ(t.tokenize("ab\xFF" "cd"), (Tokens{"abcd"}));
  EXPECT_EQ(t.tokenize("hello \xE2\x82 world"), (Tokens{"hello", "world"}));      // truncated sequence
  EXPECT_EQ(t.tokenize("abc\xE2"), (Tokens{"abc"}));                              // truncated at the end
  EXPECT_EQ(t.tokenize("\xC0\xAF" "etc\xC0\xAF" "passwd"), (Tokens{"etcpasswd"}));  // overlong '/'
  EXPECT_EQ(t.tokenize("x\xED\xA0\x80y"), (Tokens{"xy"}));                        // surrogate
  EXPECT_EQ(t.tokenize("\xF0\x9F\x98"), Tokens{});
  EXPECT_EQ(t.tokenize("caf\xC3" "\xC3\xA9"), (Tokens{"cafe"}));
  // Final-sigma lookahead over malformed bytes.
  EXPECT_EQ(t.tokenize("\u0391\u03A3\xFF"), (Tokens{"\u03B1\u03C2"}));
}

TEST(BasicTokenizer, CallbackCanStopThePass) {
  const BasicTokenizer t;
  Tokens seen;
  t.tokenize("one two, three four", [&seen](std::string_view w) {
    seen.emplace_back(w);
    return seen.size() < 3;
  });
  EXPECT_EQ(seen, (Tokens{"one", "two", ","}));
}

TEST(BasicTokenizer, LongWordWithoutSpaces) {
  const BasicTokenizer t;
  const std::string word(1 << 20, 'A');
  const Tokens out = t.tokenize(word);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], std::string(1 << 20, 'a'));
}

TEST(BasicTokenizer, IsolatedCharacters) {
  EXPECT_TRUE(make(true, true).is_isolated(U','));
  EXPECT_TRUE(make(true, true).is_isolated(0x4E2D));
  EXPECT_FALSE(make(true, true, false).is_isolated(0x4E2D));
  EXPECT_FALSE(make(true, true).is_isolated(U'a'));
  EXPECT_FALSE(make(true, true).is_isolated(0xE9));
}

// Hugging Face tokenizers' BertNormalizer (BertRules::rust) where it differs from the Python code.
TEST(BasicTokenizer, RustRules) {
  BasicTokenizer::Options o;
  o.rules = BertRules::rust;
  const BasicTokenizer rust(o);
  const BasicTokenizer python;
  EXPECT_EQ(python.tokenize("\u039F\u0394\u039F\u03A3"), (Tokens{"\u03BF\u03B4\u03BF\u03C2"}));  // final sigma
  EXPECT_EQ(rust.tokenize("\u039F\u0394\u039F\u03A3"), (Tokens{"\u03BF\u03B4\u03BF\u03C3"}));
  EXPECT_EQ(python.tokenize("a\uE000b"), (Tokens{"a\uE000b"}));  // private use: kept by Python, dropped by Rust
  EXPECT_EQ(rust.tokenize("a\uE000b"), (Tokens{"ab"}));
  EXPECT_EQ(python.tokenize("x\U0002B820y"), (Tokens{"x", "\U0002B820", "y"}));
  EXPECT_EQ(rust.tokenize("x\U0002B820y"), (Tokens{"x\U0002B820y"}));  // tokenizers' CJK table skips it
  EXPECT_EQ(rust.tokenize("x\U0002B920y"), (Tokens{"x", "\U0002B920", "y"}));
  EXPECT_EQ(rust.tokenize("\u0130stanbul"), (Tokens{"istanbul"}));
  EXPECT_EQ(rust.tokenize("a\u0378b"), (Tokens{"a\u0378b"}));  // unassigned: kept by both
}

TEST(BasicTokenizer, WithoutCleanTextControlsStayAndWhiteSpaceSplits) {
  BasicTokenizer::Options o;
  o.rules = BertRules::rust;
  o.clean_text = false;
  o.lowercase = false;
  o.strip_accents = false;
  const BasicTokenizer t(o);
  EXPECT_EQ(t.tokenize("a\x01" "b\x0B" "c\u0085" "d\u200B" "e"),
            (Tokens{"a\x01" "b", "c", "d\u200B" "e"}));
  EXPECT_EQ(t.tokenize(std::string("x\0y", 3)), (Tokens{std::string("x\0y", 3)}));
  EXPECT_EQ(t.tokenize("a\xFF"), (Tokens{"a\uFFFD"}));
}

}  // namespace basic_tokenizer_test
