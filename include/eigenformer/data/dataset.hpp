// Labelled text datasets: readers for JSON Lines and CSV/TSV (RFC 4180), the label vocabulary and a seeded
// train/valid/test split (the roles of Hugging Face datasets' load_dataset("json"/"csv") and
// torch.utils.data.random_split).
#pragma once

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "eigenformer/core/config.hpp"
#include "eigenformer/core/error.hpp"
#include "eigenformer/data/shuffle.hpp"
#include "eigenformer/io/file.hpp"

namespace eigenformer::data {

/// One labelled text.
struct Example {
  std::string text;
  std::string label;
  Index line = 0;  // the 1-based line of the file it was read from (where its record starts); 0: not from a file
};

/// Equal texts and labels (where they were read from does not count).
inline bool operator==(const Example& a, const Example& b) { return a.text == b.text && a.label == b.label; }
inline bool operator!=(const Example& a, const Example& b) { return !(a == b); }

/// A list of examples and the name of where they came from (a file name, "train split of ...").
class TextDataset {
 public:
  TextDataset() = default;
  TextDataset(std::vector<Example> examples, std::string source)
      : examples_(std::move(examples)), source_(std::move(source)) {}

  Index size() const { return static_cast<Index>(examples_.size()); }
  bool empty() const { return examples_.empty(); }
  const std::string& source() const { return source_; }
  const std::vector<Example>& examples() const { return examples_; }
  std::vector<Example>& examples() { return examples_; }
  /// Unchecked access (asserted in debug builds).
  const Example& operator[](Index i) const {
    EIGENFORMER_ASSERT(i >= 0 && i < size());
    return examples_[static_cast<std::size_t>(i)];
  }
  /// Checked access: throws ValueError naming the index and the size.
  const Example& at(Index i) const {
    if (i < 0 || i >= size())
      throw ValueError(detail::concat("TextDataset::at: index ", i, " is out of range for ", size(), " examples"));
    return examples_[static_cast<std::size_t>(i)];
  }
  void push_back(Example e) { examples_.push_back(std::move(e)); }
  std::vector<Example>::const_iterator begin() const { return examples_.begin(); }
  std::vector<Example>::const_iterator end() const { return examples_.end(); }

  /// The texts in order (e.g. for a tokenizer).
  std::vector<std::string> texts() const {
    std::vector<std::string> out;
    out.reserve(examples_.size());
    for (const Example& e : examples_) out.push_back(e.text);
    return out;
  }

 private:
  std::vector<Example> examples_;
  std::string source_;
};

namespace detail {

using eigenformer::detail::concat;

/// Where the i-th (0-based) example of a dataset came from, for messages: "train.jsonl, line 7", or
/// "example 8 of <source>" (counted from 1, as lines are) when it was not read from a file.
inline std::string example_place(const TextDataset& dataset, Index i) {
  const Example& e = dataset[i];
  if (e.line > 0) return concat(dataset.source(), ", line ", e.line);
  return concat("example ", i + 1, " of ", dataset.source().empty() ? std::string("the dataset") : dataset.source());
}

/// The whole file in one string (the corpus files are tens of MB).
inline std::string read_text_file(const char* fn, const std::filesystem::path& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw IoError(concat(fn, ": ", path.string(), " is a directory, expected a file"));
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    throw IoError(concat(fn, ": cannot open ", path.string(), " for reading: ",
                         err ? std::strerror(err) : "unknown error"));
  }
  std::string data;
  const auto size = std::filesystem::file_size(path, ec);
  if (!ec) {  // one read into a presized buffer; a short read (the file shrank) keeps what was read
    data.resize(static_cast<std::size_t>(size));
    in.read(data.data(), static_cast<std::streamsize>(size));
    data.resize(static_cast<std::size_t>(in.gcount()));
  }
  char chunk[1 << 16];  // the rest: a file that grew, or one without a size (a pipe)
  while (in.read(chunk, sizeof chunk) || in.gcount() > 0) data.append(chunk, static_cast<std::size_t>(in.gcount()));
  if (in.bad()) throw IoError(concat(fn, ": reading ", path.string(), " failed"));
  return data;
}

/// Drops a leading UTF-8 byte order mark (Windows editors write one).
inline std::string_view skip_bom(std::string_view s) {
  return s.size() >= 3 && s.compare(0, 3, "\xEF\xBB\xBF") == 0 ? s.substr(3) : s;
}

inline bool is_blank(std::string_view line) {
  return line.find_first_not_of(" \t\r") == std::string_view::npos;
}

inline const char* json_type_name(const nlohmann::json& j) {
  if (j.is_number_float()) return "a floating-point number";
  if (j.is_number()) return "an integer";
  switch (j.type()) {
    case nlohmann::json::value_t::null: return "null";
    case nlohmann::json::value_t::boolean: return "a boolean";
    case nlohmann::json::value_t::string: return "a string";
    case nlohmann::json::value_t::array: return "an array";
    case nlohmann::json::value_t::object: return "an object";
    default: return "a binary value";
  }
}

/// nlohmann's parse message without its "[json.exception...] parse error at line 1, column c: " prefix, whose
/// line is always 1 here (each line is parsed alone).
inline std::string json_error_detail(const nlohmann::json::parse_error& e) {
  const std::string what = e.what();
  const auto p = what.find("parse error");
  const auto q = p == std::string::npos ? p : what.find(": ", p);
  return q == std::string::npos ? what : what.substr(q + 2);
}

/// "fn: path, line n: "
inline std::string where(const char* fn, const std::filesystem::path& path, Index line) {
  return concat(fn, ": ", path.string(), ", line ", line, ": ");
}

}  // namespace detail

