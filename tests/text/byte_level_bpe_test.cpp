#include "eigenformer/text/byte_level_bpe.hpp"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "eigenformer/text/byte_level.hpp"
#include "support/test_support.hpp"

#ifndef EIGENFORMER_TEST_TMP_DIR
#define EIGENFORMER_TEST_TMP_DIR "/tmp"
#endif

using namespace eigenformer;
using namespace eigenformer::text;

namespace byte_level_bpe_test {

namespace fs = std::filesystem;
using Ids = std::vector<std::int64_t>;
using Tokens = std::vector<std::string>;

namespace {

fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::path(EIGENFORMER_TEST_TMP_DIR) / ("byte_level_bpe_" + name);
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

// The 256 byte tokens (ids 0-255 in code point order, as GPT-2), then merges over "hello", " world", "low".
struct Small {
  std::vector<std::string> tokens = byte_level_alphabet();
  std::vector<ByteLevelBpe::Merge> merges;

  Small() {
    for (const auto& [a, b] : std::vector<ByteLevelBpe::Merge>{{"l", "l"}, {"h", "e"}, {"he", "ll"}, {"hell", "o"},
                                                               {"\xC4\xA0", "w"}, {"o", "r"}, {"\xC4\xA0w", "or"},
                                                               {"l", "d"}, {"\xC4\xA0wor", "ld"}, {"l", "o"},
                                                               {"lo", "w"}}) {
      merges.emplace_back(a, b);
      tokens.push_back(a + b);
    }
    tokens.push_back("<|endoftext|>");
  }

  std::vector<AddedToken> specials() const {
    AddedToken t;
    t.content = "<|endoftext|>";
    t.id = static_cast<std::int64_t>(tokens.size() - 1);
    return {t};
  }

