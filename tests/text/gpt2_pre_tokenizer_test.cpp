#include "eigenformer/text/gpt2_pre_tokenizer.hpp"

#include <random>
#include <string>
#include <vector>

#include "support/test_support.hpp"

using namespace eigenformer::text;

namespace gpt2_pre_tokenizer_test {

using Pieces = std::vector<std::string>;

TEST(Gpt2PreTokenizer, ThePatternsAlternatives) {
  EXPECT_EQ(gpt2_pre_tokenize("Hello world"), (Pieces{"Hello", " world"}));
  EXPECT_EQ(gpt2_pre_tokenize("I can't   believe\n\n it's 2024!!"),
            (Pieces{"I", " can", "'t", "  ", " believe", "\n\n", " it", "'s", " 2024", "!!"}));
  EXPECT_EQ(gpt2_pre_tokenize("they're we've I'll I'm he'd"),
            (Pieces{"they", "'re", " we", "'ve", " I", "'ll", " I", "'m", " he", "'d"}));
  // Contractions are lower-case only; an apostrophe elsewhere joins a run of other characters.
  EXPECT_EQ(gpt2_pre_tokenize("DON'T ''s ?'s 'x"), (Pieces{"DON", "'", "T", " ''", "s", " ?'", "s", " '", "x"}));
  EXPECT_EQ(gpt2_pre_tokenize("abc123def"), (Pieces{"abc", "123", "def"}));
  EXPECT_EQ(gpt2_pre_tokenize("a ... b"), (Pieces{"a", " ...", " b"}));
}

TEST(Gpt2PreTokenizer, WhitespaceRuns) {
  // "\s+(?!\S)" keeps the last space for the next word; a lone non-space whitespace character stands alone.
  EXPECT_EQ(gpt2_pre_tokenize("a   b"), (Pieces{"a", "  ", " b"}));
  EXPECT_EQ(gpt2_pre_tokenize("a\tb"), (Pieces{"a", "\t", "b"}));
  EXPECT_EQ(gpt2_pre_tokenize("a\t\tb"), (Pieces{"a", "\t", "\t", "b"}));
  EXPECT_EQ(gpt2_pre_tokenize("a \n b"), (Pieces{"a", " \n", " b"}));
  EXPECT_EQ(gpt2_pre_tokenize("end   "), (Pieces{"end", "   "}));
  EXPECT_EQ(gpt2_pre_tokenize("   "), (Pieces{"   "}));
  EXPECT_EQ(gpt2_pre_tokenize(" "), (Pieces{" "}));
  EXPECT_TRUE(gpt2_pre_tokenize("").empty());
  // Unicode whitespace: NBSP and U+3000 are \s; a space before them is not " ?X".
  EXPECT_EQ(gpt2_pre_tokenize("a\u00A0b \u3000c"), (Pieces{"a", "\u00A0", "b", " ", "\u3000", "c"}));
}

TEST(Gpt2PreTokenizer, UnicodeClasses) {
  EXPECT_EQ(gpt2_pre_tokenize("Caf\u00E9 \u4F60\u597D \u0661\u0662 \u00BD\U0001F600!"),
            (Pieces{"Caf\u00E9", " \u4F60\u597D", " \u0661\u0662", " \u00BD", "\U0001F600!"}));
  // Combining marks are not letters.
  EXPECT_EQ(gpt2_pre_tokenize("e\u0301t"), (Pieces{"e", "\u0301", "t"}));
}

TEST(Gpt2PreTokenizer, InvalidUtf8IsOtherAndKeepsEveryByte) {
  EXPECT_EQ(gpt2_pre_tokenize("ab\xFF\xFEz \xC3"), (Pieces{"ab", "\xFF\xFE", "z", " \xC3"}));
  std::mt19937_64 gen(11);
  for (int n = 0; n < 500; ++n) {
    std::string s(static_cast<std::size_t>(gen() % 40), '\0');
    for (char& c : s) c = static_cast<char>(gen() % 256);
    std::string joined;
    gpt2_pre_tokenize(s, [&](std::string_view piece) {
      EXPECT_FALSE(piece.empty());
      joined.append(piece);
    });
    EXPECT_EQ(joined, s);
  }
}

}  // namespace gpt2_pre_tokenizer_test
