#include "eigenformer/text/wordpiece.hpp"

#include <string>
#include <vector>

#include "support/test_support.hpp"

using namespace eigenformer;
using namespace eigenformer::text;

namespace wordpiece_test {

using Tokens = std::vector<std::string>;

namespace {

// The vocabulary of tokenization_test.py test_wordpiece_tokenizer.
Vocab bert_test_vocab() {
  return Vocab({"[UNK]", "[CLS]", "[SEP]", "want", "##want", "##ed", "wa", "un", "runn", "##ing"});
}

std::vector<std::int64_t> encode(const WordPiece& wp, std::string_view word) {
  std::vector<std::int64_t> ids;
  wp.encode_word(word, ids);
  return ids;
}

}  // namespace

TEST(WordPiece, BertTestCases) {
  const WordPiece wp(bert_test_vocab());
  EXPECT_EQ(wp.tokenize(""), Tokens{});
  EXPECT_EQ(wp.tokenize("unwanted running"), (Tokens{"un", "##want", "##ed", "runn", "##ing"}));
  EXPECT_EQ(wp.tokenize("unwantedX running"), (Tokens{"[UNK]", "runn", "##ing"}));
  EXPECT_EQ(encode(wp, "unwanted"), (std::vector<std::int64_t>{7, 4, 5}));
  EXPECT_EQ(encode(wp, "running"), (std::vector<std::int64_t>{8, 9}));
}

TEST(WordPiece, LongestMatchFirstIsGreedy) {
  // "abc" is matched as "ab" + "##c" even though "a" + "##bcd"... would also cover "abcd": greedy, as BERT.
  const WordPiece wp(Vocab({"[UNK]", "a", "ab", "##c", "##bcd", "##d"}));
  EXPECT_EQ(wp.tokenize("abcd"), (Tokens{"ab", "##c", "##d"}));
  EXPECT_EQ(wp.tokenize("abd"), (Tokens{"ab", "##d"}));
  EXPECT_EQ(wp.tokenize("ac"), (Tokens{"a", "##c"}));
  EXPECT_EQ(wp.tokenize("b"), (Tokens{"[UNK]"}));   // "##b" cannot start a word
  EXPECT_EQ(wp.tokenize("abx"), (Tokens{"[UNK]"}));  // a partial match is discarded whole
}

TEST(WordPiece, PiecesEndOnCodePointBoundaries) {
  const WordPiece wp(Vocab({"[UNK]", "\u00E9", "##\u00E9", "##\u00E9\u00E9", "\u4E2D\u6587", "##x"}));
  EXPECT_EQ(wp.tokenize("\u00E9\u00E9\u00E9"), (Tokens{"\u00E9", "##\u00E9\u00E9"}));
  EXPECT_EQ(wp.tokenize("\u00E9\u00E9\u00E9\u00E9"), (Tokens{"\u00E9", "##\u00E9\u00E9", "##\u00E9"}));
  EXPECT_EQ(wp.tokenize("\u4E2D\u6587x"), (Tokens{"\u4E2D\u6587", "##x"}));
  EXPECT_EQ(wp.tokenize("\u4E2D"), (Tokens{"[UNK]"}));
}

TEST(WordPiece, WordsOverTheCharacterLimitAreUnknown) {
  WordPiece::Options o;
  o.max_input_chars_per_word = 100;
  const WordPiece wp(Vocab({"[UNK]", "a", "##a", "\u00E9", "##\u00E9"}), o);
  EXPECT_EQ(encode(wp, std::string(100, 'a')).size(), 100u);
  EXPECT_EQ(encode(wp, std::string(101, 'a')), (std::vector<std::int64_t>{0}));
  // The limit counts code points, not bytes: 100 two-byte characters still fit.
  std::string e100;
  for (int i = 0; i < 100; ++i) e100 += "\u00E9";
  EXPECT_EQ(encode(wp, e100).size(), 100u);
  EXPECT_EQ(encode(wp, e100 + "\u00E9"), (std::vector<std::int64_t>{0}));
}

TEST(WordPiece, CustomContinuationPrefixAndAppendSemantics) {
  WordPiece::Options o;
  o.continuation_prefix = "@@";
  const WordPiece wp(Vocab({"[UNK]", "un", "@@want", "##want"}), o);
  EXPECT_EQ(wp.tokenize("unwant"), (Tokens{"un", "@@want"}));
  std::vector<std::int64_t> ids = {42};
  wp.encode_word("unwant", ids);
  wp.encode_word("unknown", ids);  // [UNK] replaces the partial "un" only
  EXPECT_EQ(ids, (std::vector<std::int64_t>{42, 1, 2, 0}));
}

TEST(WordPiece, Errors) {
  EXPECT_THROW_WITH(WordPiece(Vocab({"a", "##b"})), ValueError, {"unk_id", "\"[UNK]\"", "<memory>"});
  WordPiece::Options o;
  o.max_input_chars_per_word = 0;
  EXPECT_THROW_WITH(WordPiece(bert_test_vocab(), o), ValueError, {"max_input_chars_per_word is 0"});
  o.max_input_chars_per_word = 10;
  o.continuation_prefix = "";
  EXPECT_THROW_WITH(WordPiece(bert_test_vocab(), o), ValueError, {"continuation_prefix"});
}

}  // namespace wordpiece_test
