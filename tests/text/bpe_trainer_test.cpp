#include "eigenformer/text/bpe_trainer.hpp"

#include <random>
#include <string>
#include <vector>

#include "support/test_support.hpp"

using namespace eigenformer;
using namespace eigenformer::text;

namespace bpe_trainer_test {

using Tokens = std::vector<std::string>;

namespace {

std::vector<std::string> make_corpus(int n, std::uint64_t seed) {
  static const std::vector<std::string> words = {
      "the", "a", "to", "of", "and", "you", "your", "free", "offer", "click", "here", "now", "money", "meeting",
      "tomorrow", "project", "report", "please", "thanks", "caf\u00E9", "na\u00EFve", "\u4F60\u597D", "\U0001F600",
      "don't", "it's", "2024", "42", "...", "!!", "\n"};
  std::mt19937_64 gen(seed);
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) {
    std::string t;
    const int m = 5 + static_cast<int>(gen() % 30);
    for (int j = 0; j < m; ++j) {
      const std::size_t k = std::min(gen() % words.size(), gen() % words.size());
      t += words[k];
      t += j % 9 == 8 ? "  " : " ";
    }
    out.push_back(std::move(t));
  }
  return out;
}

BpeTrainer::Options options(Index vocab_size, Index min_frequency = 0) {
  BpeTrainer::Options o;
  o.vocab_size = vocab_size;
  o.min_frequency = min_frequency;
  return o;
}

}  // namespace

TEST(BpeTrainer, SpecialTokensThenTheByteAlphabetThenMerges) {
  BpeTrainer::Options o = options(300);
  o.special_tokens = {"<|endoftext|>", "<pad>"};
  const ByteLevelBpe bpe = BpeTrainer(o).train(make_corpus(300, 1));
  ASSERT_EQ(bpe.size(), 300);
  EXPECT_EQ(bpe.token(0), "<|endoftext|>");
  EXPECT_EQ(bpe.token(1), "<pad>");
  const Tokens alphabet = byte_level_alphabet();
  for (std::size_t i = 0; i < alphabet.size(); ++i) EXPECT_EQ(bpe.token(static_cast<std::int64_t>(i + 2)), alphabet[i]);
  EXPECT_EQ(bpe.merges().size(), 300u - 258u);
  EXPECT_TRUE(bpe.is_special(0));
  EXPECT_EQ(bpe.encode("x<|endoftext|>y")[1], 0);
  // The most frequent pair in the corpus is merged first: a space before a word.
  EXPECT_EQ(bpe.merges()[0].first, "\xC4\xA0");
}

TEST(BpeTrainer, DeterministicAndEncodesItsCorpusIntoFewerTokens) {
  const std::vector<std::string> corpus = make_corpus(500, 2);
  const ByteLevelBpe a = BpeTrainer(options(600)).train(corpus);
  const ByteLevelBpe b = BpeTrainer(options(600)).train(corpus);
  EXPECT_EQ(a.merges(), b.merges());
  std::size_t bytes = 0, tokens = 0;
  for (const std::string& t : corpus) {
    const std::vector<std::int64_t> ids = a.encode(t);
    EXPECT_EQ(a.decode(ids), t);
    bytes += t.size();
    tokens += ids.size();
  }
  EXPECT_LT(tokens * 3, bytes);  // the frequent words became single tokens
  EXPECT_EQ(a.tokenize(" tomorrow"), (Tokens{"\xC4\xA0tomorrow"}));
}

TEST(BpeTrainer, MinFrequencyAndRunningOutOfPairs) {
  const std::vector<std::string> corpus = {"abab abab abab xy"};
  // Pairs seen at least 3 times: a+b (6), then ab+ab (3), Ġ+abab (2) is not; x+y once.
  const ByteLevelBpe bpe = BpeTrainer(options(1000, 3)).train(corpus);
  EXPECT_EQ(bpe.merges(), (std::vector<ByteLevelBpe::Merge>{{"a", "b"}, {"ab", "ab"}}));
  EXPECT_EQ(bpe.size(), 256 + 2);
  // Without a minimum every pair is merged until none is left.
  const ByteLevelBpe all = BpeTrainer(options(1000)).train(corpus);
  EXPECT_EQ(all.tokenize("abab abab xy"), (Tokens{"abab", "\xC4\xA0" "abab", "\xC4\xA0xy"}));
  // The alphabet of the bytes seen only (tokenizers' default): unseen bytes are dropped when encoding.
  BpeTrainer::Options seen = options(1000);
  seen.full_byte_alphabet = false;
  const ByteLevelBpe small = BpeTrainer(seen).train(corpus);
  EXPECT_EQ(small.token(0), "a");
  EXPECT_EQ(small.tokenize("ab!"), (Tokens{"ab"}));
  // A vocabulary smaller than the alphabet still holds the whole alphabet (nothing is merged).
  EXPECT_EQ(BpeTrainer(options(10)).train(corpus).size(), 256);
}

TEST(BpeTrainer, WordsAndOptions) {
  BpeTrainer t(options(300));
  t.add("hello hello world");
  t.add("");
  t.add_all(std::vector<std::string_view>{"hello", "\xFF\xFE bytes"});
  EXPECT_EQ(t.distinct_words(), 5);  // "hello", " hello", " world", "\xFF\xFE", " bytes"
  EXPECT_THROW_WITH(BpeTrainer(options(-1)), ValueError, {"BpeTrainer", "vocab_size is -1"});
  EXPECT_THROW_WITH(BpeTrainer(options(10, -2)), ValueError, {"min_frequency is -2"});
  BpeTrainer::Options o;
  o.special_tokens = {"<s>", "<s>"};
  EXPECT_THROW_WITH(BpeTrainer{o}, ValueError, {"special token 1", "\"<s>\"", "repeats special token 0"});
  o.special_tokens = {""};
  EXPECT_THROW_WITH(BpeTrainer{o}, ValueError, {"special token 0", "empty"});
}

}  // namespace bpe_trainer_test