  ByteLevelBpe make(ByteLevelBpe::Options o = {}) const { return ByteLevelBpe(tokens, merges, specials(), o); }
};

std::int64_t id_of(const ByteLevelBpe& t, const std::string& token) { return t.id(token); }

}  // namespace

TEST(ByteLevelBpe, MergesByRank) {
  const ByteLevelBpe t = Small().make();
  EXPECT_EQ(t.size(), 256 + 11 + 1);
  EXPECT_EQ(t.tokenize("hello world"), (Tokens{"hello", "\xC4\xA0world"}));
  EXPECT_EQ(t.encode("hello world"), (Ids{id_of(t, "hello"), id_of(t, "\xC4\xA0world")}));
  EXPECT_EQ(t.tokenize("lowly"), (Tokens{"low", "l", "y"}));
  EXPECT_EQ(t.tokenize("yellow"), (Tokens{"y", "e", "ll", "o", "w"}));
  EXPECT_TRUE(t.encode("").empty());
  // Bytes without merges are single-byte tokens; a space before a word is part of it ("Ġ").
  EXPECT_EQ(t.tokenize(" x"), (Tokens{"\xC4\xA0", "x"}));
}

TEST(ByteLevelBpe, LowestRankFirstThenLeftmost) {
  // "aaa": (a, a) merges leftmost first, giving "aa" + "a", not "a" + "aa".
  std::vector<std::string> tokens = byte_level_alphabet();
  tokens.push_back("aa");
  tokens.push_back("ab");
  tokens.push_back("abc");
  const ByteLevelBpe t(tokens, {{"a", "a"}, {"a", "b"}, {"ab", "c"}});
  EXPECT_EQ(t.tokenize("aaa"), (Tokens{"aa", "a"}));
  EXPECT_EQ(t.tokenize("aaaa"), (Tokens{"aa", "aa"}));
  // (a, a) has the lower rank, so "aab" + "c" merges a+a first and ab never forms.
  EXPECT_EQ(t.tokenize("aabc"), (Tokens{"aa", "b", "c"}));
  EXPECT_EQ(t.tokenize("abc"), (Tokens{"abc"}));
}

TEST(ByteLevelBpe, SpecialTokensAreFoundFirstAndSkippedOnRequest) {
  const ByteLevelBpe t = Small().make();
  const std::int64_t eot = id_of(t, "<|endoftext|>");
  EXPECT_EQ(t.encode("hello<|endoftext|> world"),
            (Ids{id_of(t, "hello"), eot, id_of(t, "\xC4\xA0world")}));
  EXPECT_EQ(t.encode("<|endoftext|><|endoftext|>"), (Ids{eot, eot}));
  EXPECT_TRUE(t.is_special(eot));
  EXPECT_FALSE(t.is_special(0));
  EXPECT_EQ(t.decode(t.encode("hello<|endoftext|> world")), "hello<|endoftext|> world");
  EXPECT_EQ(t.decode(t.encode("hello<|endoftext|> world"), true), "hello world");
  EXPECT_EQ(t.encode("<|endoftext"), t.encode(std::string("<|endoftext")));  // a prefix is plain text
  EXPECT_GT(t.encode("<|endoftext").size(), 1u);
}

TEST(ByteLevelBpe, AnyBytesRoundTrip) {
  const ByteLevelBpe t = Small().make();
  std::mt19937_64 gen(7);
  for (int n = 0; n < 200; ++n) {
    std::string s(static_cast<std::size_t>(gen() % 64), '\0');
    for (char& c : s) c = static_cast<char>(gen() % 256);
    const Ids ids = t.encode(s);
    EXPECT_EQ(t.decode(ids), s);
    for (const std::int64_t id : ids) EXPECT_TRUE(id >= 0 && id < t.size());
  }
  const std::string invalid = "caf\xC3 \xFF\xFE hello \xED\xA0\x80 world\xF0\x9F";
  EXPECT_EQ(t.decode(t.encode(invalid)), invalid);
}

TEST(ByteLevelBpe, Options) {
  const Small s;
  ByteLevelBpe::Options o;
  o.add_prefix_space = true;
  const ByteLevelBpe prefixed = s.make(o);
  EXPECT_EQ(prefixed.tokenize("world"), (Tokens{"\xC4\xA0world"}));
  EXPECT_EQ(prefixed.tokenize(" world"), (Tokens{"\xC4\xA0world"}));
  o = {};
  o.use_regex = false;  // the whole text is one word
  EXPECT_EQ(s.make(o).tokenize("hello world"), (Tokens{"hello", "\xC4\xA0world"}));
  EXPECT_EQ(s.make(o).tokenize("a!b"), (Tokens{"a", "!", "b"}));
  // (b, c) ranks first, so "abc" ends as a + bc; ignore_merges takes the token "abc" whole.
  std::vector<std::string> tokens = byte_level_alphabet();
  for (const char* t : {"bc", "ab", "abc"}) tokens.push_back(t);
  const std::vector<ByteLevelBpe::Merge> merges = {{"b", "c"}, {"a", "b"}, {"ab", "c"}};
  EXPECT_EQ(ByteLevelBpe(tokens, merges).tokenize("abc"), (Tokens{"a", "bc"}));
  o = {};
  o.ignore_merges = true;
  EXPECT_EQ(ByteLevelBpe(tokens, merges, {}, o).tokenize("abc abcd"), (Tokens{"abc", "\xC4\xA0", "a", "bc", "d"}));
}

TEST(ByteLevelBpe, MissingByteTokensAreDroppedOrUnknown) {
  std::vector<std::string> tokens = {"a", "b", "ab", "<unk>"};
  const ByteLevelBpe drop(tokens, {{"a", "b"}});
  EXPECT_EQ(drop.tokenize("abxab"), (Tokens{"ab", "ab"}));  // no token for "x" and no unk_token: dropped
  ByteLevelBpe::Options o;
  o.unk_token = "<unk>";
  EXPECT_EQ(ByteLevelBpe(tokens, {{"a", "b"}}, {}, o).tokenize("axxb"), (Tokens{"a", "<unk>", "<unk>", "b"}));
  o.fuse_unk = true;
  EXPECT_EQ(ByteLevelBpe(tokens, {{"a", "b"}}, {}, o).tokenize("axxb"), (Tokens{"a", "<unk>", "b"}));
}

TEST(ByteLevelBpe, AWordOfDroppedBytesEncodesToNothingAlsoFromTheCache) {
  // A word none of whose bytes has a token encodes to no ids, and the word cache stores that empty list (once an
  // undefined memcpy from a null pointer, found by bpe_fuzz under UBSan).
  const ByteLevelBpe drop({"a", "b", "ab"}, {{"a", "b"}});
  for (int pass = 0; pass < 2; ++pass) {
    EXPECT_TRUE(drop.encode("x").empty());
    EXPECT_TRUE(drop.encode("\x01").empty());
    EXPECT_EQ(drop.tokenize("ab x ab"), (Tokens{"ab", "ab"}));
  }
}

TEST(ByteLevelBpe, ConstructorErrors) {
  const std::vector<std::string> tokens = {"a", "b", "ab"};
  EXPECT_THROW_WITH(ByteLevelBpe(tokens, {{"a", "c"}}), ValueError, {"ByteLevelBpe", "merge 0", "\"c\"", "not in"});
  EXPECT_THROW_WITH(ByteLevelBpe(tokens, {{"b", "a"}}), ValueError, {"\"ba\"", "not in the vocabulary"});
  EXPECT_THROW_WITH(ByteLevelBpe({"a", "a"}, {}), ValueError, {"token 1", "duplicates token 0"});
  EXPECT_THROW_WITH(ByteLevelBpe({"a", ""}, {}), ValueError, {"token 1", "empty"});
  AddedToken t;
  t.content = "<s>";
  t.id = 7;
  EXPECT_THROW_WITH(ByteLevelBpe(tokens, {}, {t}), ValueError, {"added token 0", "\"<s>\"", "id 7", "expected 3"});
  t.content = "ab";
  EXPECT_THROW_WITH(ByteLevelBpe(tokens, {}, {t}), ValueError, {"expected 2", "its id in the vocabulary"});
  ByteLevelBpe::Options o;
  o.unk_token = "<unk>";
  EXPECT_THROW_WITH(ByteLevelBpe(tokens, {}, {}, o), ValueError, {"unk_token", "\"<unk>\""});
  const ByteLevelBpe ok(tokens, {});
  EXPECT_THROW_WITH(ok.decode({3}), ValueError, {"ByteLevelBpe::decode", "id 3", "3 tokens"});
  EXPECT_THROW_WITH(ok.decode({-1}), ValueError, {"id -1"});
  EXPECT_THROW_WITH(ok.token(9), ValueError, {"ByteLevelBpe::token", "id 9"});
  EXPECT_THROW_WITH(ok.id("zz"), ValueError, {"ByteLevelBpe::id", "\"zz\""});
}

TEST(ByteLevelBpe, SaveAndLoadFiles) {
  const fs::path d = fresh_dir("save");
  const Small s;
  const ByteLevelBpe t = s.make();
  t.save(d);
  const std::string merges = read_file(d / "merges.txt");
  EXPECT_EQ(merges.substr(0, 14), "#version: 0.2\n");
  EXPECT_NE(merges.find("\nhe ll\n"), std::string::npos);
  const ByteLevelBpe back = ByteLevelBpe::from_files(d / "vocab.json", d / "merges.txt", s.specials());
  EXPECT_EQ(back.size(), t.size());
  EXPECT_EQ(back.merges(), t.merges());
  for (const char* text : {"hello world", "lowly <|endoftext|> yellow", "\xFF\x01"})
    EXPECT_EQ(back.encode(text), t.encode(text));

  t.save_tokenizer_json(d / "tokenizer.json");
  const ByteLevelBpe from_json = ByteLevelBpe::from_tokenizer_json(d / "tokenizer.json");
  EXPECT_EQ(from_json.encode("hello<|endoftext|> world"), t.encode("hello<|endoftext|> world"));
  EXPECT_TRUE(from_json.is_special(id_of(t, "<|endoftext|>")));

  // from_pretrained: tokenizer.json first; without it vocab.json + merges.txt with <|endoftext|> special.
  EXPECT_EQ(ByteLevelBpe::from_pretrained(d).encode("x<|endoftext|>"), t.encode("x<|endoftext|>"));
  fs::remove(d / "tokenizer.json");
  const ByteLevelBpe files = ByteLevelBpe::from_pretrained(d);
  EXPECT_EQ(files.encode("x<|endoftext|>"), t.encode("x<|endoftext|>"));
  write_file(d / "tokenizer_config.json", R"({"add_prefix_space": true, "eos_token": {"content": "<|endoftext|>"}})");
  EXPECT_EQ(ByteLevelBpe::from_pretrained(d).tokenize("world"), (Tokens{"\xC4\xA0world"}));
}

TEST(ByteLevelBpe, TokenizerJsonMergesInBothFormats) {
  const fs::path d = fresh_dir("merge_formats");
  const std::string vocab = R"({"a": 0, "b": 1, "ab": 2, "c": 3, "abc": 4})";
  const std::string head = R"({"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false}, "model": {"type": "BPE", "vocab": )";
  const ByteLevelBpe old_format =
      ByteLevelBpe::from_tokenizer_json(write_file(d / "old.json", head + vocab + R"(, "merges": ["a b", "ab c"]}})"));
  const ByteLevelBpe new_format = ByteLevelBpe::from_tokenizer_json(
      write_file(d / "new.json", head + vocab + R"(, "merges": [["a", "b"], ["ab", "c"]]}})"));
  EXPECT_EQ(old_format.tokenize("abc"), (Tokens{"abc"}));
  EXPECT_EQ(new_format.tokenize("abc"), (Tokens{"abc"}));
}