/// Reads JSON Lines: one object per line holding a string text field and a string or integer label field
/// (integers become their decimal string); blank lines are skipped. Throws IoError naming the file, the 1-based
/// line and the problem (bad JSON, not an object, missing field, wrong type).
inline TextDataset read_jsonl(const std::filesystem::path& path, const std::string& text_field = "text",
                              const std::string& label_field = "label") {
  constexpr const char* fn = "read_jsonl";
  const std::string data = detail::read_text_file(fn, path);
  std::vector<Example> examples;
  std::string_view rest = detail::skip_bom(data);
  for (Index line_no = 1; !rest.empty(); ++line_no) {
    const std::size_t eol = rest.find('\n');
    const std::string_view line = rest.substr(0, eol);
    rest = eol == std::string_view::npos ? std::string_view() : rest.substr(eol + 1);
    if (detail::is_blank(line)) continue;

    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line.begin(), line.end());  // a trailing '\r' (CRLF) is JSON whitespace
    } catch (const nlohmann::json::parse_error& e) {
      throw IoError(detail::concat(detail::where(fn, path, line_no), "bad JSON at column ", e.byte, ": ",
                                   detail::json_error_detail(e)));
    }
    if (!j.is_object())
      throw IoError(detail::concat(detail::where(fn, path, line_no), "expected a JSON object, got ",
                                   detail::json_type_name(j)));
    const auto text_it = j.find(text_field);
    const auto label_it = j.find(label_field);
    if (text_it == j.end())
      throw IoError(detail::concat(detail::where(fn, path, line_no), "missing field \"", text_field, "\""));
    if (label_it == j.end())
      throw IoError(detail::concat(detail::where(fn, path, line_no), "missing field \"", label_field, "\""));
    if (!text_it->is_string())
      throw IoError(detail::concat(detail::where(fn, path, line_no), "field \"", text_field, "\" is ",
                                   detail::json_type_name(*text_it), ", expected a string"));

    Example ex;
    ex.line = line_no;
    if (label_it->is_string())
      ex.label = label_it->get<std::string>();
    else if (label_it->is_number_unsigned())
      ex.label = std::to_string(label_it->get<std::uint64_t>());
    else if (label_it->is_number_integer())
      ex.label = std::to_string(label_it->get<std::int64_t>());
    else
      throw IoError(detail::concat(detail::where(fn, path, line_no), "field \"", label_field, "\" is ",
                                   detail::json_type_name(*label_it), ", expected a string or an integer"));
    ex.text = std::move(text_it->get_ref<std::string&>());  // after the label: the two fields may be the same
    examples.push_back(std::move(ex));
  }
  return TextDataset(std::move(examples), path.string());
}

namespace detail {

/// An RFC 4180 record reader over a buffer: fields separated by the delimiter, records by "\n" or "\r\n"; a
/// field that starts with '"' is quoted ('""' inside is one quote; delimiters and line breaks are literal) and
/// must be followed by a delimiter or the end of the record. A quote inside an unquoted field is kept as is
/// (as Python's csv module does); a '\r' not followed by '\n' is an ordinary character.
class CsvReader {
 public:
  CsvReader(std::string_view data, char delimiter, const char* fn, const std::filesystem::path& path)
      : data_(data), delim_(delimiter), fn_(fn), path_(path) {}

