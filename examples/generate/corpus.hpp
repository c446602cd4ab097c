// The texts train_gpt learns from: the entries of fortune files ("%" lines between them, as Debian's fortunes
// package stores them), the "text" fields of a JSON Lines file (optionally only one label's, optionally only the
// body of each e-mail, after its headers), or whole text files; and a split into training and validation texts that
// depends on each text's source and place only (so adding files does not move the others).
#pragma once

#include <algorithm>
#include <cstdint>
#include <eigenformer/data/dataset.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace generate_example {

/// A text and where it comes from ("file:entry").
struct Document {
  std::string text;
  std::string source;
};

/// FNV-1a of a string: a fixed, portable hash for the split.
inline std::uint64_t fnv1a(const std::string& s) {
  std::uint64_t h = 1469598103934665603ull;
  for (const unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw eigenformer::IoError("cannot read '" + path.string() + "'");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

/// The entries of one fortune file: the text between lines that hold only "%".
inline void read_fortune_file(const std::filesystem::path& path, std::vector<Document>& out) {
  const std::string data = read_file(path);
  std::string entry;
  std::size_t index = 0, start = 0;
  const auto flush = [&] {
    if (entry.find_first_not_of(" \t\r\n") != std::string::npos)
      out.push_back({entry, path.filename().string() + ":" + std::to_string(index++)});
    entry.clear();
  };
  while (start < data.size()) {
    std::size_t end = data.find('\n', start);
    if (end == std::string::npos) end = data.size();
    const std::string line = data.substr(start, end - start);
    if (line == "%" || line == "%\r")
      flush();
    else
      entry += line + "\n";
    start = end + 1;
  }
  flush();
}

/// Every fortune file of a folder (files without an extension: not the .dat indexes or .u8 links), or one file.
inline std::vector<Document> read_fortunes(const std::filesystem::path& where) {
  std::vector<Document> out;
  if (!std::filesystem::is_directory(where)) {
    read_fortune_file(where, out);
    return out;
  }
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(where))
    if (e.is_regular_file() && !e.path().has_extension()) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const auto& f : files) read_fortune_file(f, out);
  return out;
}

/// The texts of a JSON Lines file, those whose label is `label` when it is not empty; with body_only, each text's
/// part after its first blank line (an e-mail's body, its headers left out).
inline std::vector<Document> read_jsonl_texts(const std::filesystem::path& path, const std::string& label,
                                              bool body_only) {
  const eigenformer::data::TextDataset ds = eigenformer::data::read_jsonl(path);
  std::vector<Document> out;
  for (eigenformer::Index i = 0; i < ds.size(); ++i) {
    const eigenformer::data::Example& e = ds[i];
    if (!label.empty() && e.label != label) continue;
    std::string text = e.text;
    if (body_only) {
      const std::size_t blank = text.find("\n\n");
      text = blank == std::string::npos ? std::string() : text.substr(blank + 2);
    }
    if (text.find_first_not_of(" \t\r\n") == std::string::npos) continue;
    out.push_back({std::move(text), path.filename().string() + ":" + std::to_string(e.line)});
  }
  return out;
}

/// Splits documents: a document goes to validation when the hash of its source falls in the fraction.
inline void split(const std::vector<Document>& all, double valid_fraction, std::vector<std::string>& train,
                  std::vector<std::string>& valid) {
  const auto threshold = static_cast<std::uint64_t>(valid_fraction * 1e6);
  for (const Document& d : all) (fnv1a(d.source) % 1000000 < threshold ? valid : train).push_back(d.text);
}

}  // namespace generate_example