TEST(ByteLevelBpe, FileErrorsNameTheFileAndWhere) {
  const fs::path d = fresh_dir("errors");
  const std::string missing = (d / "absent.json").string();
  EXPECT_THROW_WITH(ByteLevelBpe::from_tokenizer_json(missing), IoError,
                    {"ByteLevelBpe::from_tokenizer_json", missing, "no such file"});
  const fs::path bad = write_file(d / "bad.json", "{\"model\": {\"type\": \"BPE\",");
  EXPECT_THROW_WITH(ByteLevelBpe::from_tokenizer_json(bad), IoError, {bad.string(), "malformed JSON"});
  const fs::path wp = write_file(d / "wp.json", R"({"model": {"type": "WordPiece", "vocab": {}}})");
  EXPECT_THROW_WITH(ByteLevelBpe::from_tokenizer_json(wp), IoError, {"wp.json", "model.type", "\"WordPiece\"",
                                                                     "expected \"BPE\""});
  const std::string pre = R"("pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false})";
  const fs::path merge = write_file(
      d / "merge.json", "{" + pre + R"(, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b", 3]}})");
  EXPECT_THROW_WITH(ByteLevelBpe::from_tokenizer_json(merge), IoError, {"merge.json", "model.merges[1]", "number"});
  const fs::path oov = write_file(
      d / "oov.json", "{" + pre + R"(, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a a"]}})");
  EXPECT_THROW_WITH(ByteLevelBpe::from_tokenizer_json(oov), IoError, {"oov.json", "model.merges[0]", "\"aa\"", "not in"});
  const fs::path ids = write_file(d / "ids.json", "{" + pre + R"(, "model": {"type": "BPE", "vocab": {"a": 0, "b": 5}, "merges": []}})");
  EXPECT_THROW_WITH(ByteLevelBpe::from_tokenizer_json(ids), IoError, {"ids.json", "model.vocab.\"b\"", "id 5", "out of range"});
  const fs::path dropout = write_file(d / "dropout.json", "{" + pre + R"(, "model": {"type": "BPE", "dropout": 0.1, "vocab": {}, "merges": []}})");
  EXPECT_THROW_WITH(ByteLevelBpe::from_tokenizer_json(dropout), IoError, {"dropout.json", "model.dropout", "not supported"});
  const fs::path norm = write_file(d / "norm.json", R"({"normalizer": {"type": "NFC"}, "model": {"type": "BPE", "vocab": {}, "merges": []}})");
  EXPECT_THROW_WITH(ByteLevelBpe::from_tokenizer_json(norm), IoError, {"norm.json", "normalizer", "not supported"});
  const fs::path split = write_file(d / "split.json", R"({"pre_tokenizer": {"type": "Whitespace"}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}})");
  EXPECT_THROW_WITH(ByteLevelBpe::from_tokenizer_json(split), IoError, {"split.json", "pre_tokenizer.type", "\"Whitespace\""});
  const fs::path added = write_file(d / "added.json", "{" + pre + R"(, "added_tokens": [{"id": 1}], "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}})");
  EXPECT_THROW_WITH(ByteLevelBpe::from_tokenizer_json(added), IoError, {"added.json", "added_tokens[0].content", "missing"});

  write_file(d / "vocab.json", R"({"a": 0, "b": 1, "ab": 2})");
  const fs::path merges = write_file(d / "merges.txt", "#version: 0.2\na b\nab\n");
  EXPECT_THROW_WITH(ByteLevelBpe::from_files(d / "vocab.json", merges), IoError,
                    {"ByteLevelBpe::from_files", merges.string() + ":3", "\"ab\"", "two tokens"});
  write_file(merges, "a b\nb a\n");
  EXPECT_THROW_WITH(ByteLevelBpe::from_files(d / "vocab.json", merges), IoError,
                    {merges.string() + ":2", "\"ba\"", "not in the vocabulary"});
  EXPECT_THROW_WITH(ByteLevelBpe::from_files(d / "vocab.json", d / "none.txt"), IoError, {"none.txt", "no such file"});
  write_file(d / "list.json", "[1, 2]");
  EXPECT_THROW_WITH(ByteLevelBpe::from_files(d / "list.json", merges), IoError, {"list.json", "expected an object"});
  EXPECT_THROW_WITH(ByteLevelBpe::from_pretrained(d / "nope"), IoError, {"from_pretrained", "no such folder"});
  EXPECT_THROW_WITH(Small().make().save(d / "vocab.json" / "sub"), IoError, {"ByteLevelBpe::save"});
}