  /// Reads the next non-blank record into fields; false at the end of the data. record_line() is then the line
  /// the record starts on.
  bool next(std::vector<std::string>& fields) {
    while (pos_ < data_.size() && at_record_end()) consume_record_end();  // blank lines
    if (pos_ >= data_.size()) return false;
    record_line_ = line_;
    std::size_t n = 0;
    for (;;) {
      if (n == fields.size()) fields.emplace_back();
      read_field(fields[n++]);
      if (pos_ < data_.size() && data_[pos_] == delim_) {
        ++pos_;
        continue;
      }
      consume_record_end();
      break;
    }
    fields.resize(n);
    return true;
  }
  Index record_line() const { return record_line_; }

 private:
  bool at_record_end() const {
    return data_[pos_] == '\n' ||
           (data_[pos_] == '\r' && (pos_ + 1 == data_.size() || data_[pos_ + 1] == '\n'));
  }
  void consume_record_end() {
    if (pos_ >= data_.size()) return;
    if (data_[pos_] == '\r') ++pos_;
    if (pos_ < data_.size() && data_[pos_] == '\n') {
      ++pos_;
      ++line_;
    }
  }
  void read_field(std::string& out) {
    out.clear();
    if (pos_ < data_.size() && data_[pos_] == '"') {
      read_quoted(out);
      return;
    }
    const std::size_t begin = pos_;
    while (pos_ < data_.size() && data_[pos_] != delim_ && !at_record_end()) ++pos_;
    out.assign(data_.data() + begin, pos_ - begin);
  }
  void read_quoted(std::string& out) {
    const Index start_line = line_;
    ++pos_;  // opening quote
    for (;;) {
      const std::size_t q = data_.find('"', pos_);
      if (q == std::string_view::npos)
        throw IoError(concat(where(fn_, path_, start_line), "unterminated quoted field (no closing '\"' before the ",
                             "end of the file)"));
      line_ += static_cast<Index>(std::count(data_.begin() + static_cast<std::ptrdiff_t>(pos_),
                                             data_.begin() + static_cast<std::ptrdiff_t>(q), '\n'));
      out.append(data_.data() + pos_, q - pos_);
      pos_ = q + 1;
      if (pos_ < data_.size() && data_[pos_] == '"') {  // "" is an escaped quote
        out.push_back('"');
        ++pos_;
        continue;
      }
      break;
    }
    if (pos_ < data_.size() && data_[pos_] != delim_ && !at_record_end())
      throw IoError(concat(where(fn_, path_, line_), "unexpected character '", data_[pos_],
                           "' after the closing quote of a quoted field (expected the delimiter or a line end)"));
  }

  std::string_view data_;
  std::size_t pos_ = 0;
  char delim_;
  const char* fn_;
  const std::filesystem::path& path_;
  Index line_ = 1;
  Index record_line_ = 1;
};

inline std::string join_names(const std::vector<std::string>& names) {
  std::string out;
  for (std::size_t i = 0; i < names.size(); ++i) out += (i ? ", \"" : "\"") + names[i] + "\"";
  return out;
}

}  // namespace detail

/// Reads CSV (delimiter ',') or TSV (delimiter '\t') with a header row, quoting per RFC 4180 (doubled quotes,
/// delimiters and line breaks inside quotes, CRLF); blank lines are skipped. Throws IoError naming the file, the
/// line and the problem (unterminated quote, wrong field count, missing column), ValueError for a delimiter that
/// cannot work ('"', '\n', '\r').
inline TextDataset read_csv(const std::filesystem::path& path, const std::string& text_column,
                            const std::string& label_column, char delimiter = ',') {
  constexpr const char* fn = "read_csv";
  if (delimiter == '"' || delimiter == '\n' || delimiter == '\r')
    throw ValueError(detail::concat(fn, ": delimiter is ", delimiter == '"' ? "'\"'" : "a line break",
                                    ", expected a character other than a quote or a line break"));
  const std::string data = detail::read_text_file(fn, path);
  detail::CsvReader reader(detail::skip_bom(data), delimiter, fn, path);

  std::vector<std::string> header;
  if (!reader.next(header)) throw IoError(detail::concat(fn, ": ", path.string(), " is empty, expected a header row"));
  auto find_column = [&](const std::string& name) {
    const auto it = std::find(header.begin(), header.end(), name);
    if (it == header.end())
      throw IoError(detail::concat(detail::where(fn, path, reader.record_line()), "missing column \"", name,
                                   "\" in the header (columns: ", detail::join_names(header), ")"));
    if (std::find(it + 1, header.end(), name) != header.end())
      throw IoError(detail::concat(detail::where(fn, path, reader.record_line()), "column \"", name,
                                   "\" appears more than once in the header"));
    return static_cast<std::size_t>(it - header.begin());
  };
  const std::size_t text_col = find_column(text_column), label_col = find_column(label_column);

  std::vector<Example> examples;
  std::vector<std::string> fields;
  while (reader.next(fields)) {
    if (fields.size() != header.size())
      throw IoError(detail::concat(detail::where(fn, path, reader.record_line()), "record has ", fields.size(),
                                   " fields, expected ", header.size(), " (as the header)"));
    Example ex;
    ex.line = reader.record_line();
    ex.label = fields[label_col];  // copied first: the two columns may be the same
    ex.text = std::move(fields[text_col]);
    examples.push_back(std::move(ex));
  }
  return TextDataset(std::move(examples), path.string());
}

