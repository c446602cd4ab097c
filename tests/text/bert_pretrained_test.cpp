#include "eigenformer/text/bert_pretrained.hpp"

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "support/test_support.hpp"

#ifndef EIGENFORMER_TEST_TMP_DIR
#define EIGENFORMER_TEST_TMP_DIR "/tmp"
#endif

using namespace eigenformer;
using namespace eigenformer::text;

namespace bert_pretrained_test {

namespace fs = std::filesystem;
using Tokens = std::vector<std::string>;
using Ids = std::vector<std::int64_t>;

namespace {

fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::path(EIGENFORMER_TEST_TMP_DIR) / ("bert_pretrained_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

fs::path write_file(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary);
  out << bytes;
  return p;
}

const std::vector<std::string> kTokens = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "##s",
                                          "caf", "##e", "\u00E9", "cafe", "Hello", "!", "\u03C3", "##\u03C3",
                                          "\u03C2"};

std::string vocab_object() {
  std::string v = "{";
  for (std::size_t i = 0; i < kTokens.size(); ++i)
    v += (i ? ", " : "") + nlohmann::json(kTokens[i]).dump() + ": " + std::to_string(i);
  return v + "}";
}

const char* const kTemplate = R"("post_processor": {"type": "TemplateProcessing",
  "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
             {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
  "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
           {"SpecialToken": {"id": "[SEP]", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}},
           {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
  "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                     "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}})";

// A tokenizer.json as transformers writes bert-base-uncased's, over kTokens, with the given normalizer.
std::string tokenizer_json(const std::string& normalizer, const std::string& post = kTemplate) {
  std::string added = "[";
  for (int i = 0; i < 5; ++i)
    added += std::string(i ? ", " : "") + R"({"id": )" + std::to_string(i) + R"(, "content": ")" + kTokens[i] +
             R"(", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true})";
  added += "]";
  return R"({"version": "1.0", "truncation": null, "padding": null, "added_tokens": )" + added +
         R"(, "normalizer": )" + normalizer + R"(, "pre_tokenizer": {"type": "BertPreTokenizer"}, )" + post +
         R"(, "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true}, "model": {"type": "WordPiece",
         "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100, "vocab": )" +
         vocab_object() + "}}";
}

const char* const kUncased =
    R"({"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true, "strip_accents": null,
        "lowercase": true})";

}  // namespace

TEST(BertPretrained, TokenizerJsonUncased) {
  const fs::path d = fresh_dir("uncased");
  const Tokenizer tok = load_bert_tokenizer_json(write_file(d / "tokenizer.json", tokenizer_json(kUncased)));
  EXPECT_EQ(tok.tokenize("Hello WORLDs caf\u00E9!"), (Tokens{"hello", "world", "##s", "cafe", "!"}));
  EXPECT_EQ(tok.encode("hello"), (Ids{2, 5, 3}));
  // Special tokens in the text are found before normalization (so "[CLS]" is not lower-cased and split).
  EXPECT_EQ(tok.encode("[CLS]hello[SEP] [MASK]"), (Ids{2, 2, 5, 3, 4, 3}));
  // tokenizers' rules: Σ lower-cases to σ everywhere, also at the end of a word.
  EXPECT_EQ(tok.tokenize("\u03A3\u03A3"), (Tokens{"\u03C3", "##\u03C3"}));
  EXPECT_EQ(tok.basic_tokenizer().options().rules, BertRules::rust);
  EXPECT_TRUE(tok.basic_tokenizer().options().strip_accents);  // null follows lowercase
}

