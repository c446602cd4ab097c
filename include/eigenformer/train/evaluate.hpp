// Evaluation: a task's metrics over a data source (the `model.eval(); with torch.no_grad(): ...` loop of a PyTorch
// script), the classification shortcut (mean cross-entropy, accuracy, macro-F1, confusion matrix over a Batcher),
// and class probabilities for one batch.
#pragma once

#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "eigenformer/autograd/grad_mode.hpp"
#include "eigenformer/data/batcher.hpp"
#include "eigenformer/runtime/eval_mode.hpp"
#include "eigenformer/ops/softmax.hpp"
#include "eigenformer/runtime/inference.hpp"
#include "eigenformer/train/classification.hpp"
#include "eigenformer/train/metrics.hpp"
#include "eigenformer/train/task.hpp"

namespace eigenformer::train {

/// The task's sums over every batch of data (epoch's order; the sums do not depend on it), in eval mode without a
/// graph; the model's mode is restored afterwards. Throws ValueError for empty data, and what the model or the task
/// throw.
template <class Model, class Task, class Data>
MetricSums evaluate_sums(Model& model, const Task& task, const Data& data, Index epoch = 0) {
  if (data.size() == 0) throw ValueError("evaluate: the data holds no examples, expected at least one");
  EvalModeGuard<Model> mode(model);
  NoGradGuard no_grad;
  MetricSums sums = task.new_sums();
  BatchContext context;
  context.epoch = epoch;
  context.training = false;
  for (const std::vector<Index>& rows : data.batch_indices(epoch))
    if (!rows.empty()) task.evaluate(model, data.make_batch(rows), context, sums);  // a rank's share may be empty
  return sums;
}

/// What evaluate() measures for a classifier.
struct EvalResult {
  double loss = std::numeric_limits<double>::quiet_NaN();  // mean cross-entropy per example
  double accuracy = std::numeric_limits<double>::quiet_NaN();
  double macro_f1 = std::numeric_limits<double>::quiet_NaN();
  ConfusionMatrix confusion;
  Index examples = 0;
};

/// A classifier (forward(ids, padding_mask) -> (B, C) logits) over every batch of batcher, with num_classes classes
/// (0: the logits' width); see evaluate_sums.
template <class Model>
EvalResult evaluate(Model& model, const data::Batcher& batcher, Index num_classes = 0) {
  if (batcher.size() == 0) throw ValueError("evaluate: the batcher holds no examples, expected at least one");
  if (num_classes <= 0) {  // the model says: one forward of the first example
    EvalModeGuard<Model> mode(model);
    const data::Batch first = batcher.make_batch({0});
    num_classes = infer(model, first.ids, first.padding_mask).size(1);
  }
  const ClassificationTask task(num_classes);
  const MetricSums sums = evaluate_sums(model, task, batcher);
  const std::vector<double> v = task.values(sums);
  EvalResult r;
  r.loss = v[0];
  r.accuracy = v[1];
  r.macro_f1 = v[2];
  r.confusion = task.confusion(sums);
  r.examples = static_cast<Index>(sums[1]);
  return r;
}

/// Class probabilities (B, C) of one batch: softmax of the logits, in eval mode and without a graph (the model's
/// mode is restored afterwards; the batch may be split across threads).
template <class Model>
auto predict_proba(Model& model, const Tensor<std::int64_t>& ids, const Tensor<bool>& padding_mask = {}) {
  EvalModeGuard<Model> mode(model);
  NoGradGuard no_grad;
  return softmax(infer(model, ids, padding_mask)).value();
}

}  // namespace eigenformer::train
