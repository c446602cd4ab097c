#include "eigenformer/text/vocab.hpp"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "support/test_support.hpp"

#ifndef EIGENFORMER_TEST_TMP_DIR
#define EIGENFORMER_TEST_TMP_DIR "/tmp"
#endif

using namespace eigenformer;
using namespace eigenformer::text;

namespace vocab_test {

namespace fs = std::filesystem;

namespace {

/// A fresh, empty directory for one test.
fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::path(EIGENFORMER_TEST_TMP_DIR) / ("vocab_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

fs::path write_file(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary);
  out << bytes;
  return p;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

const std::vector<std::string> kTokens = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the",
                                          "##s",   "caf\u00E9", "\u4E2D", "a b", " lead", "trail "};

}  // namespace

TEST(Vocab, LookupsBothWays) {
  const Vocab v(kTokens);
  ASSERT_EQ(v.size(), 12);
  for (std::size_t i = 0; i < kTokens.size(); ++i) {
    EXPECT_EQ(v.id(kTokens[i]), static_cast<std::int64_t>(i));
    EXPECT_EQ(v.token(static_cast<std::int64_t>(i)), kTokens[i]);
  }
  EXPECT_EQ(v.find("nope"), -1);
  EXPECT_EQ(v.find("the"), 5);
  EXPECT_TRUE(v.contains("##s"));
  EXPECT_FALSE(v.contains("s"));
  EXPECT_FALSE(v.contains("trail"));  // spaces are part of a token
  EXPECT_EQ(v.tokens(), kTokens);
  EXPECT_EQ(v.source(), "<memory>");
}

TEST(Vocab, SpecialTokenIds) {
  const Vocab v(kTokens);
  EXPECT_EQ(v.pad_id(), 0);
  EXPECT_EQ(v.unk_id(), 1);
  EXPECT_EQ(v.cls_id(), 2);
  EXPECT_EQ(v.sep_id(), 3);
  EXPECT_EQ(v.mask_id(), 4);
  for (std::int64_t id = 0; id < 5; ++id) EXPECT_TRUE(v.is_special(id));
  EXPECT_FALSE(v.is_special(5));
  EXPECT_FALSE(v.is_special(-1));

  Vocab::SpecialTokens custom;
  custom.unk = "<unk>";
  custom.pad = "<pad>";
  const Vocab w({"<pad>", "x", "<unk>"}, custom);
  EXPECT_EQ(w.unk_id(), 2);
  EXPECT_EQ(w.pad_id(), 0);
  EXPECT_EQ(w.special_tokens().unk, "<unk>");
}

TEST(Vocab, MissingSpecialTokenNamesTokenAndFile) {
  const fs::path d = fresh_dir("missing_special");
  const Vocab v = Vocab::load(write_file(d / "vocab.txt", "[UNK]\nhello\n"));
  EXPECT_EQ(v.unk_id(), 0);
  EXPECT_THROW_WITH(v.pad_id(), ValueError, {"pad_id", "\"[PAD]\"", "vocab.txt"});
  EXPECT_THROW_WITH(v.mask_id(), ValueError, {"mask_id", "\"[MASK]\""});
  EXPECT_THROW_WITH(v.cls_id(), ValueError, {"\"[CLS]\""});
  EXPECT_THROW_WITH(v.sep_id(), ValueError, {"\"[SEP]\""});
  EXPECT_THROW_WITH(Vocab({"a"}).unk_id(), ValueError, {"\"[UNK]\"", "<memory>"});
}

TEST(Vocab, SaveThenLoadGivesTheSameIds) {
  const fs::path d = fresh_dir("round_trip");
  const Vocab v(kTokens);
  v.save(d / "vocab.txt");
  std::string expected;
  for (const std::string& t : kTokens) expected += t + "\n";
  EXPECT_EQ(read_file(d / "vocab.txt"), expected);  // BERT's format: one token per line

  const Vocab w = Vocab::load(d / "vocab.txt");
  EXPECT_EQ(w.tokens(), v.tokens());
  for (const std::string& t : kTokens) EXPECT_EQ(w.id(t), v.id(t));
  EXPECT_EQ(w.unk_id(), 1);
  EXPECT_EQ(w.source(), (d / "vocab.txt").string());
}

TEST(Vocab, LoadHandlesCrlfAndAMissingFinalNewline) {
  const fs::path d = fresh_dir("crlf");
  const Vocab crlf = Vocab::load(write_file(d / "crlf.txt", "[UNK]\r\nhello\r\n##s\r\n"));
  EXPECT_EQ(crlf.tokens(), (std::vector<std::string>{"[UNK]", "hello", "##s"}));
  const Vocab last = Vocab::load(write_file(d / "last.txt", "[UNK]\nhello\nend"));
  EXPECT_EQ(last.tokens(), (std::vector<std::string>{"[UNK]", "hello", "end"}));
  EXPECT_EQ(last.id("end"), 2);
  const Vocab spaces = Vocab::load(write_file(d / "spaces.txt", "a \n a\na\t\n"));
  EXPECT_EQ(spaces.tokens(), (std::vector<std::string>{"a ", " a", "a\t"}));
}

TEST(Vocab, LoadErrorsNameTheFileAndLine) {
  const fs::path d = fresh_dir("errors");
  const std::string missing = (d / "missing.txt").string();
  EXPECT_THROW_WITH(Vocab::load(missing), IoError, {"Vocab::load", missing, "no such file"});
  EXPECT_THROW_WITH(Vocab::load(d), IoError, {"Vocab::load", d.string()});
  const fs::path dup = write_file(d / "dup.txt", "[UNK]\na\nb\na\n");
  EXPECT_THROW_WITH(Vocab::load(dup), IoError, {dup.string() + ":4", "duplicate token \"a\"", "first on line 2"});
  const fs::path dup_crlf = write_file(d / "dup_crlf.txt", "a\r\na\n");
  EXPECT_THROW_WITH(Vocab::load(dup_crlf), IoError, {"dup_crlf.txt:2", "duplicate"});
  const fs::path empty_line = write_file(d / "empty_line.txt", "a\n\nb\n");
  EXPECT_THROW_WITH(Vocab::load(empty_line), IoError, {"empty_line.txt:2", "is empty"});
  const fs::path bad_utf8 = write_file(d / "bad_utf8.txt", "a\nb\xFF\n");
  EXPECT_THROW_WITH(Vocab::load(bad_utf8), IoError, {"bad_utf8.txt:2", "not valid UTF-8", "\"b"});
  const fs::path cr = write_file(d / "cr.txt", "a\r\r\n");
  EXPECT_THROW_WITH(Vocab::load(cr), IoError, {"cr.txt:1", "carriage return"});
  const fs::path empty = write_file(d / "empty.txt", "");
  EXPECT_THROW_WITH(Vocab::load(empty), IoError, {"empty.txt", "no token"});
}

TEST(Vocab, ConstructorRejectsTokensVocabTxtCannotHold) {
  EXPECT_THROW_WITH(Vocab({"a", "b", "a"}), ValueError, {"token 2", "\"a\"", "duplicates token 0"});
  EXPECT_THROW_WITH(Vocab({"a", ""}), ValueError, {"token 1", "empty"});
  EXPECT_THROW_WITH(Vocab({"a\nb"}), ValueError, {"token 0", "newline"});
  EXPECT_THROW_WITH(Vocab({"ab\r"}), ValueError, {"carriage return"});
  EXPECT_THROW_WITH(Vocab({"\xC0\xAF"}), ValueError, {"not valid UTF-8"});
}

TEST(Vocab, BadIdsAndSaveFailures) {
  const Vocab v(kTokens);
  EXPECT_THROW_WITH(v.token(12), ValueError, {"Vocab::token", "id 12", "12 tokens"});
  EXPECT_THROW_WITH(v.token(-1), ValueError, {"id -1"});
  EXPECT_THROW_WITH(v.id("absent"), ValueError, {"Vocab::id", "\"absent\""});
  const fs::path d = fresh_dir("save_fail");
  EXPECT_THROW_WITH(v.save(d / "no_such_dir" / "vocab.txt"), IoError, {"Vocab::save", "no_such_dir"});
}

TEST(Vocab, EmptyVocabularyAndManyTokens) {
  const Vocab empty;
  EXPECT_EQ(empty.size(), 0);
  EXPECT_EQ(empty.find("a"), -1);
  std::vector<std::string> many;
  for (int i = 0; i < 20000; ++i) many.push_back("t" + std::to_string(i));
  const Vocab v(many);  // grows the hash table many times
  for (int i = 0; i < 20000; i += 997) EXPECT_EQ(v.id("t" + std::to_string(i)), i);
  EXPECT_EQ(v.find("t20000"), -1);
}

}  // namespace vocab_test
