#include "eigenformer/text/tokenizer.hpp"

#include <filesystem>
#include <fstream>
#include <list>
#include <string>
#include <string_view>
#include <vector>

#include "support/test_support.hpp"

#ifndef EIGENFORMER_TEST_TMP_DIR
#define EIGENFORMER_TEST_TMP_DIR "/tmp"
#endif

using namespace eigenformer;
using namespace eigenformer::text;

namespace tokenizer_test {

namespace fs = std::filesystem;
using Tokens = std::vector<std::string>;
using Ids = std::vector<std::int64_t>;

namespace {

// tokenization_test.py test_full_tokenizer's vocabulary (no [PAD] or [MASK]).
Vocab bert_test_vocab() {
  return Vocab({"[UNK]", "[CLS]", "[SEP]", "want", "##want", "##ed", "wa", "un", "runn", "##ing", ","});
}

// A vocabulary with each lower-case letter in both forms, plus a few whole words.
Vocab letters_vocab() {
  std::vector<std::string> t = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "!", "the", "cat", "sat",
                                "on", "mat", "##ing", "run"};
  for (char c = 'a'; c <= 'z'; ++c) {
    t.emplace_back(1, c);
    t.push_back(std::string("##") + c);
  }
  return Vocab(t);
}

// ids of a single word in letters_vocab(), for building expectations.
std::int64_t id_of(const Tokenizer& tok, const std::string& token) { return tok.vocab().id(token); }

}  // namespace

// tokenization_test.py test_full_tokenizer.
TEST(Tokenizer, BertFullTokenizerCase) {
  const Tokenizer tok(bert_test_vocab());
  EXPECT_EQ(tok.tokenize("UNwant\u00E9d,running"), (Tokens{"un", "##want", "##ed", ",", "runn", "##ing"}));
  EncodeOptions o;
  o.add_special_tokens = false;
  EXPECT_EQ(tok.encode("UNwant\u00E9d,running", o), (Ids{7, 4, 5, 10, 8, 9}));
  EXPECT_EQ(tok.encode("UNwant\u00E9d,running"), (Ids{1, 7, 4, 5, 10, 8, 9, 2}));
  EXPECT_EQ(tok.encode(""), (Ids{1, 2}));
}

TEST(Tokenizer, InvalidUtf8NeverCrashesAndIsDropped) {
  const Tokenizer tok(bert_test_vocab());
  const Ids clean = tok.encode("unwanted running");
  EXPECT_EQ(tok.encode("un\xFFwanted runn\xE2\x82ing"), clean);
  EXPECT_EQ(tok.encode("unwanted\xC0\xAF running\xF0\x9F\x98"), clean);
  EXPECT_EQ(tok.encode("\xED\xA0\x80unwanted running"), clean);
  EXPECT_EQ(tok.encode(std::string("\0\xFF\xFE\x80", 4)), (Ids{1, 2}));
}

TEST(Tokenizer, HeadTruncation) {
  const Tokenizer tok(letters_vocab());
  const std::string text = "the cat sat on the mat, the cat sat on the mat!";
  EncodeOptions all;
  all.max_length = 0;
  const Ids full = tok.encode(text, all);
  ASSERT_EQ(full.size(), 16u);  // [CLS] 14 tokens [SEP]
  EncodeOptions o;
  o.max_length = 8;
  Ids expected(full.begin(), full.begin() + 7);
  expected.push_back(tok.vocab().sep_id());
  EXPECT_EQ(tok.encode(text, o), expected);
  o.max_length = 2;
  EXPECT_EQ(tok.encode(text, o), (Ids{2, 3}));
  o.max_length = 16;  // exactly enough: nothing dropped
  EXPECT_EQ(tok.encode(text, o), full);
  // The limit counts pieces, not words: "running" is run + ##ing, and the piece limit may split a word.
  o.max_length = 4;
  EXPECT_EQ(tok.encode("running cat", o), (Ids{2, id_of(tok, "run"), id_of(tok, "##n"), 3}));
}

