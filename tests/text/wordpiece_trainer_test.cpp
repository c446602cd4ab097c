#include "eigenformer/text/wordpiece_trainer.hpp"

#include <list>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "eigenformer/text/tokenizer.hpp"
#include "support/test_support.hpp"

using namespace eigenformer;
using namespace eigenformer::text;

namespace wordpiece_trainer_test {

namespace {

// E-mail-like texts: a header block, then sentences drawn from a fixed word list with a Zipf-like bias.
std::vector<std::string> make_corpus(int n, std::uint64_t seed) {
  static const std::vector<std::string> words = {
      "the", "a", "to", "of", "and", "you", "your", "for", "is", "in", "free", "offer", "click", "here", "now",
      "money", "meeting", "tomorrow", "project", "report", "please", "find", "attached", "thanks", "regards",
      "winner", "prize", "claim", "account", "password", "verify", "urgent", "limited", "time", "deal", "discount",
      "unsubscribe", "newsletter", "schedule", "review", "budget", "quarterly", "results", "team", "lunch",
      "caf\u00E9", "na\u00EFve", "r\u00E9sum\u00E9", "\u00FCber", "s\u00F8ren", "running", "jumped", "quickly",
      "information"};
  std::mt19937_64 gen(seed);
  std::uniform_int_distribution<int> len(5, 30);
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) {
    std::string t = "From: user" + std::to_string(gen() % 50) + "@example.com\nSubject: ";
    const int m = len(gen);
    for (int j = 0; j < m; ++j) {
      // min of two uniforms favours the first words, as real text favours "the".
      const std::size_t k = std::min(gen() % words.size(), gen() % words.size());
      t += words[k];
      t += (j % 7 == 6) ? ". " : (j % 11 == 10) ? ", " : " ";
      if (j == 2) t += "\n\n";
    }
    out.push_back(std::move(t));
  }
  return out;
}

WordPieceTrainer::Options options(Index vocab_size, Index min_frequency = 2) {
  WordPieceTrainer::Options o;
  o.vocab_size = vocab_size;
  o.min_frequency = min_frequency;
  return o;
}

}  // namespace

TEST(WordPieceTrainer, ExactSizeWithSpecialTokensFirst) {
  const std::vector<std::string> corpus = make_corpus(1000, 1);
  const Vocab v = WordPieceTrainer(options(300)).train(corpus);
  ASSERT_EQ(v.size(), 300);
  const std::vector<std::string> t = v.tokens();
  EXPECT_EQ(std::vector<std::string>(t.begin(), t.begin() + 5),
            (std::vector<std::string>{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}));
  EXPECT_EQ(v.pad_id(), 0);
  EXPECT_EQ(v.mask_id(), 4);
  // Every character seen, in both forms unless punctuation; the most frequent words end up whole.
  for (const char* s : {"a", "##a", "y", "e", "##e", "\u00F8", "##\u00F8", "@", ".", "the", "you", "free"})
    EXPECT_TRUE(v.contains(s)) << s;
  EXPECT_FALSE(v.contains("##@"));
  EXPECT_FALSE(v.contains("##."));
  EXPECT_FALSE(v.contains("E"));       // lower-cased by the basic tokenizer
  EXPECT_FALSE(v.contains("\u00E9"));  // accents stripped: é is e
}

TEST(WordPieceTrainer, EncodesItsTrainingTextWithFewUnknowns) {
  const std::vector<std::string> corpus = make_corpus(1000, 2);
  const Tokenizer tok(WordPieceTrainer(options(400)).train(corpus));
  EncodeOptions o;
  o.max_length = 0;
  std::size_t pieces = 0, unknown = 0, words = 0;
  for (const std::string& text : corpus) {
    const std::vector<std::int64_t> ids = tok.encode(text, o);
    pieces += ids.size();
    for (const std::int64_t id : ids) unknown += id == tok.vocab().unk_id();
    tok.basic_tokenizer().tokenize(text, [&words](std::string_view) { ++words; });
  }
  EXPECT_EQ(unknown, 0u);
  // Merges pay off: fewer than 1.3 pieces per word (characters alone would need about 5).
  EXPECT_LT(static_cast<double>(pieces - 2 * corpus.size()), 1.3 * static_cast<double>(words));
  EXPECT_EQ(tok.decode(tok.encode("please find the attached report")), "please find the attached report");
}