/// The labels of a task and their ids: id i is the i-th label. Built from a dataset the labels are sorted (byte
/// order), so the ids do not depend on the order of the examples.
class LabelVocab {
 public:
  LabelVocab() = default;
  /// Ids in the given order; throws ValueError on an empty label, a line break inside a label or a duplicate.
  explicit LabelVocab(std::vector<std::string> labels) : labels_(std::move(labels)) {
    for (std::size_t i = 0; i < labels_.size(); ++i) {
      const std::string& l = labels_[i];
      if (l.empty()) throw ValueError(detail::concat("LabelVocab: label ", i, " is empty, expected a non-empty label"));
      if (l.find_first_of("\r\n") != std::string::npos)
        throw ValueError(detail::concat("LabelVocab: label \"", l, "\" holds a line break (the vocab file keeps ",
                                        "one label per line)"));
      if (!ids_.emplace(l, static_cast<Index>(i)).second)
        throw ValueError(detail::concat("LabelVocab: label \"", l, "\" appears more than once"));
    }
  }

  /// The distinct labels of a dataset, sorted (none for an empty dataset). Throws ValueError naming the file and
  /// line of an empty label.
  static LabelVocab from_dataset(const TextDataset& dataset) {
    std::vector<std::string> labels;
    for (Index i = 0; i < dataset.size(); ++i) {
      if (dataset[i].label.empty())
        throw ValueError(detail::concat("LabelVocab::from_dataset: ", detail::example_place(dataset, i),
                                        ": the label is empty"));
      labels.push_back(dataset[i].label);
    }
    std::sort(labels.begin(), labels.end());
    labels.erase(std::unique(labels.begin(), labels.end()), labels.end());
    return LabelVocab(std::move(labels));
  }