TEST(ByteLevelBpe, ManyThreadsEncodeWithOneInstance) {
  const ByteLevelBpe t = Small().make();
  std::vector<std::string> texts;
  std::mt19937_64 gen(3);
  static const char* words[] = {"hello", " world", " low", "ly", " yellow", "<|endoftext|>", " \xFF", "\n\n", " 42"};
  for (int i = 0; i < 64; ++i) {
    std::string s;
    for (int w = 0; w < 50; ++w) s += words[gen() % std::size(words)];
    texts.push_back(s);
  }
  std::vector<Ids> expected;
  for (const std::string& s : texts) expected.push_back(t.encode(s));
  // A second instance interleaved on the same threads: each keeps its own cache.
  std::vector<std::string> tokens = byte_level_alphabet();
  tokens.push_back("he");
  const ByteLevelBpe other(tokens, {{"h", "e"}});
  std::vector<std::thread> threads;
  std::vector<int> failures(4, 0);
  for (int k = 0; k < 4; ++k)
    threads.emplace_back([&, k] {
      for (int round = 0; round < 20; ++round)
        for (std::size_t i = 0; i < texts.size(); ++i) {
          if (t.encode(texts[i]) != expected[i]) ++failures[static_cast<std::size_t>(k)];
          if (other.decode(other.encode(texts[i])) != texts[i]) ++failures[static_cast<std::size_t>(k)];
        }
    });
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(failures, std::vector<int>(4, 0));
}