TEST(Tokenizer, HeadTailTruncationKeepsBothEnds) {
  const Tokenizer tok(letters_vocab());
  std::string text;
  for (char c = 'a'; c <= 'z'; ++c) text += std::string(1, c) + " ";
  EncodeOptions all;
  all.max_length = 0;
  const Ids full = tok.encode(text, all);  // [CLS] a..z [SEP]
  ASSERT_EQ(full.size(), 28u);
  EncodeOptions o;
  o.max_length = 10;
  o.truncation = Truncation::head_tail;
  o.head_tokens = 3;
  Ids expected = {full[0], full[1], full[2], full[3]};                 // [CLS] a b c
  expected.insert(expected.end(), full.end() - 6, full.end());         // u v w x y z [SEP]
  EXPECT_EQ(tok.encode(text, o), expected);
  o.head_tokens = 0;  // tail only
  Ids tail = {full[0]};
  tail.insert(tail.end(), full.end() - 9, full.end());
  EXPECT_EQ(tok.encode(text, o), tail);
  o.head_tokens = 8;  // head only
  Ids head(full.begin(), full.begin() + 9);
  head.push_back(full.back());
  EXPECT_EQ(tok.encode(text, o), head);
  o.head_tokens = -1;  // default: a quarter of the 8 free places
  const Ids def = tok.encode(text, o);
  ASSERT_EQ(def.size(), 10u);
  EXPECT_EQ(def[2], id_of(tok, "b"));
  EXPECT_EQ(def[3], id_of(tok, "u"));
  // Short texts are not touched.
  EXPECT_EQ(tok.encode("a b c", o), tok.encode("a b c", all));
}

TEST(Tokenizer, PaddingAndAttentionMask) {
  const Tokenizer tok(letters_vocab());
  EncodeOptions o;
  o.max_length = 8;
  o.pad_to_max_length = true;
  const Ids ids = tok.encode("the cat", o);
  EXPECT_EQ(ids, (Ids{2, id_of(tok, "the"), id_of(tok, "cat"), 3, 0, 0, 0, 0}));
  const Encoding e = tok.encode_with_mask("the cat", o);
  EXPECT_EQ(e.ids, ids);
  EXPECT_EQ(e.attention_mask, (Ids{1, 1, 1, 1, 0, 0, 0, 0}));
  const Encoding full = tok.encode_with_mask("a b c d e f g h i j", o);  // truncated: no padding
  EXPECT_EQ(full.ids.size(), 8u);
  EXPECT_EQ(full.attention_mask, Ids(8, 1));
  o.pad_to_max_length = false;
  EXPECT_EQ(tok.encode_with_mask("the cat", o).attention_mask, (Ids{1, 1, 1, 1}));
}

TEST(Tokenizer, EncodeBatchPadsToTheLongest) {
  const Tokenizer tok(letters_vocab());
  const std::vector<std::string> texts = {"the cat", "the cat sat on the mat", ""};
  const BatchEncoding b = tok.encode_batch(texts);
  ASSERT_EQ(b.ids.shape(), (Shape{3, 8}));
  ASSERT_EQ(b.padding_mask.shape(), (Shape{3, 8}));
  const Ids row1 = tok.encode(texts[1]);
  for (Index t = 0; t < 8; ++t) {
    EXPECT_EQ(b.ids.data()[8 + t], row1[static_cast<std::size_t>(t)]);
    EXPECT_FALSE(b.padding_mask.data()[8 + t]);
  }
  const Ids row0 = {2, id_of(tok, "the"), id_of(tok, "cat"), 3, 0, 0, 0, 0};
  const Ids row2 = {2, 3, 0, 0, 0, 0, 0, 0};
  for (Index t = 0; t < 8; ++t) {
    EXPECT_EQ(b.ids.data()[t], row0[static_cast<std::size_t>(t)]) << t;
    EXPECT_EQ(b.padding_mask.data()[t], t >= 4) << t;
    EXPECT_EQ(b.ids.data()[16 + t], row2[static_cast<std::size_t>(t)]) << t;
    EXPECT_EQ(b.padding_mask.data()[16 + t], t >= 2) << t;
  }
}

TEST(Tokenizer, EncodeBatchToMaxLengthAndOtherRanges) {
  const Tokenizer tok(letters_vocab());
  EncodeOptions o;
  o.max_length = 5;
  o.pad_to_max_length = true;
  const std::list<std::string_view> texts = {"the cat sat on the mat", "cat"};
  const BatchEncoding b = tok.encode_batch(texts, o);
  ASSERT_EQ(b.ids.shape(), (Shape{2, 5}));
  EXPECT_EQ(b.ids.data()[4], 3);  // truncated row ends with [SEP]
  EXPECT_EQ(b.ids.data()[5 + 2], 3);
  EXPECT_TRUE(b.padding_mask.data()[5 + 3]);
  EXPECT_FALSE(b.padding_mask.data()[4]);

  const BatchEncoding empty = tok.encode_batch(std::vector<std::string>{}, o);
  EXPECT_EQ(empty.ids.shape(), (Shape{0, 5}));
  const char* raw[] = {"cat", "mat"};
  EXPECT_EQ(tok.encode_batch(raw).ids.shape(), (Shape{2, 3}));
}

