#include "eigenformer/text/unicode.hpp"

#include <string>
#include <vector>

#include "support/test_support.hpp"

using namespace eigenformer::text;

namespace unicode_test {

namespace {

// Replacement counts from Python 3.11: len(b.decode("utf-8", errors="replace")).
struct Malformed {
  std::string bytes;
  std::u32string expected;
};

const char32_t R = kReplacementChar;

}  // namespace

TEST(Utf8Decode, ValidSequencesOfEveryLength) {
  EXPECT_EQ(decode_utf8("a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"), (std::u32string{U'a', 0xE9, 0x20AC, 0x1F600}));
  EXPECT_EQ(decode_utf8(std::string("\0z", 2)), (std::u32string{0, U'z'}));
  EXPECT_EQ(decode_utf8("\xF4\x8F\xBF\xBF"), std::u32string{0x10FFFF});
  EXPECT_EQ(decode_utf8(""), std::u32string{});
}

TEST(Utf8Decode, MalformedSequencesBecomeReplacementCharsLikePython) {
  const std::vector<Malformed> cases = {
      {"a\xE2\x82", {U'a', R}},                   // truncated at the end: one U+FFFD for the maximal subpart
      {"\xE2\x82" "a", {R, U'a'}},                // truncated before an ASCII byte, which is kept
      {"\xF0\x9F\x98", {R}},                      // truncated 4-byte sequence
      {"\xE2\x82\xAC\xE2", {0x20AC, R}},          // valid, then a lone lead byte at the end
      {"\xC0\xAF", {R, R}},                       // overlong '/': C0 can never start a sequence
      {"\xE0\x80\xAF", {R, R, R}},                // overlong 3-byte form
      {"\xF0\x80\x80\xAF", {R, R, R, R}},         // overlong 4-byte form
      {"\xED\xA0\x80", {R, R, R}},                // UTF-16 surrogate U+D800
      {"\xF4\x90\x80\x80", {R, R, R, R}},         // above U+10FFFF
      {"\xFF", {R}},                              // never valid
      {"\x80\x80", {R, R}},                       // stray continuation bytes
      {"\xC3" "\xC3\xA9", {R, 0xE9}},             // a lead byte interrupted by a new sequence
  };
  for (const Malformed& c : cases) EXPECT_EQ(decode_utf8(c.bytes), c.expected) << ::testing::PrintToString(c.bytes);
}

TEST(Utf8Decode, SanitizeAndValidity) {
  EXPECT_EQ(sanitize_utf8("caf\xC3\xA9"), "caf\xC3\xA9");
  EXPECT_EQ(sanitize_utf8("a\xFF" "b\xE2\x82"), "a\xEF\xBF\xBD" "b\xEF\xBF\xBD");
  EXPECT_EQ(sanitize_utf8("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_TRUE(is_valid_utf8("caf\xC3\xA9 \xEF\xBF\xBD"));  // a literal U+FFFD is valid
  EXPECT_FALSE(is_valid_utf8("\xC0\xAF"));
  EXPECT_FALSE(is_valid_utf8("abc\xE2\x82"));
  EXPECT_TRUE(is_valid_utf8(sanitize_utf8("\xF0\x9F\x98 x \xFF")));
}

TEST(Utf8Encode, RoundTripsBoundaryCodePoints) {
  for (const char32_t cp : {0x0u, 0x7Fu, 0x80u, 0x7FFu, 0x800u, 0xD7FFu, 0xE000u, 0xFFFDu, 0xFFFFu, 0x10000u,
                            0x10FFFFu}) {
    std::string s;
    append_utf8(s, cp);
    EXPECT_EQ(decode_utf8(s), std::u32string(1, cp)) << std::hex << cp;
    EXPECT_EQ(count_code_points(s), 1u);
  }
}

// tokenization_test.py: test_is_whitespace, test_is_control, test_is_punctuation.
TEST(CharClasses, MatchBertsTests) {
  for (const char32_t c : {U' ', U'\t', U'\r', U'\n', char32_t(0xA0), char32_t(0x3000)})
    EXPECT_TRUE(is_whitespace(c)) << std::hex << c;
  EXPECT_FALSE(is_whitespace(U'A'));
  EXPECT_FALSE(is_whitespace(U'-'));
  EXPECT_FALSE(is_whitespace(0x2028));  // Zl, not Zs (the basic tokenizer still splits on it)

  EXPECT_TRUE(is_control(0x05));
  EXPECT_TRUE(is_control(0x85));    // Cc
  EXPECT_TRUE(is_control(0x200B));  // zero-width space is Cf
  EXPECT_FALSE(is_control(U'A'));
  EXPECT_FALSE(is_control(U' '));
  EXPECT_FALSE(is_control(U'\t'));
  EXPECT_FALSE(is_control(U'\r'));
  EXPECT_FALSE(is_control(0x1F4A9));

  for (const char32_t c : {U'-', U'$', U'`', U'.', U'^', U'~', char32_t(0xBF), char32_t(0x3002), char32_t(0xFF01)})
    EXPECT_TRUE(is_punctuation(c)) << std::hex << c;
  EXPECT_FALSE(is_punctuation(U'A'));
  EXPECT_FALSE(is_punctuation(U' '));
  EXPECT_FALSE(is_punctuation(0x20AC));  // the euro sign is Sc, outside ASCII: not punctuation
}

TEST(CharClasses, CjkRangesAreBertsChineseChars) {
  EXPECT_TRUE(is_cjk_ideograph(0x535A));
  EXPECT_TRUE(is_cjk_ideograph(0x4E00));
  EXPECT_TRUE(is_cjk_ideograph(0x9FFF));
  EXPECT_TRUE(is_cjk_ideograph(0x3400));
  EXPECT_TRUE(is_cjk_ideograph(0xF900));
  EXPECT_TRUE(is_cjk_ideograph(0x20000));
  EXPECT_TRUE(is_cjk_ideograph(0x2FA1F));
  EXPECT_FALSE(is_cjk_ideograph(0x4DC0));   // between extension A and the main block
  EXPECT_FALSE(is_cjk_ideograph(0x3042));   // Hiragana
  EXPECT_FALSE(is_cjk_ideograph(0xAC00));   // Hangul
  EXPECT_FALSE(is_cjk_ideograph(0x2A6E0));  // between extensions B and C
}

TEST(CharClasses, LowerCaseAndDecomposition) {
  EXPECT_EQ(to_lower(U'Q'), U'q');
  EXPECT_EQ(to_lower(U'q'), U'q');
  EXPECT_EQ(to_lower(0xC9), char32_t(0xE9));    // É
  EXPECT_EQ(to_lower(0x3A9), char32_t(0x3C9));  // Ω
  EXPECT_EQ(to_lower(0x212A), char32_t(U'k'));  // Kelvin sign
  EXPECT_EQ(to_lower(0x4E2D), char32_t(0x4E2D));

  char32_t out[8];
  ASSERT_EQ(decompose_canonical(0xE9, out), 2);  // é -> e + U+0301
  EXPECT_EQ(out[0], U'e');
  EXPECT_EQ(out[1], char32_t(0x301));
  EXPECT_TRUE(is_nonspacing_mark(out[1]));
  ASSERT_EQ(decompose_canonical(0x1F82, out), 4);  // ᾂ -> α + three marks
  ASSERT_EQ(decompose_canonical(0x37E, out), 1);   // Greek question mark -> ';'
  EXPECT_EQ(out[0], U';');
  ASSERT_EQ(decompose_canonical(0xAC00, out), 2);  // Hangul syllable -> jamo
  EXPECT_EQ(out[0], char32_t(0x1100));
  ASSERT_EQ(decompose_canonical(U'a', out), 1);
  EXPECT_EQ(combining_class(0x301), 230);
  EXPECT_EQ(combining_class(U'a'), 0);
  EXPECT_FALSE(is_nonspacing_mark(U'a'));
}

}  // namespace unicode_test
