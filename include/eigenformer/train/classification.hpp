// The sequence classification task: a model maps ids (B, T) and a padding mask to logits (B, C); the loss is the
// mean cross-entropy against the batch's labels; the metrics are the loss, accuracy and macro-F1 (from the
// confusion matrix it accumulates). See train/task.hpp for what a task is.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "eigenformer/data/batcher.hpp"
#include "eigenformer/ops/loss.hpp"
#include "eigenformer/ops/reduction.hpp"
#include "eigenformer/runtime/inference.hpp"
#include "eigenformer/train/metrics.hpp"
#include "eigenformer/train/task.hpp"

namespace eigenformer::train {

/// Classification into num_classes classes, optionally named (for the confusion matrix in reports).
class ClassificationTask {
 public:
  using Batch = data::Batch;

  /// Throws ValueError unless num_classes >= 1 and labels is empty or holds num_classes names.
  explicit ClassificationTask(Index num_classes, std::vector<std::string> labels = {})
      : classes_(num_classes), labels_(std::move(labels)) {
    if (num_classes < 1)
      throw ValueError(eigenformer::detail::concat("ClassificationTask: num_classes is ", num_classes,
                                                   ", expected at least 1"));
    if (!labels_.empty() && static_cast<Index>(labels_.size()) != num_classes)
      throw ValueError(eigenformer::detail::concat("ClassificationTask: got ", labels_.size(), " labels for ",
                                                   num_classes, " classes"));
  }

  Index num_classes() const { return classes_; }

  std::vector<std::string> metric_names() const { return {"loss", "accuracy", "macro_f1"}; }
  std::string default_monitor() const { return "accuracy"; }

  /// [loss sum over examples, examples, the confusion counts (C, C)].
  MetricSums new_sums() const { return MetricSums(static_cast<std::size_t>(2 + classes_ * classes_), 0.0); }

  /// The batch's mean cross-entropy, with a graph, in the model's current mode.
  template <class Model>
  auto train_loss(Model& model, const Batch& batch, const BatchContext&, MetricSums& sums) const {
    const auto logits = model.forward(batch.ids, batch.padding_mask);  // (B, C)
    auto loss = cross_entropy(logits, batch.labels);
    add(sums, logits.value(), batch.labels, static_cast<double>(loss.item()));
    return loss;
  }

  /// Adds the batch to sums: a forward without a graph (infer: the batch may be split across threads).
  template <class Model>
  void evaluate(Model& model, const Batch& batch, const BatchContext&, MetricSums& sums) const {
    const auto logits = infer(model, batch.ids, batch.padding_mask);
    add(sums, logits.value(), batch.labels, static_cast<double>(cross_entropy(logits, batch.labels).item()));
  }

  /// loss (mean per example), accuracy, macro-F1; NaN for no examples.
  std::vector<double> values(const MetricSums& sums) const {
    const ConfusionMatrix m = confusion(sums);
    const double examples = sums.size() > 1 ? sums[1] : 0.0;
    return {examples > 0 ? sums[0] / examples : std::numeric_limits<double>::quiet_NaN(), m.accuracy(), m.macro_f1()};
  }

  /// The confusion matrix as a table, rows = true labels.
  std::string details(const MetricSums& sums) const { return confusion(sums).to_string(labels_); }

  /// The confusion matrix the sums hold.
  ConfusionMatrix confusion(const MetricSums& sums) const {
    std::vector<Index> counts(static_cast<std::size_t>(classes_ * classes_), 0);
    for (std::size_t i = 0; i < counts.size() && i + 2 < sums.size(); ++i) counts[i] = static_cast<Index>(sums[i + 2]);
    return ConfusionMatrix(classes_, std::move(counts));
  }

  Index tokens(const Batch& batch) const { return batch.tokens; }
  /// The mean loss is over the batch's examples.
  double loss_units(const Batch& batch, const BatchContext&) const { return static_cast<double>(batch.labels.numel()); }

 private:
  template <typename T>
  void add(MetricSums& sums, const Tensor<T>& logits, const Tensor<std::int64_t>& labels, double mean_loss) const {
    if (logits.dim() != 2 || logits.size(1) != classes_)
      throw ShapeError(eigenformer::detail::concat("ClassificationTask: the model gave logits ",
                                                   to_string(logits.shape()), ", expected (B, ", classes_, ")"));
    const Index b = labels.numel();
    sums[0] += mean_loss * static_cast<double>(b);
    sums[1] += static_cast<double>(b);
    const Tensor<std::int64_t> predicted = argmax(logits, 1);
    for (Index i = 0; i < b; ++i) {
      const std::int64_t t = labels[i], p = predicted[i];
      if (t < 0 || t >= classes_)
        throw ValueError(eigenformer::detail::concat("ClassificationTask: label ", t, " of example ",
                                                     i, " in the batch is out of range, expected 0 <= label < ",
                                                     classes_));
      sums[static_cast<std::size_t>(2 + t * classes_ + p)] += 1;
    }
  }

  Index classes_;
  std::vector<std::string> labels_;
};

}  // namespace eigenformer::train