TEST(BertPretrained, TokenizerJsonCasedOptionsAreHonoured) {
  const fs::path d = fresh_dir("cased");
  const Tokenizer cased = load_bert_tokenizer_json(write_file(
      d / "cased.json", tokenizer_json(R"({"type": "BertNormalizer", "strip_accents": null, "lowercase": false})")));
  // Cased: no lower-casing, no accent stripping ("café" is caf + ##é, and ##é is not in the vocabulary).
  EXPECT_EQ(cased.tokenize("Hello hello caf\u00E9"), (Tokens{"Hello", "hello", "[UNK]"}));
  const Tokenizer keep = load_bert_tokenizer_json(write_file(
      d / "keep.json", tokenizer_json(R"({"type": "BertNormalizer", "strip_accents": false, "lowercase": true})")));
  EXPECT_EQ(keep.tokenize("CAF\u00C9"), (Tokens{"[UNK]"}));  // "café" is not in the vocabulary
  EXPECT_FALSE(keep.basic_tokenizer().options().strip_accents);
  const Tokenizer strip = load_bert_tokenizer_json(write_file(
      d / "strip.json", tokenizer_json(R"({"type": "BertNormalizer", "strip_accents": true, "lowercase": false})")));
  EXPECT_EQ(strip.tokenize("Hello caf\u00E9"), (Tokens{"Hello", "cafe"}));
  const Tokenizer none = load_bert_tokenizer_json(write_file(d / "none.json", tokenizer_json("null")));
  EXPECT_EQ(none.tokenize("Hello\x01hello"), (Tokens{"[UNK]"}));  // no cleaning: the control stays in the word
}

TEST(BertPretrained, BertProcessingAndPairs) {
  const fs::path d = fresh_dir("pairs");
  const Tokenizer tok = load_bert_tokenizer_json(write_file(
      d / "tokenizer.json",
      tokenizer_json(kUncased, R"("post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2]})")));
  const Encoding e = tok.encode_pair("hello world", "cafe");
  EXPECT_EQ(e.ids, (Ids{2, 5, 6, 3, 11, 3}));
  EXPECT_EQ(e.token_type_ids, (Ids{0, 0, 0, 0, 1, 1}));
  EXPECT_EQ(e.attention_mask, (Ids{1, 1, 1, 1, 1, 1}));
}

TEST(BertPretrained, FolderWithVocabTxtAndTokenizerConfig) {
  const fs::path d = fresh_dir("folder");
  std::string txt;
  for (const std::string& t : kTokens) txt += t + "\n";
  write_file(d / "vocab.txt", txt);
  const Tokenizer uncased = load_bert_tokenizer(d);  // no tokenizer_config.json: bert-base-uncased's defaults
  EXPECT_EQ(uncased.tokenize("Hello caf\u00E9 [SEP]"), (Tokens{"hello", "cafe", "[SEP]"}));
  write_file(d / "tokenizer_config.json", R"({"do_lower_case": false, "tokenize_chinese_chars": true,
      "unk_token": {"content": "[UNK]", "__type": "AddedToken"}, "sep_token": "[SEP]"})");
  const Tokenizer cased = load_bert_tokenizer(d);
  EXPECT_EQ(cased.tokenize("Hello hello!"), (Tokens{"Hello", "hello", "!"}));
  EXPECT_FALSE(cased.basic_tokenizer().options().strip_accents);  // strip_accents absent: follows do_lower_case
  EXPECT_EQ(cased.encode("[MASK]"), (Ids{2, 4, 3}));
  // tokenizer.json, when present, wins.
  write_file(d / "tokenizer.json", tokenizer_json(kUncased));
  EXPECT_EQ(load_bert_tokenizer(d).tokenize("Hello"), (Tokens{"hello"}));
}