TEST(ByteLevelAlphabet, GptTwoMap) {
  const std::vector<std::string> a = byte_level_alphabet();
  ASSERT_EQ(a.size(), 256u);
  EXPECT_EQ(a[0], "!");
  EXPECT_EQ(a[93], "~");
  EXPECT_EQ(a[94], "\xC2\xA1");   // U+00A1
  EXPECT_EQ(a[188], "\xC4\x80");  // U+0100: byte 0
  EXPECT_EQ(byte_level_char(' '), U'\u0120');
  EXPECT_EQ(byte_level_char('\n'), U'\u010A');
  EXPECT_EQ(byte_level_char(0xAD), U'\u0143');
  for (int b = 0; b < 256; ++b) EXPECT_EQ(byte_level_byte(byte_level_char(static_cast<unsigned char>(b))), b);
  EXPECT_EQ(byte_level_byte(U'\u0144'), -1);
  EXPECT_EQ(byte_level_byte(U' '), -1);
  EXPECT_EQ(to_byte_level("a b\n"), "a\xC4\xA0" "b\xC4\x8A");
  std::string back;
  EXPECT_TRUE(append_from_byte_level(back, "a\xC4\xA0" "b\xC4\x8A"));
  EXPECT_EQ(back, "a b\n");
  EXPECT_FALSE(append_from_byte_level(back, "a b"));  // a plain space is not in the alphabet
  EXPECT_EQ(back, "a b\n");
}

}  // namespace byte_level_bpe_test
