#include "eigenformer/train/history.hpp"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>

#include "support/test_support.hpp"

using namespace eigenformer;
using namespace eigenformer::train;

namespace history_test {

namespace {

namespace fs = std::filesystem;

fs::path fresh_file(const std::string& name) {
  const fs::path p = fs::path(EIGENFORMER_TEST_TMP_DIR) / ("history_test_" + name);
  fs::remove(p);
  return p;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

const std::vector<std::string> kNames = {"train_loss", "train_accuracy", "valid_loss", "valid_accuracy",
                                         "valid_macro_f1"};

EpochRecord record(Index epoch) {
  EpochRecord r;
  r.epoch = epoch;
  r.step = 10 * epoch;
  r.lr = 1e-3 / static_cast<double>(epoch);
  r.metrics = {{"train_loss", 0.1 * static_cast<double>(epoch) + 1.0 / 3.0},
               {"train_accuracy", 0.9},
               {"valid_loss", 0.25},
               {"valid_accuracy", 2.0 / 3.0},
               {"valid_macro_f1", std::numeric_limits<double>::quiet_NaN()}};
  r.seconds = 12.5;
  r.tokens_per_second = 14000.25;
  r.best = epoch == 1;
  return r;
}

void expect_same(const EpochRecord& a, const EpochRecord& b) {
  EXPECT_EQ(a.epoch, b.epoch);
  EXPECT_EQ(a.step, b.step);
  EXPECT_EQ(a.lr, b.lr);
  ASSERT_EQ(a.metrics.size(), b.metrics.size());
  for (std::size_t i = 0; i < a.metrics.size(); ++i) {
    EXPECT_EQ(a.metrics[i].first, b.metrics[i].first);
    EXPECT_EQ(std::isnan(a.metrics[i].second), std::isnan(b.metrics[i].second));
    if (!std::isnan(a.metrics[i].second)) {
      EXPECT_EQ(a.metrics[i].second, b.metrics[i].second) << a.metrics[i].first;
    }
  }
  EXPECT_EQ(a.seconds, b.seconds);
  EXPECT_EQ(a.tokens_per_second, b.tokens_per_second);
  EXPECT_EQ(a.best, b.best);
}

}  // namespace

TEST(MetricsCsv, HeaderAndRowFormat) {
  EXPECT_EQ(metrics_csv_header(kNames),
            "epoch,step,lr,train_loss,train_accuracy,valid_loss,valid_accuracy,valid_macro_f1,seconds,"
            "tokens_per_second,best");
  EXPECT_EQ(metrics_csv_row(record(2)),
            "2,20,0.0005,0.5333333333333333,0.9,0.25,0.6666666666666666,nan,12.5,14000.25,0");
  EXPECT_EQ(record(2).metric("valid_loss"), 0.25);
  EXPECT_TRUE(std::isnan(record(2).metric("valid_perplexity")));  // a metric the task does not measure
}

TEST(MetricsCsv, WriteThenReadRoundTripsExactly) {
  const fs::path p = fresh_file("roundtrip.csv");
  write_metrics_csv(p, {record(1), record(2), record(3)}, kNames);
  const std::vector<EpochRecord> back = read_metrics_csv(p);
  ASSERT_EQ(back.size(), 3u);
  for (Index i = 0; i < 3; ++i) expect_same(back[static_cast<std::size_t>(i)], record(i + 1));
  // Other tasks, other columns: a language model's perplexity.
  EpochRecord lm;
  lm.epoch = 1;
  lm.metrics = {{"train_loss", 3.5}, {"valid_loss", 3.25}, {"valid_perplexity", 25.79}};
  write_metrics_csv(p, {lm}, {"train_loss", "valid_loss", "valid_perplexity"});
  EXPECT_EQ(slurp(p).substr(0, slurp(p).find('\n')),
            "epoch,step,lr,train_loss,valid_loss,valid_perplexity,seconds,tokens_per_second,best");
  expect_same(read_metrics_csv(p).at(0), lm);
  EXPECT_THROW_WITH(write_metrics_csv(p, {lm}, kNames), ValueError,
                    {"write_metrics_csv: epoch 1 holds the metrics (train_loss, valid_loss, valid_perplexity), expected",
                     "(train_loss, train_accuracy"});
  EXPECT_EQ(read_metrics_csv(p).size(), 1u);  // a refused write leaves the file as it was
}

TEST(MetricsCsv, BadFilesThrowIoError) {
  const fs::path p = fresh_file("bad.csv");
  EXPECT_THROW_WITH(read_metrics_csv(p), IoError, {"read_metrics_csv", "cannot open"});
  std::ofstream(p) << "epoch,loss\n1,2\n";
  EXPECT_THROW_WITH(read_metrics_csv(p), IoError, {"read_metrics_csv", "line 1", "expected a header"});
  std::ofstream(p) << metrics_csv_header(kNames) << "\n1,2,3\n";
  EXPECT_THROW_WITH(read_metrics_csv(p), IoError, {"read_metrics_csv", "line 2", "expected 11 numbers"});
  std::ofstream(p) << metrics_csv_header(kNames) << "\n1,2,3,4,5,6,7,8,9,x,0\n";
  EXPECT_THROW_WITH(read_metrics_csv(p), IoError, {"line 2", "1,2,3,4,5,6,7,8,9,x,0"});
  EXPECT_THROW_WITH(write_metrics_csv(fs::path(EIGENFORMER_TEST_TMP_DIR) / "no_such_dir" / "m.csv", {}, kNames),
                    IoError, {"write_metrics_csv", "cannot write", "No such file or directory"});
}

TEST(EpochRecordJson, RoundTripsWithNaNAsNull) {
  const nlohmann::json j = epoch_record_to_json(record(4));
  EXPECT_TRUE(j.at("metric_values").at(4).is_null());
  expect_same(epoch_record_from_json(nlohmann::json::parse(j.dump())), record(4));
  EXPECT_THROW(epoch_record_from_json(nlohmann::json::object()), nlohmann::json::exception);
  nlohmann::json short_values = j;
  short_values["metric_values"].erase(0);
  EXPECT_THROW_WITH(epoch_record_from_json(short_values), ValueError,
                    {"epoch_record_from_json", "metric_names is 5 names and metric_values is 4 values", "same length"});
}

TEST(FormatDouble, ShortestExactForm) {
  EXPECT_EQ(train::detail::format_double(0.1), "0.1");
  EXPECT_EQ(train::detail::format_double(1.0 / 3.0), "0.3333333333333333");
  EXPECT_EQ(train::detail::format_double(std::numeric_limits<double>::quiet_NaN()), "nan");
  EXPECT_EQ(std::stod(train::detail::format_double(2.0 / 3.0)), 2.0 / 3.0);
}

}  // namespace history_test
