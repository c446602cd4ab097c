#include "eigenformer/data/dataset.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "support/test_support.hpp"

#ifndef EIGENFORMER_TEST_DATA_DIR
#define EIGENFORMER_TEST_DATA_DIR "."
#endif
#ifndef EIGENFORMER_TEST_TMP_DIR
#define EIGENFORMER_TEST_TMP_DIR "/tmp"
#endif

using namespace eigenformer;
using namespace eigenformer::data;

namespace dataset_test {

namespace fs = std::filesystem;

namespace {

/// A file named `name` holding exactly `content` (binary: CRLF stays CRLF) in a per-suite scratch directory.
fs::path write_file(const std::string& name, const std::string& content) {
  const fs::path dir = fs::path(EIGENFORMER_TEST_TMP_DIR) / "data_dataset";
  fs::create_directories(dir);
  const fs::path p = dir / name;
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << content;
  return p;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

TextDataset make_dataset(Index n) {
  std::vector<Example> ex;
  for (Index i = 0; i < n; ++i) ex.push_back({"text " + std::to_string(i), i % 3 == 0 ? "a" : "b"});
  return TextDataset(std::move(ex), "made");
}

// ---------------------------------------------------------------------------------------------------- JSONL

TEST(ReadJsonl, StringAndIntegerLabels) {
  const fs::path p = write_file("labels.jsonl",
                                "{\"text\": \"good\", \"label\": \"pos\"}\n"
                                "{\"text\": \"bad\", \"label\": 0}\n"
                                "{\"label\": -3, \"text\": \"worse\", \"id\": 7}\n"
                                "{\"text\": \"big\", \"label\": 18446744073709551615}\n");
  const TextDataset d = read_jsonl(p);
  ASSERT_EQ(d.size(), 4);
  EXPECT_EQ(d[0], (Example{"good", "pos"}));
  EXPECT_EQ(d[1], (Example{"bad", "0"}));
  EXPECT_EQ(d[2], (Example{"worse", "-3"}));
  EXPECT_EQ(d[3], (Example{"big", "18446744073709551615"}));
  EXPECT_EQ(d.source(), p.string());
}

TEST(ReadJsonl, UnicodeAndEscapes) {
  const fs::path p = write_file("unicode.jsonl",
                                "{\"text\": \"caf\xC3\xA9 \xE4\xB8\x96\xE7\x95\x8C \xF0\x9F\x99\x82\", "
                                "\"label\": \"raw\"}\n"
                                "{\"text\": \"caf\\u00e9 \\ud83d\\ude42\", \"label\": \"escaped\"}\n"
                                "{\"text\": \"line1\\nline2\\r\\n\\ttab \\\"q\\\" \\\\\", \"label\": \"ctl\"}\n");
  const TextDataset d = read_jsonl(p);
  ASSERT_EQ(d.size(), 3);
  EXPECT_EQ(d[0].text, "caf\xC3\xA9 \xE4\xB8\x96\xE7\x95\x8C \xF0\x9F\x99\x82");
  EXPECT_EQ(d[1].text, "caf\xC3\xA9 \xF0\x9F\x99\x82");  // \u escapes become UTF-8, the surrogate pair one code point
  EXPECT_EQ(d[2].text, "line1\nline2\r\n\ttab \"q\" \\");
}

TEST(ReadJsonl, BlankLinesCrlfBomAndNoFinalNewline) {
  const fs::path p = write_file("blank.jsonl",
                                "\xEF\xBB\xBF{\"text\": \"a\", \"label\": \"x\"}\r\n"
                                "\r\n"
                                "   \t\n"
                                "\n"
                                "{\"text\": \"b\", \"label\": \"y\"}");
  const TextDataset d = read_jsonl(p);
  ASSERT_EQ(d.size(), 2);
  EXPECT_EQ(d[0], (Example{"a", "x"}));
  EXPECT_EQ(d[1], (Example{"b", "y"}));
  EXPECT_EQ(read_jsonl(write_file("empty.jsonl", "")).size(), 0);
  EXPECT_EQ(read_jsonl(write_file("only_blank.jsonl", "\n\n  \n")).size(), 0);
}

TEST(ReadJsonl, CustomFieldNames) {
  const fs::path p = write_file("fields.jsonl", "{\"sentence\": \"hi\", \"y\": 1, \"label\": \"ignored\"}\n");
  const TextDataset d = read_jsonl(p, "sentence", "y");
  ASSERT_EQ(d.size(), 1);
  EXPECT_EQ(d[0], (Example{"hi", "1"}));
  const TextDataset same = read_jsonl(write_file("same.jsonl", "{\"t\": \"both\"}\n"), "t", "t");
  EXPECT_EQ(same[0], (Example{"both", "both"}));
}

TEST(ReadJsonl, ErrorsNameFileLineAndProblem) {
  const std::string ok = "{\"text\": \"a\", \"label\": \"x\"}\n";
  {
    // Line 4: blank lines count.
    const fs::path p = write_file("bad_json.jsonl", ok + "\n" + ok + "{\"text\": \"a\", \"label\": }\n" + ok);
    EXPECT_THROW_WITH(read_jsonl(p), IoError, {"read_jsonl", p.string(), "line 4:", "bad JSON", "column"});
  }
  {
    const fs::path p = write_file("truncated.jsonl", ok + "{\"text\": \"a\n");
    EXPECT_THROW_WITH(read_jsonl(p), IoError, {p.string(), "line 2:", "bad JSON"});
  }
  {
    const fs::path p = write_file("bad_utf8.jsonl", ok + ok + "{\"text\": \"\xC3\x28\", \"label\": \"x\"}\n");
    EXPECT_THROW_WITH(read_jsonl(p), IoError, {p.string(), "line 3:", "bad JSON"});
  }
  {
    const fs::path p = write_file("not_object.jsonl", "[\"a\", \"x\"]\n");
    EXPECT_THROW_WITH(read_jsonl(p), IoError, {p.string(), "line 1:", "expected a JSON object", "array"});
  }
  {
    const fs::path p = write_file("no_text.jsonl", ok + ok + "{\"txt\": \"a\", \"label\": \"x\"}\n");
    EXPECT_THROW_WITH(read_jsonl(p), IoError, {p.string(), "line 3:", "missing field \"text\""});
  }
  {
    const fs::path p = write_file("no_label.jsonl", ok + "{\"text\": \"a\"}\n");
    EXPECT_THROW_WITH(read_jsonl(p), IoError, {p.string(), "line 2:", "missing field \"label\""});
    EXPECT_THROW_WITH(read_jsonl(p, "text", "y"), IoError, {"line 1:", "missing field \"y\""});
  }
  {
    const fs::path p = write_file("text_type.jsonl", "{\"text\": 5, \"label\": \"x\"}\n");
    EXPECT_THROW_WITH(read_jsonl(p), IoError, {"line 1:", "field \"text\" is an integer", "expected a string"});
  }
  const std::vector<std::pair<std::string, std::string>> bad_labels = {
      {"1.5", "a floating-point number"}, {"true", "a boolean"}, {"null", "null"}, {"[1]", "an array"},
      {"{}", "an object"}};
  for (const auto& [label, type] : bad_labels) {
    const fs::path p = write_file("label_type.jsonl", ok + "{\"text\": \"a\", \"label\": " + label + "}\n");
    EXPECT_THROW_WITH(read_jsonl(p), IoError,
                      {p.string(), "line 2:", "field \"label\" is " + type, "expected a string or an integer"});
  }
}

TEST(ReadJsonl, MissingFileAndDirectory) {
  const fs::path missing = fs::path(EIGENFORMER_TEST_TMP_DIR) / "data_dataset" / "does_not_exist.jsonl";
  EXPECT_THROW_WITH(read_jsonl(missing), IoError, {"read_jsonl", "cannot open", missing.string()});
  const fs::path dir = fs::path(EIGENFORMER_TEST_TMP_DIR) / "data_dataset" / "a_directory";
  fs::create_directories(dir);
  EXPECT_THROW_WITH(read_jsonl(dir), IoError, {"read_jsonl", dir.string(), "is a directory"});
}

// ---------------------------------------------------------------------------------------------------- CSV

TEST(ReadCsv, QuotesEmbeddedDelimitersAndNewlines) {
  const fs::path p = write_file("quotes.csv",
                                "id,text,label\n"
                                "1,plain,pos\n"
                                "2,\"with, comma\",neg\n"
                                "3,\"say \"\"hi\"\"\",pos\n"
                                "4,\"two\nlines\r\nand crlf\",neg\n"
                                "5,\"\",\"quoted label\"\n"
                                "6,,x\n"
                                "7,it's 5\" tall,y\n");
  const TextDataset d = read_csv(p, "text", "label");
  ASSERT_EQ(d.size(), 7);
  EXPECT_EQ(d[0], (Example{"plain", "pos"}));
  EXPECT_EQ(d[1], (Example{"with, comma", "neg"}));
  EXPECT_EQ(d[2], (Example{"say \"hi\"", "pos"}));
  EXPECT_EQ(d[3], (Example{"two\nlines\r\nand crlf", "neg"}));  // line breaks inside quotes kept byte for byte
  EXPECT_EQ(d[4], (Example{"", "quoted label"}));
  EXPECT_EQ(d[5], (Example{"", "x"}));
  EXPECT_EQ(d[6], (Example{"it's 5\" tall", "y"}));  // a quote inside an unquoted field is literal
  EXPECT_EQ(d.source(), p.string());
}

TEST(ReadCsv, CrlfBlankLinesBomAndNoFinalNewline) {
  const fs::path p = write_file("crlf.csv",
                                "\xEF\xBB\xBFlabel,text\r\n"
                                "a,first\r\n"
                                "\r\n"
                                "b,\"second\r\nrow\"\r\n"
                                "\n"
                                "c,cr\rinside\r\n"
                                "d,last");
  const TextDataset d = read_csv(p, "text", "label");
  ASSERT_EQ(d.size(), 4);
  EXPECT_EQ(d[0], (Example{"first", "a"}));
  EXPECT_EQ(d[1], (Example{"second\r\nrow", "b"}));
  EXPECT_EQ(d[2], (Example{"cr\rinside", "c"}));  // a lone '\r' is not a line end
  EXPECT_EQ(d[3], (Example{"last", "d"}));
  EXPECT_EQ(read_csv(write_file("header_only.csv", "text,label\r\n"), "text", "label").size(), 0);
}

TEST(ReadCsv, Tsv) {
  const fs::path p = write_file("data.tsv",
                                "sentence\tlabel\n"
                                "a, b and c\t1\n"
                                "\"tab\tinside\"\t0\n"
                                "\"multi\nline\"\t1\n");
  const TextDataset d = read_csv(p, "sentence", "label", '\t');
  ASSERT_EQ(d.size(), 3);
  EXPECT_EQ(d[0], (Example{"a, b and c", "1"}));
  EXPECT_EQ(d[1], (Example{"tab\tinside", "0"}));
  EXPECT_EQ(d[2], (Example{"multi\nline", "1"}));
}

TEST(ReadCsv, ErrorsNameFileLineAndProblem) {
  {
    // The quoted field opens on line 3 and never closes.
    const fs::path p = write_file("unterminated.csv", "text,label\na,b\n\"open,x\nmore\n");
    EXPECT_THROW_WITH(read_csv(p, "text", "label"), IoError,
                      {"read_csv", p.string(), "line 3:", "unterminated quoted field"});
  }
  {
    // Lines 2-3 hold one record; the short record starts on line 5 (line 4 is fine).
    const fs::path p = write_file("count.csv", "text,label,id\n\"two\nlines\",x,1\nb,y,2\nc,z\n");
    EXPECT_THROW_WITH(read_csv(p, "text", "label"), IoError,
                      {p.string(), "line 5:", "record has 2 fields, expected 3"});
    const fs::path q = write_file("count_long.csv", "text,label\na,b,c\n");
    EXPECT_THROW_WITH(read_csv(q, "text", "label"), IoError, {q.string(), "line 2:", "record has 3 fields"});
  }
  {
    const fs::path p = write_file("no_column.csv", "sentence,label\na,b\n");
    EXPECT_THROW_WITH(read_csv(p, "text", "label"), IoError,
                      {p.string(), "line 1:", "missing column \"text\"", "\"sentence\", \"label\""});
    EXPECT_THROW_WITH(read_csv(p, "sentence", "y"), IoError, {"missing column \"y\""});
  }
  {
    const fs::path p = write_file("dup_column.csv", "text,label,text\na,b,c\n");
    EXPECT_THROW_WITH(read_csv(p, "text", "label"), IoError, {p.string(), "column \"text\" appears more than once"});
  }
  {
    const fs::path p = write_file("after_quote.csv", "text,label\n\"multi\nline\"x,b\n");
    EXPECT_THROW_WITH(read_csv(p, "text", "label"), IoError,
                      {p.string(), "line 3:", "unexpected character 'x' after the closing quote"});
  }
  {
    const fs::path p = write_file("empty.csv", "\n\r\n");
    EXPECT_THROW_WITH(read_csv(p, "text", "label"), IoError, {p.string(), "is empty", "header"});
  }
  const fs::path ok = write_file("ok.csv", "text,label\na,b\n");
  EXPECT_THROW_WITH(read_csv(ok, "text", "label", '"'), ValueError, {"read_csv", "delimiter"});
  EXPECT_THROW_WITH(read_csv(ok, "text", "label", '\n'), ValueError, {"read_csv", "delimiter", "line break"});
  const fs::path missing = fs::path(EIGENFORMER_TEST_TMP_DIR) / "data_dataset" / "missing.csv";
  EXPECT_THROW_WITH(read_csv(missing, "text", "label"), IoError, {"read_csv", "cannot open", missing.string()});
}

// ---------------------------------------------------------------------------------------------------- LabelVocab

TEST(LabelVocab, FromDatasetIsSortedAndIndependentOfOrder) {
  const TextDataset d1({{"1", "spam"}, {"2", "ham"}, {"3", "spam"}, {"4", "eggs"}}, "d1");
  const TextDataset d2({{"1", "eggs"}, {"2", "spam"}, {"3", "ham"}}, "d2");
  const LabelVocab v = LabelVocab::from_dataset(d1);
  EXPECT_EQ(v.labels(), (std::vector<std::string>{"eggs", "ham", "spam"}));
  EXPECT_EQ(v, LabelVocab::from_dataset(d2));
  ASSERT_EQ(v.size(), 3);
  for (Index i = 0; i < v.size(); ++i) EXPECT_EQ(v.id(v.label(i)), i);
  EXPECT_EQ(v.id("ham"), 1);
  EXPECT_TRUE(v.contains("spam"));
  EXPECT_FALSE(v.contains("Spam"));
  EXPECT_EQ(v.encode(d1), (std::vector<std::int64_t>{2, 1, 2, 0}));
  EXPECT_EQ(LabelVocab::from_dataset(TextDataset()).size(), 0);
}

TEST(LabelVocab, UnknownLabelsAndIdsThrow) {
  const LabelVocab v({"neg", "pos"});
  EXPECT_THROW_WITH(v.id("neutral"), ValueError, {"LabelVocab::id", "unknown label \"neutral\"", "\"neg\", \"pos\""});
  EXPECT_THROW_WITH(v.label(2), ValueError, {"LabelVocab::label", "id 2", "2 labels"});
  EXPECT_THROW_WITH(v.label(-1), ValueError, {"LabelVocab::label", "id -1"});
  EXPECT_THROW_WITH(v.encode(TextDataset({{"t", "pos"}, {"t", "meh"}}, "d")), ValueError, {"unknown label \"meh\""});
  EXPECT_THROW_WITH(LabelVocab({"a", "b", "a"}), ValueError, {"LabelVocab", "\"a\"", "more than once"});
  EXPECT_THROW_WITH(LabelVocab({"a", ""}), ValueError, {"LabelVocab", "label 1 is empty"});
  EXPECT_THROW_WITH(LabelVocab({"a\nb"}), ValueError, {"LabelVocab", "line break"});
  EXPECT_THROW_WITH(LabelVocab::from_dataset(TextDataset({{"t", "x"}, {"u", ""}}, "src")), ValueError,
                    {"LabelVocab::from_dataset", "example 2 of src", "the label is empty"});
}

TEST(LabelVocab, ErrorsNameTheFileAndTheLine) {
  // Lines count from 1 and blank lines count: the examples of a file remember the line they were read from.
  const fs::path valid = write_file("unknown_label.jsonl",
                                    "{\"text\": \"a\", \"label\": \"pos\"}\n"
                                    "\n"
                                    "{\"text\": \"b\", \"label\": \"neg\"}\n"
                                    "{\"text\": \"c\", \"label\": \"neutral\"}\n");
  const TextDataset d = read_jsonl(valid);
  ASSERT_EQ(d.size(), 3);
  EXPECT_EQ(d[0].line, 1);
  EXPECT_EQ(d[2].line, 4);
  const LabelVocab v({"neg", "pos"});
  EXPECT_THROW_WITH(v.encode(d), ValueError,
                    {"LabelVocab::encode", valid.string() + ", line 4", "unknown label \"neutral\"",
                     "known labels: \"neg\", \"pos\""});
  // An empty training file gives an empty vocabulary, which says so rather than calling every label unknown.
  EXPECT_THROW_WITH(LabelVocab::from_dataset(read_jsonl(write_file("empty.jsonl", ""))).encode(d), ValueError,
                    {valid.string() + ", line 1", "the label vocabulary is empty"});
  const fs::path blank_label = write_file("blank_label.jsonl",
                                          "{\"text\": \"a\", \"label\": \"pos\"}\n"
                                          "{\"text\": \"b\", \"label\": \"\"}\n");
  EXPECT_THROW_WITH(LabelVocab::from_dataset(read_jsonl(blank_label)), ValueError,
                    {"LabelVocab::from_dataset", blank_label.string() + ", line 2", "the label is empty"});
  // CSV: the line a record starts on, after a quoted field that spans two lines.
  const fs::path csv = write_file("unknown_label.csv", "text,label\n\"two\nlines\",pos\nthird,maybe\n");
  const TextDataset c = read_csv(csv, "text", "label");
  EXPECT_EQ(c[0].line, 2);
  EXPECT_EQ(c[1].line, 4);
  EXPECT_THROW_WITH(v.encode(c), ValueError, {csv.string() + ", line 4", "unknown label \"maybe\""});
  // Split parts keep the lines of the file.
  const Splits parts = split(d, 1.0, 0.0, 1);
  EXPECT_THROW_WITH(v.encode(parts.train), ValueError, {"line 4"});
}

TEST(LabelVocab, SaveAndLoadRoundTrip) {
  const LabelVocab v({"spam", "ham", "caf\xC3\xA9 label"});  // given order is kept: the file's line order is the id
  const fs::path p = fs::path(EIGENFORMER_TEST_TMP_DIR) / "data_dataset" / "labels.txt";
  fs::create_directories(p.parent_path());
  v.save(p);
  EXPECT_EQ(read_file(p), "spam\nham\ncaf\xC3\xA9 label\n");
  const LabelVocab back = LabelVocab::load(p);
  EXPECT_EQ(back, v);
  EXPECT_EQ(back.id("ham"), 1);
  EXPECT_EQ(LabelVocab::load(write_file("crlf_labels.txt", "b\r\na\r\n")).labels(),
            (std::vector<std::string>{"b", "a"}));
  EXPECT_EQ(LabelVocab::load(write_file("no_newline.txt", "x\ny")).labels(), (std::vector<std::string>{"x", "y"}));
  // Saved atomically: replacing the file leaves no temporary beside it.
  LabelVocab({"only"}).save(p);
  EXPECT_EQ(read_file(p), "only\n");
  for (const auto& e : fs::directory_iterator(p.parent_path()))
    EXPECT_EQ(e.path().filename().string().find("labels.txt.tmp."), std::string::npos) << e.path();
}

TEST(LabelVocab, LoadAndSaveErrors) {
  const fs::path blank = write_file("blank_labels.txt", "a\nb\n\nc\n");
  EXPECT_THROW_WITH(LabelVocab::load(blank), IoError, {"LabelVocab::load", blank.string(), "line 3:", "empty line"});
  const fs::path dup = write_file("dup_labels.txt", "a\nb\na\n");
  EXPECT_THROW_WITH(LabelVocab::load(dup), IoError, {dup.string(), "line 3:", "label \"a\" repeats line 1"});
  const fs::path cr = write_file("cr_labels.txt", "a\nb\rc\n");
  EXPECT_THROW_WITH(LabelVocab::load(cr), IoError, {cr.string(), "line 2:", "carriage return"});
  const fs::path empty = write_file("empty_labels.txt", "");
  EXPECT_THROW_WITH(LabelVocab::load(empty), IoError, {empty.string(), "holds no labels"});
  const fs::path missing = fs::path(EIGENFORMER_TEST_TMP_DIR) / "data_dataset" / "missing_labels.txt";
  EXPECT_THROW_WITH(LabelVocab::load(missing), IoError, {"LabelVocab::load", "cannot open", missing.string()});
  EXPECT_THROW_WITH(LabelVocab().save(missing), ValueError, {"LabelVocab::save", "empty"});
  const fs::path no_dir = fs::path(EIGENFORMER_TEST_TMP_DIR) / "data_dataset" / "no" / "such" / "labels.txt";
  EXPECT_THROW_WITH(LabelVocab({"a"}).save(no_dir), IoError, {"LabelVocab::save", "cannot write", no_dir.string()});
}

// ---------------------------------------------------------------------------------------------------- split

TEST(Split, SizesFollowTheFractions) {
  const auto sizes = [](Index n, double train, double valid) {
    const Splits s = split(make_dataset(n), train, valid, 1);
    return std::vector<Index>{s.train.size(), s.valid.size(), s.test.size()};
  };
  EXPECT_EQ(sizes(10, 0.8, 0.1), (std::vector<Index>{8, 1, 1}));
  EXPECT_EQ(sizes(7, 0.5, 0.25), (std::vector<Index>{4, 1, 2}));  // round(3.5) = 4, round(5.25) = 5
  EXPECT_EQ(sizes(100, 0.29, 0.7), (std::vector<Index>{29, 70, 1}));  // 0.29 * 100 = 28.999999999999996
  EXPECT_EQ(sizes(6046, 0.8, 0.1), (std::vector<Index>{4837, 604, 605}));
  EXPECT_EQ(sizes(5, 1.0, 0.0), (std::vector<Index>{5, 0, 0}));
  EXPECT_EQ(sizes(5, 0.0, 0.0), (std::vector<Index>{0, 0, 5}));
  EXPECT_EQ(sizes(10, 0.7, 0.3), (std::vector<Index>{7, 3, 0}));
  EXPECT_EQ(sizes(10, 1.0, 1e-12), (std::vector<Index>{10, 0, 0}));  // a sum a hair above 1 is forgiven
  EXPECT_EQ(sizes(0, 0.8, 0.1), (std::vector<Index>{0, 0, 0}));
}

TEST(Split, PartsAreDisjointCoverTheDatasetAndKeepItsOrder) {
  const TextDataset d = make_dataset(50);
  const Splits s = split(d, 0.6, 0.2, 7);
  std::vector<std::string> all;
  for (const TextDataset* part : {&s.train, &s.valid, &s.test}) {
    // Each part lists its examples in the dataset's order ("text <i>" with increasing i).
    std::vector<Index> ids;
    for (const Example& e : *part) ids.push_back(std::stoi(e.text.substr(5)));
    EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
    for (const Example& e : *part) {
      all.push_back(e.text);
      EXPECT_EQ(e.label, d[std::stoi(e.text.substr(5))].label);
    }
  }
  std::sort(all.begin(), all.end());
  std::vector<std::string> expected = d.texts();
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(all, expected);
  EXPECT_NE(s.train.source().find("made"), std::string::npos);
  EXPECT_NE(s.valid.source().find("valid"), std::string::npos);
}

TEST(Split, SeededAndDeterministic) {
  const TextDataset d = make_dataset(200);
  const Splits a = split(d, 0.8, 0.1, 42), b = split(d, 0.8, 0.1, 42), c = split(d, 0.8, 0.1, 43);
  EXPECT_EQ(a.train.examples(), b.train.examples());
  EXPECT_EQ(a.valid.examples(), b.valid.examples());
  EXPECT_EQ(a.test.examples(), b.test.examples());
  EXPECT_NE(a.test.examples(), c.test.examples());
  // The test part is the last 20 positions of the portable permutation of the seed (pinned in shuffle_test).
  std::mt19937_64 gen(42);
  std::vector<Index> order = permutation(200, gen);
  std::vector<Index> test_ids(order.begin() + 180, order.end());
  std::sort(test_ids.begin(), test_ids.end());
  ASSERT_EQ(a.test.size(), 20);
  for (Index i = 0; i < 20; ++i) EXPECT_EQ(a.test[i], d[test_ids[static_cast<std::size_t>(i)]]);
}

TEST(Split, BadFractionsThrow) {
  const TextDataset d = make_dataset(10);
  EXPECT_THROW_WITH(split(d, -0.1, 0.1, 0), ValueError, {"split", "train_fraction is -0.1", "[0, 1]"});
  EXPECT_THROW_WITH(split(d, 0.5, 1.5, 0), ValueError, {"split", "valid_fraction is 1.5"});
  EXPECT_THROW_WITH(split(d, std::nan(""), 0.1, 0), ValueError, {"split", "train_fraction is nan"});
  EXPECT_THROW_WITH(split(d, 0.8, 0.3, 0), ValueError, {"split", "train_fraction + valid_fraction is 1.1",
                                                         "at most 1"});
}

TEST(TextDataset, AccessAndTexts) {
  TextDataset d = make_dataset(3);
  d.push_back({"more", "c"});
  EXPECT_EQ(d.size(), 4);
  EXPECT_FALSE(d.empty());
  EXPECT_EQ(d.at(3), (Example{"more", "c"}));
  EXPECT_EQ(d.texts(), (std::vector<std::string>{"text 0", "text 1", "text 2", "more"}));
  EXPECT_THROW_WITH(d.at(4), ValueError, {"TextDataset::at", "index 4", "4 examples"});
  EXPECT_TRUE(TextDataset().empty());
}

// The real corpus, when scripts/fetch_spam_assassin.sh has been run (data/ is never committed). The 27 MB train
// split is only counted: parsing it takes seconds in a debug or sanitizer build.
TEST(ReadJsonl, SpamAssassinSplitsWhenFetched) {
  const fs::path dir = fs::path(EIGENFORMER_TEST_DATA_DIR) / ".." / "data" / "spam";
  if (!fs::exists(dir / "test.jsonl")) GTEST_SKIP() << "run scripts/fetch_spam_assassin.sh to fetch the corpus";
  const TextDataset valid = read_jsonl(dir / "valid.jsonl");
  const TextDataset test = read_jsonl(dir / "test.jsonl");
  EXPECT_EQ(valid.size(), 591);
  EXPECT_EQ(test.size(), 622);
  const std::string train = read_file(dir / "train.jsonl");
  EXPECT_EQ(std::count(train.begin(), train.end(), '\n'), 4833);
  const LabelVocab v = LabelVocab::from_dataset(test);
  EXPECT_EQ(v.labels(), (std::vector<std::string>{"ham", "spam"}));
  const std::vector<std::int64_t> ids = v.encode(test);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 1), 202);
  for (const Example& e : test) EXPECT_NE(e.text.find('\n'), std::string::npos);  // "\n" escapes decoded: headers
}

}  // namespace

}  // namespace dataset_test