// Hand-computed: "ab" occurs 3 times, "cd" once, so "ab" is the first merge and "cd" the second.
TEST(WordPieceTrainer, MergesTheMostFrequentPairFirst) {
  const std::vector<std::string> corpus = {"ab ab ab cd"};
  const std::vector<std::string> alphabet = {"a", "b", "c", "d", "##a", "##b", "##c", "##d"};
  std::vector<std::string> expected = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
  expected.insert(expected.end(), alphabet.begin(), alphabet.end());
  expected.push_back("ab");
  EXPECT_EQ(WordPieceTrainer(options(14, 1)).train(corpus).tokens(), expected);
  expected.push_back("cd");
  EXPECT_EQ(WordPieceTrainer(options(15, 1)).train(corpus).tokens(), expected);
  // With min_frequency 2 the pair "cd" (twice) still merges, but nothing else does: the vocabulary stops short.
  EXPECT_EQ(WordPieceTrainer(options(100, 2)).train(std::vector<std::string>{"ab ab ab cd cd"}).tokens(), expected);
}

// Hand-computed: in "aaaa" (x3) = a ##a ##a ##a the pair (##a, ##a) counts 6 (overlaps included) and merges
// first, left to right: a ##aa ##a. Then (a, ##aa) and (##aa, ##a) tie at 3; the smaller ids win: "aaa", "aaaa".
TEST(WordPieceTrainer, ContinuationMergesAndRepeatedSymbols) {
  const Vocab v = WordPieceTrainer(options(100, 1)).train(std::vector<std::string>{"aaaa aaaa aaaa"});
  EXPECT_EQ(v.tokens(), (std::vector<std::string>{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "##a", "##aa",
                                                  "aaa", "aaaa"}));
  EXPECT_EQ(Tokenizer(v).tokenize("aaaaaaa"), (std::vector<std::string>{"aaaa", "##aa", "##a"}));
}

TEST(WordPieceTrainer, RareCharactersAndLongWordsAreLeftOut) {
  std::vector<std::string> corpus = make_corpus(200, 3);
  std::string long_word;  // the only Cyrillic letters, all in one word over 100 characters
  for (int i = 0; i < 150; ++i) long_word += "\u0436";
  corpus.push_back("\u00DF " + long_word);  // ß once
  const Vocab v = WordPieceTrainer(options(500)).train(corpus);
  EXPECT_FALSE(v.contains("\u00DF"));
  EXPECT_FALSE(v.contains("\u0436"));
  const Tokenizer tok(v);
  EXPECT_EQ(tok.tokenize("stra\u00DFe"), (std::vector<std::string>{"[UNK]"}));
}

TEST(WordPieceTrainer, SmallSizesKeepTheMostFrequentCharacters) {
  const Vocab v = WordPieceTrainer(options(7, 1)).train(std::vector<std::string>{"aaa b"});
  EXPECT_EQ(v.tokens(), (std::vector<std::string>{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "##a"}));
  EXPECT_EQ(WordPieceTrainer(options(5, 1)).train(std::vector<std::string>{"abc"}).size(), 5);
  EXPECT_EQ(WordPieceTrainer(options(10)).train(std::vector<std::string>{}).size(), 5);
}

TEST(WordPieceTrainer, DeterministicAndRangeAgnostic) {
  const std::vector<std::string> corpus = make_corpus(300, 4);
  const Vocab a = WordPieceTrainer(options(250)).train(corpus);
  const std::list<std::string_view> views(corpus.begin(), corpus.end());
  WordPieceTrainer t(options(250));
  t.add(corpus[0]);
  t.add_all(std::vector<std::string_view>(std::next(views.begin()), views.end()));
  EXPECT_EQ(t.build().tokens(), a.tokens());
  EXPECT_EQ(WordPieceTrainer(options(250)).train(views).tokens(), a.tokens());
  EXPECT_GT(t.distinct_words(), 50);
}

TEST(WordPieceTrainer, OptionErrors) {
  EXPECT_THROW_WITH(WordPieceTrainer(options(4)), ValueError, {"WordPieceTrainer", "vocab_size is 4", "at least 5"});
  EXPECT_THROW_WITH(WordPieceTrainer(options(10, 0)), ValueError, {"min_frequency is 0"});
  WordPieceTrainer::Options o = options(10);
  o.special_tokens.mask = "[PAD]";
  EXPECT_THROW_WITH(WordPieceTrainer t(o), ValueError, {"\"[PAD]\"", "duplicates"});
  o = options(10);
  o.wordpiece.continuation_prefix = "";
  EXPECT_THROW_WITH(WordPieceTrainer t(o), ValueError, {"continuation_prefix"});
  o = options(10);
  o.wordpiece.max_input_chars_per_word = 0;
  EXPECT_THROW_WITH(WordPieceTrainer t(o), ValueError, {"max_input_chars_per_word is 0"});
}

}  // namespace wordpiece_trainer_test
