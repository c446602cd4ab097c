#include "eigenformer/train/reporter.hpp"

#include "eigenformer/train/metrics.hpp"

#include <sstream>
#include <string>

#include "support/test_support.hpp"

using namespace eigenformer;
using namespace eigenformer::train;

namespace reporter_test {

namespace {

StepInfo step(Index batch, Index batches) {
  StepInfo s;
  s.epoch = 2;
  s.epochs = 3;
  s.batch = batch;
  s.batches = batches;
  s.step = 10 + batch;
  s.total_steps = 30;
  s.loss = 0.25;
  s.lr = 5e-4;
  s.tokens_per_second = 12345;
  s.eta_seconds = 65;
  return s;
}

EpochRecord record() {
  EpochRecord r;
  r.epoch = 2;
  r.metrics = {{"train_loss", 0.5},
               {"train_accuracy", 0.75},
               {"valid_loss", 0.25},
               {"valid_accuracy", 0.875},
               {"valid_macro_f1", 0.8}};
  r.seconds = 61;
  r.tokens_per_second = 2500;
  r.best = true;
  return r;
}

Index count(const std::string& s, const std::string& what) {
  Index n = 0;
  for (std::size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

}  // namespace

TEST(Format, DurationAndRate) {
  EXPECT_EQ(format_duration(0), "0:00");
  EXPECT_EQ(format_duration(65.4), "1:05");
  EXPECT_EQ(format_duration(3725), "1:02:05");
  EXPECT_EQ(format_duration(-1), "?");
  EXPECT_EQ(format_rate(950), "950");
  EXPECT_EQ(format_rate(12345), "12.3k");
  EXPECT_EQ(format_rate(1.2e6), "1.20M");
}

TEST(ConsoleReporter, PlainLinesWhenNotATerminal) {
  std::ostringstream out;
  ConsoleReporter::Options o;
  o.log_lines_per_epoch = 4;
  ConsoleReporter rep(out, o);
  for (Index b = 1; b <= 20; ++b) rep.on_step(step(b, 20));  // every 5th batch
  rep.on_evaluate_begin(2);
  const std::string s = out.str();
  EXPECT_EQ(count(s, "\n"), 4);
  EXPECT_EQ(count(s, "\r"), 0);
  EXPECT_NE(s.find("epoch 2/3 batch 5/20 step 15/30 loss 0.2500 lr 5.00e-04 12.3k tok/s ETA 1:05\n"), std::string::npos)
      << s;
  EXPECT_NE(s.find("batch 20/20"), std::string::npos);
}

TEST(ConsoleReporter, ProgressBarRedrawnInPlaceOnATerminal) {
  std::ostringstream out;
  ConsoleReporter::Options o;
  o.interactive = true;
  o.redraw_seconds = 0;  // draw every step
  ConsoleReporter rep(out, o);
  rep.on_step(step(1, 4));
  rep.on_step(step(2, 4));
  const std::string s = out.str();
  EXPECT_EQ(count(s, "\r"), 2);
  EXPECT_EQ(count(s, "\n"), 0);
  EXPECT_NE(s.find("\repoch 2/3 [#####...............] 1/4 step 11/30 loss 0.2500"), std::string::npos) << s;
  EXPECT_NE(s.find("[##########..........] 2/4"), std::string::npos) << s;
  // The epoch summary first blanks the bar, then starts at column 0.
  rep.on_epoch_end(record(), "");
  const std::string t = out.str().substr(s.size());
  EXPECT_EQ(t.rfind('\r', 0), 0u);
  EXPECT_NE(t.find("\repoch 2: train loss"), std::string::npos) << t;
}

TEST(ConsoleReporter, ThrottlesRedrawsButAlwaysDrawsTheLastBatch) {
  std::ostringstream out;
  ConsoleReporter::Options o;
  o.interactive = true;
  o.redraw_seconds = 3600;
  ConsoleReporter rep(out, o);
  for (Index b = 1; b <= 50; ++b) rep.on_step(step(b, 50));
  const std::string s = out.str();
  EXPECT_EQ(count(s, "\r"), 2);  // the first draw and the epoch's last batch
  EXPECT_NE(s.find("50/50"), std::string::npos);
}

TEST(ConsoleReporter, EpochSummaryAndConfusionMatrix) {
  std::ostringstream out;
  ConsoleReporter::Options o;
  o.show_details = true;
  ConsoleReporter rep(out, o);
  ConfusionMatrix m(2);
  m.add(0, 0);
  m.add(1, 0);
  rep.on_epoch_end(record(), m.to_string({"ham", "spam"}));
  FitSummary f;
  f.epochs_run = 3;
  f.best_epoch = 2;
  f.monitor = "valid_accuracy";
  f.best_value = 0.875;
  f.best_valid_loss = 0.25;
  f.stopped_early = true;
  f.seconds = 125;
  rep.on_fit_end(f);
  EXPECT_EQ(out.str(),
            "epoch 2: train loss 0.5000 acc 0.7500 | valid loss 0.2500 acc 0.8750 macro-F1 0.8000 | 1:01, 2.5k tok/s "
            "(best)\n"
            "true\\pred       ham      spam\n"
            "      ham         1         0\n"
            "     spam         1         0\n"
            "done: 3 epochs (stopped early) in 2:05; best epoch 2: valid_accuracy 0.8750, valid loss 0.2500\n");
}

TEST(ConsoleReporter, FitBeginLine) {
  std::ostringstream out;
  ConsoleReporter rep(out);
  FitBegin b;
  b.epochs = 3;
  b.first_epoch = 1;
  b.batches_per_epoch = 10;
  b.steps_per_epoch = 5;
  b.train_examples = 320;
  b.valid_examples = 40;
  b.parameters = 1234;
  rep.on_fit_begin(b);
  EXPECT_EQ(out.str(),
            "training: epoch 1 of 3, 320 training and 40 validation examples, 10 batches (5 optimizer steps) per "
            "epoch, 1234 parameters\n");
}

TEST(IsTerminal, ARegularFileIsNotATerminal) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  EXPECT_FALSE(is_terminal(f));
  std::fclose(f);
}

}  // namespace reporter_test
