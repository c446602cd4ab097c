// What a task tells the trainer (train/fit.hpp): how a batch becomes a loss, and which metrics it accumulates. The
// trainer knows nothing of labels, masks or next tokens; a task knows nothing of optimizers, schedules or
// checkpoints. A task is a class with
//
//   using Batch = ...;                                  what the data source's make_batch() returns
//   std::vector<std::string> metric_names() const;     "loss" first, then e.g. "accuracy", "perplexity"
//   std::string default_monitor() const;                the metric that picks the best epoch
//   MetricSums new_sums() const;                        zeroed running sums
//   Var<T> train_loss(Model&, const Batch&, const BatchContext&, MetricSums&) const;  mean loss, with a graph
//   void evaluate(Model&, const Batch&, const BatchContext&, MetricSums&) const;      eval mode, no graph
//   std::vector<double> values(const MetricSums&) const;                              in metric_names() order
//   std::string details(const MetricSums&) const;       extra text for a report (a confusion matrix), or ""
//   Index tokens(const Batch&) const;                   tokens read, for throughput
//   double loss_units(const Batch&, const BatchContext&) const;  what the mean loss averages over (examples,
//                                                       predicted tokens); needed by data-parallel runs
//   bool lower_is_better(const std::string&) const;     optional: the direction of a metric (default: by name)
//
// A data source is a class with size(), num_batches(), batch_indices(epoch) and make_batch(indices), as
// data::Batcher.
#pragma once

#include <string>
#include <vector>

#include "eigenformer/core/config.hpp"

namespace eigenformer::train {

/// Where a batch stands: the 0-based epoch (a task that draws anew each epoch, such as masked-LM masking, keys its
/// draws on it and on the examples' indices) and whether it is a training batch.
struct BatchContext {
  Index epoch = 0;
  bool training = true;
};

/// A task's running sums over batches (loss sums, counts): what data-parallel ranks add up before the task turns
/// them into metric values.
using MetricSums = std::vector<double>;

/// Whether a smaller value of the metric is better: losses and perplexities; everything else is a score.
inline bool lower_is_better(const std::string& metric) {
  const auto ends_with = [&](const std::string& suffix) {
    return metric.size() >= suffix.size() && metric.compare(metric.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  return ends_with("loss") || ends_with("perplexity");
}

}  // namespace eigenformer::train
