// Parity with Hugging Face tokenizers 0.23.2: the ids of tests/text/fixtures/tokenizer_parity.json (made by
// make_tokenizer_fixtures.js next to it) for bert-base-uncased's and GPT-2's real vocabularies, fetched into
// data/tokenizers by scripts/fetch_tokenizer_data.sh, and the merges its BpeTrainer learned from a small corpus.
#include <filesystem>
#include <string>
#include <vector>

#include "eigenformer/text/bert_pretrained.hpp"
#include "eigenformer/text/bpe_trainer.hpp"
#include "eigenformer/text/byte_level_bpe.hpp"
#include "support/test_support.hpp"
#include "text/data_support.hpp"

#ifndef EIGENFORMER_TEST_TMP_DIR
#define EIGENFORMER_TEST_TMP_DIR "/tmp"
#endif

using namespace eigenformer;
using namespace eigenformer::text;

namespace parity_test {

namespace fs = std::filesystem;
using Ids = std::vector<std::int64_t>;
using eigenformer::testing::data_path;
using eigenformer::testing::parity_fixture;

namespace {

const char* const kBert = "tokenizers/bert-base-uncased";
const char* const kGpt2 = "tokenizers/gpt2";

std::string from_hex(const std::string& hex) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out;
}

const nlohmann::json& texts() {
  const nlohmann::json& f = parity_fixture();
  EXPECT_TRUE(f.is_object()) << "tests/text/fixtures/tokenizer_parity.json is missing or unreadable";
  static const nlohmann::json empty = nlohmann::json::array();
  return f.is_object() ? f["texts"] : empty;
}

// Compares encode(text) with the fixture's ids of config for every text that has them; returns the count compared.
template <typename Encode>
int expect_all_equal(const std::string& config, Encode&& encode) {
  int compared = 0, differing = 0;
  for (const nlohmann::json& t : texts()) {
    if (!t["ids"].contains(config)) continue;
    const std::string text = t["text"].get<std::string>();
    const Ids expected = t["ids"][config].get<Ids>();
    const Ids got = encode(text);
    ++compared;
    if (got != expected) {
      ++differing;
      std::size_t at = 0;
      while (at < got.size() && at < expected.size() && got[at] == expected[at]) ++at;
      ADD_FAILURE() << config << ": \"" << t["name"].get<std::string>() << "\" differs at position " << at << " of "
                    << expected.size() << " (got " << (at < got.size() ? std::to_string(got[at]) : "end")
                    << ", expected " << (at < expected.size() ? std::to_string(expected[at]) : "end") << ")";
    }
  }
  EXPECT_GT(compared, 0) << config;
  EXPECT_EQ(differing, 0) << config << ": " << differing << " of " << compared << " texts differ";
  return compared;
}

// bert-base-uncased's vocabulary with the normalizer options of a fixture configuration.
Tokenizer bert_with(const nlohmann::json& options) {
  Tokenizer::Options o;
  o.basic.rules = BertRules::rust;
  o.basic.lowercase = options["lowercase"].get<bool>();
  o.basic.strip_accents = options["strip_accents"].get<bool>();
  o.basic.split_cjk = options["handle_chinese_chars"].get<bool>();
  Vocab vocab = Vocab::load(data_path(kBert) / "vocab.txt");
  for (const char* s : {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}) {
    AddedToken t;
    t.content = s;
    t.id = vocab.id(s);
    o.added_tokens.push_back(t);
  }
  return Tokenizer(std::move(vocab), o);
}

fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::path(EIGENFORMER_TEST_TMP_DIR) / ("parity_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

}  // namespace

TEST(TokenizerParity, FixtureInvalidUtf8TextsAreTheLossyDecodingOfTheirBytes) {
  int checked = 0;
  for (const nlohmann::json& t : texts()) {
    if (!t.contains("bytes_hex")) continue;
    const std::string bytes = from_hex(t["bytes_hex"].get<std::string>());
    EXPECT_FALSE(is_valid_utf8(bytes));
    EXPECT_EQ(sanitize_utf8(bytes), t["text"].get<std::string>()) << t["name"];
    ++checked;
  }
  EXPECT_GE(checked, 4);
}

TEST(TokenizerParity, BertUncasedFromTokenizerJson) {
  EIGENFORMER_NEED_DATA(std::string(kBert) + "/tokenizer.json");
  const Tokenizer tok = load_bert_tokenizer(data_path(kBert));  // picks tokenizer.json
  EXPECT_GE(expect_all_equal("bert_uncased", [&](const std::string& s) { return tok.encode(s, {0}); }), 60);
}

TEST(TokenizerParity, BertUncasedFromVocabTxtAndTokenizerConfig) {
  EIGENFORMER_NEED_DATA(std::string(kBert) + "/vocab.txt");
  const fs::path d = fresh_dir("vocab_txt");
  fs::copy_file(data_path(kBert) / "vocab.txt", d / "vocab.txt");
  fs::copy_file(data_path(kBert) / "tokenizer_config.json", d / "tokenizer_config.json");
  const Tokenizer tok = load_bert_tokenizer(d);
  expect_all_equal("bert_uncased", [&](const std::string& s) { return tok.encode(s, {0}); });
  // Without tokenizer_config.json the defaults are bert-base-uncased's.
  fs::remove(d / "tokenizer_config.json");
  const Tokenizer plain = load_bert_tokenizer(d);
  expect_all_equal("bert_uncased", [&](const std::string& s) { return plain.encode(s, {0}); });
}

TEST(TokenizerParity, BertNormalizerOptions) {
  EIGENFORMER_NEED_DATA(std::string(kBert) + "/vocab.txt");
  const nlohmann::json& configs = parity_fixture()["bert_configs"];
  ASSERT_EQ(configs.size(), 5u);
  for (auto it = configs.begin(); it != configs.end(); ++it) {
    const Tokenizer tok = bert_with(it.value());
    expect_all_equal(it.key(), [&](const std::string& s) { return tok.encode(s, {0}); });
  }
}

TEST(TokenizerParity, BertSentencePairsWithLongestFirstTruncation) {
  EIGENFORMER_NEED_DATA(std::string(kBert) + "/tokenizer.json");
  const Tokenizer tok = load_bert_tokenizer_json(data_path(kBert) / "tokenizer.json");
  const nlohmann::json& all = texts();
  int compared = 0;
  for (const nlohmann::json& p : parity_fixture()["pairs"]) {
    EncodeOptions o;
    o.max_length = p["max_length"].get<Index>();
    const Encoding e = tok.encode_pair(all[p["a"].get<std::size_t>()]["text"].get<std::string>(),
                                       all[p["b"].get<std::size_t>()]["text"].get<std::string>(), o);
    EXPECT_EQ(e.ids, p["ids"].get<Ids>()) << "pair " << p["a"] << ", " << p["b"] << ", max_length " << o.max_length;
    EXPECT_EQ(e.token_type_ids, p["type_ids"].get<Ids>()) << "pair " << p["a"] << ", " << p["b"];
    EXPECT_EQ(e.attention_mask, Ids(e.ids.size(), 1));
    ++compared;
  }
  EXPECT_EQ(compared, 10);
}

TEST(TokenizerParity, Gpt2FromTokenizerJson) {
  EIGENFORMER_NEED_DATA(std::string(kGpt2) + "/tokenizer.json");
  const ByteLevelBpe tok = ByteLevelBpe::from_tokenizer_json(data_path(kGpt2) / "tokenizer.json");
  ASSERT_EQ(tok.size(), 50257);
  EXPECT_GE(expect_all_equal("gpt2", [&](const std::string& s) { return tok.encode(s); }), 60);
  for (const nlohmann::json& t : texts()) {  // decode gives the text back byte for byte
    const std::string text = t["text"].get<std::string>();
    EXPECT_EQ(tok.decode(tok.encode(text)), text) << t["name"];
  }
}

TEST(TokenizerParity, Gpt2FromVocabJsonAndMergesTxt) {
  EIGENFORMER_NEED_DATA(std::string(kGpt2) + "/merges.txt");
  // A folder without tokenizer.json: vocab.json, merges.txt and <|endoftext|> as the special token.
  const fs::path d = fresh_dir("gpt2_files");
  fs::copy_file(data_path(kGpt2) / "vocab.json", d / "vocab.json");
  fs::copy_file(data_path(kGpt2) / "merges.txt", d / "merges.txt");
  const ByteLevelBpe tok = ByteLevelBpe::from_pretrained(d);
  expect_all_equal("gpt2", [&](const std::string& s) { return tok.encode(s); });
  EXPECT_TRUE(tok.is_special(50256));

  // Saved and read back: the same files, the same ids.
  tok.save(d / "saved");
  const ByteLevelBpe again = ByteLevelBpe::from_files(d / "saved" / "vocab.json", d / "saved" / "merges.txt",
                                                      tok.added_tokens());
  EXPECT_EQ(again.merges(), tok.merges());
  expect_all_equal("gpt2", [&](const std::string& s) { return again.encode(s); });
  tok.save_tokenizer_json(d / "tokenizer.json");
  const ByteLevelBpe from_json = ByteLevelBpe::from_tokenizer_json(d / "tokenizer.json");
  expect_all_equal("gpt2", [&](const std::string& s) { return from_json.encode(s); });
}

TEST(TokenizerParity, Gpt2RawInvalidBytesRoundTrip) {
  EIGENFORMER_NEED_DATA(std::string(kGpt2) + "/tokenizer.json");
  const ByteLevelBpe tok = ByteLevelBpe::from_tokenizer_json(data_path(kGpt2) / "tokenizer.json");
  for (const nlohmann::json& t : texts()) {
    if (!t.contains("bytes_hex")) continue;
    const std::string bytes = from_hex(t["bytes_hex"].get<std::string>());
    EXPECT_EQ(tok.decode(tok.encode(bytes)), bytes) << t["name"];
  }
}

// No data needed: the corpus is the fixture's first e-mail excerpts, one sequence per line as tokenizers reads a
// training file (each line with its line break).
TEST(TokenizerParity, BpeTrainerLearnsTheMergesOfTokenizers) {
  const nlohmann::json& f = parity_fixture()["bpe_trainer"];
  const auto n = f["corpus_texts"].get<std::size_t>();
  std::vector<std::string> corpus;
  for (const nlohmann::json& t : texts())
    if (corpus.size() < n && t["name"].get<std::string>().rfind("email", 0) == 0) corpus.push_back(t["text"]);
  ASSERT_EQ(corpus.size(), n);
  std::string joined;
  for (const std::string& t : corpus) joined += t + "\n";
  std::vector<std::string> lines;
  for (std::size_t b = 0; b < joined.size();) {
    const std::size_t e = joined.find('\n', b) + 1;
    lines.push_back(joined.substr(b, e - b));
    b = e;
  }
  BpeTrainer::Options o;  // tokenizers' BpeTrainer defaults: vocab_size 30000, min_frequency 0
  o.full_byte_alphabet = false;
  const ByteLevelBpe bpe = BpeTrainer(o).train(lines);
  const auto vocab = f["vocab"].get<std::vector<std::string>>();
  ASSERT_EQ(bpe.size(), static_cast<Index>(vocab.size()));
  for (std::size_t i = 0; i < vocab.size(); ++i) ASSERT_EQ(bpe.token(static_cast<std::int64_t>(i)), vocab[i]) << i;
  const auto merges = f["merges"].get<std::vector<std::string>>();
  const std::vector<ByteLevelBpe::Merge> got = bpe.merges();
  ASSERT_EQ(got.size(), merges.size());
  for (std::size_t i = 0; i < merges.size(); ++i) ASSERT_EQ(got[i].first + " " + got[i].second, merges[i]) << i;
}

}  // namespace parity_test
