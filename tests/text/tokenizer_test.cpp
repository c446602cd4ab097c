#include "eigenformer/text/tokenizer.hpp"

#include <algorithm>
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

TEST(Tokenizer, EncodePairSegmentsAndTypeIds) {
  const Tokenizer tok(letters_vocab());
  const std::int64_t the = id_of(tok, "the"), cat = id_of(tok, "cat"), mat = id_of(tok, "mat");
  Encoding e = tok.encode_pair("the cat", "mat");
  EXPECT_EQ(e.ids, (Ids{2, the, cat, 3, mat, 3}));
  EXPECT_EQ(e.token_type_ids, (Ids{0, 0, 0, 0, 1, 1}));
  EXPECT_EQ(e.attention_mask, (Ids{1, 1, 1, 1, 1, 1}));
  EncodeOptions o;
  o.max_length = 9;
  o.pad_to_max_length = true;
  e = tok.encode_pair("the cat", "mat", o);
  EXPECT_EQ(e.ids, (Ids{2, the, cat, 3, mat, 3, 0, 0, 0}));
  EXPECT_EQ(e.token_type_ids, (Ids{0, 0, 0, 0, 1, 1, 0, 0, 0}));
  EXPECT_EQ(e.attention_mask, (Ids{1, 1, 1, 1, 1, 1, 0, 0, 0}));
  o = EncodeOptions{};
  o.add_special_tokens = false;
  e = tok.encode_pair("the", "cat", o);
  EXPECT_EQ(e.ids, (Ids{the, cat}));
  EXPECT_EQ(e.token_type_ids, (Ids{0, 1}));
  EXPECT_EQ(tok.encode_with_mask("the cat").token_type_ids, (Ids{0, 0, 0, 0}));
}

// tokenizers' longest_first: n1 <= n2 after a swap; n2 = max(n1, room - n1); both cut to room / 2 and
// room / 2 + room % 2 (the longer side, or b on a tie, gets the odd piece) when that still does not fit.
TEST(Tokenizer, EncodePairLongestFirstTruncation) {
  const Tokenizer tok(letters_vocab());
  const auto letters = [](int n, char c) {
    std::string s;
    for (int i = 0; i < n; ++i) s += std::string(1, c) + " ";
    return s;
  };
  const auto sides = [&](int a, int b, Index max_length) {
    EncodeOptions o;
    o.max_length = max_length;
    const Encoding e = tok.encode_pair(letters(a, 'a'), letters(b, 'b'), o);
    const auto zeros = std::count(e.token_type_ids.begin(), e.token_type_ids.end(), 0);
    return std::make_pair(static_cast<int>(zeros) - 2, static_cast<int>(e.ids.size() - zeros) - 1);
  };
  EXPECT_EQ(sides(10, 7, 8), std::make_pair(3, 2));   // both cut, the longer a gets the odd piece
  EXPECT_EQ(sides(7, 10, 8), std::make_pair(2, 3));
  EXPECT_EQ(sides(6, 6, 8), std::make_pair(2, 3));    // a tie: b gets it
  EXPECT_EQ(sides(10, 2, 8), std::make_pair(3, 2));   // only the longer one cut
  EXPECT_EQ(sides(10, 1, 8), std::make_pair(4, 1));
  EXPECT_EQ(sides(3, 2, 8), std::make_pair(3, 2));    // fits: nothing cut
  EXPECT_EQ(sides(20, 9, 8), std::make_pair(2, 3));   // both read only up to 8 pieces first: a tie
  EXPECT_EQ(sides(20, 7, 8), std::make_pair(3, 2));
  EXPECT_EQ(sides(5, 5, 3), std::make_pair(0, 0));
  EncodeOptions o;
  o.max_length = 2;
  EXPECT_THROW_WITH(tok.encode_pair("a", "b", o), ValueError, {"Tokenizer::encode_pair", "max_length is 2", "at least 3"});
  o.max_length = 10;
  o.truncation = Truncation::head_tail;
  EXPECT_THROW_WITH(tok.encode_pair("a", "b", o), ValueError,
                    {"Tokenizer::encode_pair", "options.truncation is Truncation::head_tail", "expected Truncation::head"});
}

TEST(Tokenizer, AddedTokensAreFoundBeforeBasicTokenization) {
  Tokenizer::Options o;
  for (const char* s : {"[CLS]", "[SEP]", "[MASK]"}) {
    AddedToken t;
    t.content = s;
    t.id = letters_vocab().id(s);
    o.added_tokens.push_back(t);
  }
  const Tokenizer tok(letters_vocab(), o);
  EXPECT_EQ(tok.tokenize("the [MASK] sat[SEP]on"), (Tokens{"the", "[MASK]", "sat", "[SEP]", "on"}));
  EXPECT_EQ(tok.tokenize("[mask]"), (Tokens{"[UNK]", "m", "##a", "##s", "##k", "[UNK]"}));  // case matters
  EncodeOptions e;
  e.max_length = 4;
  EXPECT_EQ(tok.encode("[MASK] the cat", e), (Ids{2, 4, id_of(tok, "the"), 3}));
  EXPECT_EQ(tok.added_tokens().size(), 3u);
  AddedToken wrong;
  wrong.content = "[MASK]";
  wrong.id = 3;
  o.added_tokens = {wrong};
  EXPECT_THROW_WITH(Tokenizer(letters_vocab(), o), ValueError, {"added token \"[MASK]\"", "id 3", "(4;"});
  // Without added tokens (the default), "[MASK]" is plain text.
  EXPECT_EQ(Tokenizer(letters_vocab()).tokenize("[MASK]").size(), 6u);
}

}  // namespace tokenizer_test