  /// Reads a file written by save(): one label per line, line i holding id i - 1 (LF or CRLF).
  static LabelVocab load(const std::filesystem::path& path) {
    constexpr const char* fn = "LabelVocab::load";
    const std::string data = detail::read_text_file(fn, path);
    std::vector<std::string> labels;
    std::unordered_map<std::string, Index> first_line;
    std::string_view rest = detail::skip_bom(data);
    for (Index line_no = 1; !rest.empty(); ++line_no) {
      const std::size_t eol = rest.find('\n');
      std::string_view line = rest.substr(0, eol);
      rest = eol == std::string_view::npos ? std::string_view() : rest.substr(eol + 1);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.empty()) throw IoError(detail::concat(detail::where(fn, path, line_no), "empty line, expected a label"));
      if (line.find('\r') != std::string_view::npos)
        throw IoError(detail::concat(detail::where(fn, path, line_no), "carriage return inside a label"));
      const auto [it, inserted] = first_line.emplace(std::string(line), line_no);
      if (!inserted)
        throw IoError(detail::concat(detail::where(fn, path, line_no), "label \"", line, "\" repeats line ",
                                     it->second));
      labels.emplace_back(line);
    }
    if (labels.empty()) throw IoError(detail::concat(fn, ": ", path.string(), " holds no labels"));
    return LabelVocab(std::move(labels));
  }

  /// Writes one label per line ('\n' endings), replacing the file atomically (io/file.hpp); throws ValueError for
  /// an empty vocab, IoError if writing fails (any previous file is then unchanged).
  void save(const std::filesystem::path& path) const {
    if (labels_.empty()) throw ValueError("LabelVocab::save: the vocab is empty, expected at least one label");
    std::string text;
    for (const std::string& l : labels_) text += l + '\n';
    io::write_text_file_atomically(path, text, "LabelVocab::save");
  }

  Index size() const { return static_cast<Index>(labels_.size()); }
  bool contains(const std::string& label) const { return ids_.count(label) != 0; }
  const std::vector<std::string>& labels() const { return labels_; }

  /// The id of a label; throws ValueError naming an unknown label.
  Index id(const std::string& label) const {
    const auto it = ids_.find(label);
    if (it == ids_.end())
      throw ValueError(detail::concat("LabelVocab::id: unknown label \"", label, "\" (known labels: ",
                                      detail::join_names(labels_), ")"));
    return it->second;
  }
  /// The label of an id; throws ValueError if the id is out of range.
  const std::string& label(Index id) const {
    if (id < 0 || id >= size())
      throw ValueError(detail::concat("LabelVocab::label: id ", id, " is out of range for ", size(), " labels"));
    return labels_[static_cast<std::size_t>(id)];
  }
  /// The label id of every example, in order; throws ValueError naming the file and line (or the example) of the
  /// first unknown label, and the known ones.
  std::vector<std::int64_t> encode(const TextDataset& dataset) const {
    std::vector<std::int64_t> out;
    out.reserve(static_cast<std::size_t>(dataset.size()));
    for (Index i = 0; i < dataset.size(); ++i) {
      const auto it = ids_.find(dataset[i].label);
      if (it == ids_.end())
        throw ValueError(detail::concat("LabelVocab::encode: ", detail::example_place(dataset, i), ": unknown label \"",
                                        dataset[i].label, "\" (",
                                        labels_.empty() ? std::string("the label vocabulary is empty")
                                                        : "known labels: " + detail::join_names(labels_),
                                        ")"));
      out.push_back(static_cast<std::int64_t>(it->second));
    }
    return out;
  }

  friend bool operator==(const LabelVocab& a, const LabelVocab& b) { return a.labels_ == b.labels_; }
  friend bool operator!=(const LabelVocab& a, const LabelVocab& b) { return !(a == b); }

 private:
  std::vector<std::string> labels_;
  std::unordered_map<std::string, Index> ids_;
};

/// The three parts of a split.
struct Splits {
  TextDataset train, valid, test;
};

/// Splits a dataset at random into train, valid and test (torch.utils.data.random_split with a seeded generator):
/// a permutation of the examples (data::permutation, the same on every platform) gives its first
/// round(train_fraction * n) to train, up to round((train_fraction + valid_fraction) * n) to valid and the rest
/// to test; each part keeps the dataset's order. Throws ValueError unless both fractions are in [0, 1] and sum
/// to at most 1.
inline Splits split(const TextDataset& dataset, double train_fraction, double valid_fraction, std::uint64_t seed) {
  for (const auto& [name, f] : {std::pair("train_fraction", train_fraction),
                                std::pair("valid_fraction", valid_fraction)})
    if (!(f >= 0.0 && f <= 1.0))
      throw ValueError(detail::concat("split: ", name, " is ", f, ", expected a value in [0, 1]"));
  // 1e-9 forgives fractions computed in floating point whose sum lands a few ulps above 1.
  if (train_fraction + valid_fraction > 1.0 + 1e-9)
    throw ValueError(detail::concat("split: train_fraction + valid_fraction is ", train_fraction + valid_fraction,
                                    ", expected at most 1"));
  const Index n = dataset.size();
  // Cumulative boundaries rounded once each: the parts always sum to n and a fraction of 0 gives an empty part.
  const auto boundary = [n](double f) {
    return std::min(n, static_cast<Index>(std::llround(f * static_cast<double>(n))));
  };
  const Index n_train = boundary(train_fraction);
  const Index n_train_valid = std::max(n_train, boundary(train_fraction + valid_fraction));

  std::mt19937_64 gen(seed);
  const std::vector<Index> order = permutation(n, gen);
  const auto part = [&](Index begin, Index end, const char* name) {
    std::vector<Index> idx(order.begin() + begin, order.begin() + end);
    std::sort(idx.begin(), idx.end());
    std::vector<Example> examples;
    examples.reserve(idx.size());
    for (Index i : idx) examples.push_back(dataset[i]);
    return TextDataset(std::move(examples), detail::concat(dataset.source(), " (", name, " split)"));
  };
  return Splits{part(0, n_train, "train"), part(n_train, n_train_valid, "valid"), part(n_train_valid, n, "test")};
}

}  // namespace eigenformer::data