TEST(BertPretrained, ErrorsNameTheFileAndTheJsonPath) {
  const fs::path d = fresh_dir("errors");
  EXPECT_THROW_WITH(load_bert_tokenizer(d / "absent"), IoError, {"load_bert_tokenizer", "no such folder"});
  EXPECT_THROW_WITH(load_bert_tokenizer(d), IoError, {"neither tokenizer.json nor vocab.txt"});
  const fs::path missing = d / "missing.json";
  EXPECT_THROW_WITH(load_bert_tokenizer_json(missing), IoError, {"load_bert_tokenizer_json", missing.string()});
  const fs::path bad = write_file(d / "bad.json", "{\"model\": [1, 2,");
  EXPECT_THROW_WITH(load_bert_tokenizer_json(bad), IoError, {"bad.json", "malformed JSON"});
  const fs::path bpe = write_file(d / "bpe.json", R"({"model": {"type": "BPE", "vocab": {}, "merges": []}})");
  EXPECT_THROW_WITH(load_bert_tokenizer_json(bpe), IoError, {"bpe.json", "model.type", "\"BPE\"", "\"WordPiece\""});
  const fs::path no_model = write_file(d / "no_model.json", R"({"normalizer": null})");
  EXPECT_THROW_WITH(load_bert_tokenizer_json(no_model), IoError, {"no_model.json", "model: missing"});
  std::string j = tokenizer_json(R"({"type": "Lowercase"})");
  EXPECT_THROW_WITH(load_bert_tokenizer_json(write_file(d / "norm.json", j)), IoError,
                    {"norm.json", "normalizer.type", "\"Lowercase\""});
  j = tokenizer_json(R"({"type": "BertNormalizer", "lowercase": "yes"})");
  EXPECT_THROW_WITH(load_bert_tokenizer_json(write_file(d / "lower.json", j)), IoError,
                    {"lower.json", "normalizer.lowercase", "expected true or false", "string"});
  j = tokenizer_json(kUncased, R"("post_processor": {"type": "RobertaProcessing"})");
  EXPECT_THROW_WITH(load_bert_tokenizer_json(write_file(d / "post.json", j)), IoError,
                    {"post.json", "post_processor.type", "\"RobertaProcessing\""});
  j = tokenizer_json(kUncased, R"("post_processor": {"type": "TemplateProcessing", "single": [], "pair": []})");
  EXPECT_THROW_WITH(load_bert_tokenizer_json(write_file(d / "template.json", j)), IoError,
                    {"template.json", "post_processor", "not BERT's template"});
  j = tokenizer_json(kUncased);
  j.replace(j.find("\"hello\": 5"), 10, "\"hello\": 99");
  EXPECT_THROW_WITH(load_bert_tokenizer_json(write_file(d / "ids.json", j)), IoError,
                    {"ids.json", "model.vocab.\"hello\"", "id 99"});
  j = tokenizer_json(kUncased);
  j.replace(j.find("\"unk_token\": \"[UNK]\""), 20, "\"unk_token\": \"<unk>\"");
  EXPECT_THROW_WITH(load_bert_tokenizer_json(write_file(d / "unk.json", j)), IoError, {"unk.json", "lacks", "\"<unk>\""});
  write_file(d / "vocab.txt", "[UNK]\nx\n");
  write_file(d / "tokenizer_config.json", R"({"do_lower_case": 1})");
  EXPECT_THROW_WITH(load_bert_tokenizer(d), IoError, {"tokenizer_config.json", "do_lower_case", "number"});
}

TEST(BertPretrained, SavedTokenizerFilesLoadBackTheSameTokenizer) {
  const fs::path d = fs::path(EIGENFORMER_TEST_TMP_DIR) / "bert_pretrained_save";
  fs::remove_all(d);
  for (bool lowercase : {true, false}) {
    Tokenizer::Options o;
    o.basic.lowercase = lowercase;
    o.basic.strip_accents = lowercase;
    o.basic.split_cjk = !lowercase;
    const Tokenizer t(Vocab({"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "Hello", "w", "##orld", "\xc3\xa9"}), o);
    save_bert_tokenizer(t, d);
    const Tokenizer back = load_bert_tokenizer(d);
    EXPECT_EQ(back.vocab().tokens(), t.vocab().tokens());
    EXPECT_EQ(back.basic_tokenizer().options().lowercase, lowercase);
    EXPECT_EQ(back.basic_tokenizer().options().strip_accents, lowercase);
    EXPECT_EQ(back.basic_tokenizer().options().split_cjk, !lowercase);
    for (const char* text : {"Hello world", "\xc3\xa9t\xc3\xa9"}) EXPECT_EQ(back.encode(text), t.encode(text)) << text;
  }
  EXPECT_TRUE(fs::exists(d / "special_tokens_map.json"));
}

}  // namespace bert_pretrained_test
