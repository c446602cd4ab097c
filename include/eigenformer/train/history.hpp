// The per-epoch training history and its metrics.csv file (one row per epoch, the role of Keras' CSVLogger and of
// PyTorch Lightning's CSVLogger), plus the JSON form the trainer's checkpoint keeps.
#pragma once

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include "eigenformer/core/config.hpp"
#include "eigenformer/core/error.hpp"

namespace eigenformer::train {

/// What one epoch of fit() measured.
struct EpochRecord {
  Index epoch = 0;                                               // 1-based
  Index step = 0;                                                // optimizer steps completed at the end of the epoch
  double lr = 0;                                                 // learning rate of the epoch's last optimizer step
  double train_loss = std::numeric_limits<double>::quiet_NaN();  // mean over the epoch's examples
  double train_accuracy = std::numeric_limits<double>::quiet_NaN();  // in training mode (dropout on)
  double valid_loss = std::numeric_limits<double>::quiet_NaN();
  double valid_accuracy = std::numeric_limits<double>::quiet_NaN();
  double valid_macro_f1 = std::numeric_limits<double>::quiet_NaN();
  double seconds = 0;            // wall time of the epoch, evaluation included
  double tokens_per_second = 0;  // training throughput (non-padding tokens)
  bool best = false;             // the best epoch so far: its weights are the run's model.safetensors
};

namespace detail {

using eigenformer::detail::concat;

/// Writes text to path through a temporary file and a rename, so a reader (or a resumed run) never sees half a
/// file. Throws IoError naming fn and the path.
inline void write_text_file(const char* fn, const std::filesystem::path& path, const std::string& text) {
  std::filesystem::path tmp = path;
  tmp += ".tmp";
  {
    errno = 0;
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out)
      throw IoError(
          concat(fn, ": cannot open ", tmp.string(), " for writing: ", errno ? std::strerror(errno) : "unknown error"));
    out << text;
    out.flush();
    if (!out) throw IoError(concat(fn, ": writing ", tmp.string(), " failed"));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    throw IoError(concat(fn, ": cannot replace ", path.string(), ": ", ec.message()));
  }
}

/// The whole file; throws IoError naming fn when it cannot be read.
inline std::string read_text_file(const char* fn, const std::filesystem::path& path) {
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw IoError(
        concat(fn, ": cannot open ", path.string(), " for reading: ", errno ? std::strerror(errno) : "unknown error"));
  std::ostringstream s;
  s << in.rdbuf();
  if (in.bad()) throw IoError(concat(fn, ": reading ", path.string(), " failed"));
  return s.str();
}

/// A double in the shortest form that reads back exactly ("nan" for NaN).
inline std::string format_double(double v) {
  if (std::isnan(v)) return "nan";
  char buf[40];
  for (int precision = 6; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

/// JSON has no NaN: it is stored as null and read back as NaN.
inline nlohmann::json json_number(double v) { return std::isnan(v) ? nlohmann::json() : nlohmann::json(v); }
inline double number_from_json(const nlohmann::json& j) {
  return j.is_null() ? std::numeric_limits<double>::quiet_NaN() : j.get<double>();
}

constexpr const char* kMetricsColumns[] = {"epoch",
                                           "step",
                                           "lr",
                                           "train_loss",
                                           "train_accuracy",
                                           "valid_loss",
                                           "valid_accuracy",
                                           "valid_macro_f1",
                                           "seconds",
                                           "tokens_per_second",
                                           "best"};

}  // namespace detail

/// The header line of metrics.csv (no line break).
inline std::string metrics_csv_header() {
  std::string h;
  for (const char* c : detail::kMetricsColumns) h += (h.empty() ? "" : ",") + std::string(c);
  return h;
}

/// One row of metrics.csv (no line break), in the order of metrics_csv_header().
inline std::string metrics_csv_row(const EpochRecord& r) {
  using detail::format_double;
  return eigenformer::detail::concat(r.epoch, ',', r.step, ',', format_double(r.lr), ',', format_double(r.train_loss),
                                     ',', format_double(r.train_accuracy), ',', format_double(r.valid_loss), ',',
                                     format_double(r.valid_accuracy), ',', format_double(r.valid_macro_f1), ',',
                                     format_double(r.seconds), ',', format_double(r.tokens_per_second), ',',
                                     r.best ? 1 : 0);
}

/// Writes metrics.csv: the header and one row per record (replacing the file). Throws IoError on failure.
inline void write_metrics_csv(const std::filesystem::path& path, const std::vector<EpochRecord>& history) {
  std::string text = metrics_csv_header() + "\n";
  for (const EpochRecord& r : history) text += metrics_csv_row(r) + "\n";
  detail::write_text_file("write_metrics_csv", path, text);
}

/// Appends one row to metrics.csv, writing the header first when the file is missing or empty. Throws IoError.
inline void append_metrics_csv(const std::filesystem::path& path, const EpochRecord& record) {
  std::error_code ec;
  const bool fresh = !std::filesystem::exists(path, ec) || std::filesystem::file_size(path, ec) == 0;
  errno = 0;
  std::ofstream out(path, std::ios::binary | std::ios::app);
  if (!out)
    throw IoError(eigenformer::detail::concat("append_metrics_csv: cannot open ", path.string(), ": ",
                                              errno ? std::strerror(errno) : "unknown error"));
  if (fresh) out << metrics_csv_header() << '\n';
  out << metrics_csv_row(record) << '\n';
  out.flush();
  if (!out) throw IoError(eigenformer::detail::concat("append_metrics_csv: writing ", path.string(), " failed"));
}

/// Reads a metrics.csv written by write_metrics_csv or append_metrics_csv. Throws IoError naming the file and the
/// line when the header differs or a row does not hold 11 numbers.
inline std::vector<EpochRecord> read_metrics_csv(const std::filesystem::path& path) {
  constexpr const char* fn = "read_metrics_csv";
  std::istringstream in(detail::read_text_file(fn, path));
  std::string line;
  if (!std::getline(in, line) || line != metrics_csv_header())
    throw IoError(eigenformer::detail::concat(fn, ": ", path.string(), ", line 1: expected the header \"",
                                              metrics_csv_header(), "\""));
  std::vector<EpochRecord> out;
  for (Index line_no = 2; std::getline(in, line); ++line_no) {
    if (line.empty()) continue;
    std::vector<double> v;
    std::istringstream fields(line);
    std::string field;
    bool ok = true;
    while (std::getline(fields, field, ',')) {
      char* end = nullptr;
      v.push_back(std::strtod(field.c_str(), &end));
      ok = ok && !field.empty() && *end == '\0';
    }
    if (!ok || v.size() != std::size(detail::kMetricsColumns))
      throw IoError(eigenformer::detail::concat(fn, ": ", path.string(), ", line ", line_no, ": expected ",
                                                std::size(detail::kMetricsColumns), " numbers, got \"", line, "\""));
    EpochRecord r;
    r.epoch = static_cast<Index>(v[0]);
    r.step = static_cast<Index>(v[1]);
    r.lr = v[2];
    r.train_loss = v[3];
    r.train_accuracy = v[4];
    r.valid_loss = v[5];
    r.valid_accuracy = v[6];
    r.valid_macro_f1 = v[7];
    r.seconds = v[8];
    r.tokens_per_second = v[9];
    r.best = v[10] != 0;
    out.push_back(r);
  }
  return out;
}

/// The record as a JSON object (NaN as null).
inline nlohmann::json epoch_record_to_json(const EpochRecord& r) {
  using detail::json_number;
  return {{"epoch", r.epoch},
          {"step", r.step},
          {"lr", json_number(r.lr)},
          {"train_loss", json_number(r.train_loss)},
          {"train_accuracy", json_number(r.train_accuracy)},
          {"valid_loss", json_number(r.valid_loss)},
          {"valid_accuracy", json_number(r.valid_accuracy)},
          {"valid_macro_f1", json_number(r.valid_macro_f1)},
          {"seconds", json_number(r.seconds)},
          {"tokens_per_second", json_number(r.tokens_per_second)},
          {"best", r.best}};
}

/// The inverse of epoch_record_to_json; throws nlohmann::json's exceptions on a missing or mistyped field.
inline EpochRecord epoch_record_from_json(const nlohmann::json& j) {
  using detail::number_from_json;
  EpochRecord r;
  r.epoch = j.at("epoch").get<Index>();
  r.step = j.at("step").get<Index>();
  r.lr = number_from_json(j.at("lr"));
  r.train_loss = number_from_json(j.at("train_loss"));
  r.train_accuracy = number_from_json(j.at("train_accuracy"));
  r.valid_loss = number_from_json(j.at("valid_loss"));
  r.valid_accuracy = number_from_json(j.at("valid_accuracy"));
  r.valid_macro_f1 = number_from_json(j.at("valid_macro_f1"));
  r.seconds = number_from_json(j.at("seconds"));
  r.tokens_per_second = number_from_json(j.at("tokens_per_second"));
  r.best = j.at("best").get<bool>();
  return r;
}

}  // namespace eigenformer::train