TEST(Tokenizer, DecodeJoinsContinuationsAndSkipsSpecials) {
  const Tokenizer tok(letters_vocab());
  const Ids ids = tok.encode("the cats sat running!");
  EXPECT_EQ(tok.decode(ids), "the cats sat running !");
  EXPECT_EQ(tok.decode(ids, false), "[CLS] the cats sat running ! [SEP]");
  EXPECT_EQ(tok.decode({}), "");
  EXPECT_EQ(tok.decode({id_of(tok, "##s"), id_of(tok, "cat")}), "##s cat");  // HF keeps a leading "##"
  EXPECT_EQ(tok.decode({id_of(tok, "cat"), 1, id_of(tok, "##s")}), "cats");  // [UNK] is special too (HF)
  EXPECT_THROW_WITH(tok.decode({5, 99}), ValueError, {"Tokenizer::decode", "id 99", "out of range"});
  EXPECT_THROW_WITH(tok.decode({-1}), ValueError, {"id -1"});
}

TEST(Tokenizer, DecodeOfEncodeRoundTripsLowerCaseText) {
  const Tokenizer tok(letters_vocab());
  for (const std::string text : {"the cat sat on the mat", "running cats sing", "a quick brown fox", "x"})
    EXPECT_EQ(tok.decode(tok.encode(text)), text);
  // Modulo spacing: punctuation becomes its own word, extra spaces vanish.
  EXPECT_EQ(tok.decode(tok.encode("  The CAT,sat!  ")), "the cat , sat !");
}

TEST(Tokenizer, FromFileAndErrors) {
  const fs::path d = fs::path(EIGENFORMER_TEST_TMP_DIR) / "tokenizer_from_file";
  fs::remove_all(d);
  fs::create_directories(d);
  bert_test_vocab().save(d / "vocab.txt");
  const Tokenizer tok = Tokenizer::from_file(d / "vocab.txt");
  EXPECT_EQ(tok.tokenize("unwanted running"), (Tokens{"un", "##want", "##ed", "runn", "##ing"}));

  EncodeOptions o;
  o.max_length = 10;
  o.pad_to_max_length = true;
  EXPECT_THROW_WITH(tok.encode("unwanted", o), ValueError, {"pad_id", "\"[PAD]\"", "vocab.txt"});
  EXPECT_THROW_WITH(tok.encode_batch(std::vector<std::string>{"un", "unwanted"}), ValueError, {"\"[PAD]\""});
  o.pad_to_max_length = false;
  o.max_length = 1;
  EXPECT_THROW_WITH(tok.encode("x", o), ValueError, {"Tokenizer::encode", "max_length is 1", "at least 2"});
  o.max_length = -3;
  EXPECT_THROW_WITH(tok.encode("x", o), ValueError, {"max_length is -3"});
  o.max_length = 0;
  o.pad_to_max_length = true;
  EXPECT_THROW_WITH(tok.encode_batch(std::vector<std::string>{}, o), ValueError,
                    {"Tokenizer::encode_batch", "pad_to_max_length"});
  o.pad_to_max_length = false;
  o.max_length = 10;
  o.truncation = Truncation::head_tail;
  o.head_tokens = 9;
  EXPECT_THROW_WITH(tok.encode("x", o), ValueError, {"head_tokens is 9", "0..8"});
  o.head_tokens = -2;
  EXPECT_THROW_WITH(tok.encode("x", o), ValueError, {"head_tokens is -2"});
  EXPECT_THROW_WITH(Tokenizer::from_file(d / "absent.txt"), IoError, {"absent.txt"});
  EXPECT_THROW_WITH(Tokenizer(Vocab({"a"})), ValueError, {"\"[UNK]\""});
  // Without special tokens max_length may be 1.
  o = EncodeOptions{};
  o.max_length = 1;
  o.add_special_tokens = false;
  EXPECT_EQ(tok.encode("unwanted", o), (Ids{7}));
}

}  // namespace tokenizer_test
