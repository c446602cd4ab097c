// The per-epoch training history and its metrics.csv file (one row per epoch, the role of Keras' CSVLogger and of
// PyTorch Lightning's CSVLogger), plus the JSON form a checkpoint keeps. Which metrics a row holds depends on the
// task (train_loss, valid_accuracy, valid_perplexity, ...): the header names them.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "eigenformer/core/config.hpp"
#include "eigenformer/core/error.hpp"
#include "eigenformer/io/file.hpp"

namespace eigenformer::train {

/// Named metric values in a fixed order ("train_loss", "valid_accuracy", ...).
using MetricValues = std::vector<std::pair<std::string, double>>;

/// The value of name in values, NaN when absent.
inline double metric_value(const MetricValues& values, const std::string& name) {
  for (const auto& [n, v] : values)
    if (n == name) return v;
  return std::numeric_limits<double>::quiet_NaN();
}

/// What one epoch of fit() measured.
struct EpochRecord {
  Index epoch = 0;        // 1-based
  Index step = 0;         // optimizer steps completed at the end of the epoch
  double lr = 0;          // learning rate of the epoch's last optimizer step
  MetricValues metrics;   // the task's metrics on the training data (train_*, in training mode) and validation data
  double seconds = 0;            // wall time of the epoch, evaluation included
  double tokens_per_second = 0;  // training throughput (non-padding tokens)
  bool best = false;             // the best epoch so far: its weights are the run's model.safetensors

  /// A metric by name ("valid_accuracy"), NaN when the task does not measure it.
  double metric(const std::string& name) const { return metric_value(metrics, name); }
};

namespace detail {

using eigenformer::detail::concat;

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

}  // namespace detail

/// The header line of metrics.csv for records with these metric names (no line break).
inline std::string metrics_csv_header(const std::vector<std::string>& metric_names) {
  std::string h = "epoch,step,lr";
  for (const std::string& n : metric_names) h += "," + n;
  return h + ",seconds,tokens_per_second,best";
}

/// One row of metrics.csv (no line break), in the order of metrics_csv_header(names of r.metrics).
inline std::string metrics_csv_row(const EpochRecord& r) {
  using detail::format_double;
  std::string row = eigenformer::detail::concat(r.epoch, ',', r.step, ',', format_double(r.lr));
  for (const auto& [name, value] : r.metrics) row += "," + format_double(value);
  return row + eigenformer::detail::concat(',', format_double(r.seconds), ',', format_double(r.tokens_per_second), ',',
                                           r.best ? 1 : 0);
}

/// Writes metrics.csv: the header and one row per record, replacing the file atomically. Every record must hold
/// the metrics of the first, in the same order. Throws IoError on failure, ValueError for mismatched records.
inline void write_metrics_csv(const std::filesystem::path& path, const std::vector<EpochRecord>& history,
                              const std::vector<std::string>& metric_names) {
  std::string text = metrics_csv_header(metric_names) + "\n";
  for (const EpochRecord& r : history) {
    bool same = r.metrics.size() == metric_names.size();
    for (std::size_t i = 0; same && i < metric_names.size(); ++i) same = r.metrics[i].first == metric_names[i];
    if (!same) {
      std::string held, expected;
      for (const auto& m : r.metrics) held += (held.empty() ? "" : ", ") + m.first;
      for (const std::string& name : metric_names) expected += (expected.empty() ? "" : ", ") + name;
      throw ValueError(eigenformer::detail::concat("write_metrics_csv: epoch ", r.epoch, " holds the metrics (", held,
                                                   "), expected the header's (", expected, ")"));
    }
    text += metrics_csv_row(r) + "\n";
  }
  io::write_text_file_atomically(path, text, "write_metrics_csv");
}

/// Reads a metrics.csv written by write_metrics_csv: columns by the header's names. Throws IoError naming the file
/// and the line (1-based) when the header lacks a fixed column or a row does not hold one number per column.
inline std::vector<EpochRecord> read_metrics_csv(const std::filesystem::path& path) {
  constexpr const char* fn = "read_metrics_csv";
  using eigenformer::detail::concat;
  std::istringstream in(io::read_text_file(path, fn));
  std::string line;
  if (!std::getline(in, line)) throw IoError(concat(fn, ": '", path.string(), "' is empty, expected a header line"));
  std::vector<std::string> columns;
  {
    std::istringstream header(line);
    for (std::string c; std::getline(header, c, ',');) columns.push_back(c);
  }
  const std::vector<std::string> fixed_head = {"epoch", "step", "lr"},
                                 fixed_tail = {"seconds", "tokens_per_second", "best"};
  const bool ok_header = columns.size() >= 6 && std::equal(fixed_head.begin(), fixed_head.end(), columns.begin()) &&
                         std::equal(fixed_tail.begin(), fixed_tail.end(), columns.end() - 3);
  if (!ok_header)
    throw IoError(concat(fn, ": '", path.string(), "', line 1: expected a header \"epoch,step,lr,<metrics>,seconds,",
                         "tokens_per_second,best\", got \"", line, "\""));
  std::vector<EpochRecord> out;
  for (Index line_no = 2; std::getline(in, line); ++line_no) {
    if (line.empty()) continue;
    std::vector<double> v;
    std::istringstream fields(line);
    bool ok = true;
    for (std::string field; std::getline(fields, field, ',');) {
      char* end = nullptr;
      v.push_back(std::strtod(field.c_str(), &end));
      ok = ok && !field.empty() && *end == '\0';
    }
    if (!ok || v.size() != columns.size())
      throw IoError(concat(fn, ": '", path.string(), "', line ", line_no, ": expected ", columns.size(),
                           " numbers, got \"", line, "\""));
    EpochRecord r;
    r.epoch = static_cast<Index>(v[0]);
    r.step = static_cast<Index>(v[1]);
    r.lr = v[2];
    for (std::size_t i = 3; i + 3 < columns.size(); ++i) r.metrics.emplace_back(columns[i], v[i]);
    r.seconds = v[v.size() - 3];
    r.tokens_per_second = v[v.size() - 2];
    r.best = v.back() != 0;
    out.push_back(r);
  }
  return out;
}

/// The record as a JSON object (NaN as null; metrics as an object in their order).
inline nlohmann::json epoch_record_to_json(const EpochRecord& r) {
  using detail::json_number;
  nlohmann::json names = nlohmann::json::array();
  nlohmann::json values = nlohmann::json::array();
  for (const auto& [name, value] : r.metrics) {
    names.push_back(name);
    values.push_back(json_number(value));
  }
  return {{"epoch", r.epoch},
          {"step", r.step},
          {"lr", json_number(r.lr)},
          {"metric_names", names},
          {"metric_values", values},
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
  const nlohmann::json& names = j.at("metric_names");
  const nlohmann::json& values = j.at("metric_values");
  if (!names.is_array() || !values.is_array() || names.size() != values.size())
    throw ValueError(eigenformer::detail::concat(
        "epoch_record_from_json: metric_names is ", names.is_array() ? std::to_string(names.size()) + " names" : names.dump(),
        " and metric_values is ", values.is_array() ? std::to_string(values.size()) + " values" : values.dump(),
        ", expected two arrays of the same length"));
  for (std::size_t i = 0; i < names.size(); ++i)
    r.metrics.emplace_back(names[i].get<std::string>(), number_from_json(values[i]));
  r.seconds = number_from_json(j.at("seconds"));
  r.tokens_per_second = number_from_json(j.at("tokens_per_second"));
  r.best = j.at("best").get<bool>();
  return r;
}

}  // namespace eigenformer::train
