// Evaluation of a sequence classifier over a Batcher (mean cross-entropy, accuracy, macro-F1, confusion matrix)
// and class probabilities for a batch: the `model.eval(); with torch.no_grad(): ...` loop of a PyTorch script.
//
// A classifier is a module (nn::Module) with Var<T> forward(const Tensor<std::int64_t>& ids, const Tensor<bool>&
// padding_mask) returning (B, C) logits, such as nn::EncoderClassifier.
#pragma once

#include <cstdint>
#include <limits>
#include <utility>

#include "eigenformer/autograd/grad_mode.hpp"
#include "eigenformer/data/batcher.hpp"
#include "eigenformer/ops/loss.hpp"
#include "eigenformer/ops/reduction.hpp"
#include "eigenformer/ops/softmax.hpp"
#include "eigenformer/train/metrics.hpp"

namespace eigenformer::train {

/// What evaluate() measures.
struct EvalResult {
  double loss = std::numeric_limits<double>::quiet_NaN();  // mean cross-entropy per example
  double accuracy = std::numeric_limits<double>::quiet_NaN();
  double macro_f1 = std::numeric_limits<double>::quiet_NaN();
  ConfusionMatrix confusion;
  Index examples = 0;
  Index tokens = 0;  // non-padding positions read
};

namespace detail {

/// Puts a module in eval mode for its lifetime and restores its previous mode.
template <class Model>
class EvalModeGuard {
 public:
  explicit EvalModeGuard(Model& model) : model_(model), was_training_(model.is_training()) { model_.eval(); }
  ~EvalModeGuard() { model_.train(was_training_); }
  EvalModeGuard(const EvalModeGuard&) = delete;
  EvalModeGuard& operator=(const EvalModeGuard&) = delete;

 private:
  Model& model_;
  bool was_training_;
};

}  // namespace detail

/// Runs model over every batch of batcher (epoch 0's order; the result does not depend on it) in eval mode
/// without recording a graph, and returns the mean loss, accuracy, macro-F1 and confusion matrix. The model's
/// train/eval mode is restored afterwards. Throws ValueError for an empty batcher, and what the model or
/// cross_entropy throw (a label out of range of the logits).
template <class Model>
EvalResult evaluate(Model& model, const data::Batcher& batcher) {
  if (batcher.size() == 0) throw ValueError("evaluate: the batcher holds no examples, expected at least one");
  detail::EvalModeGuard<Model> mode(model);
  NoGradGuard no_grad;
  EvalResult r;
  double loss_sum = 0;  // sum over examples of the per-example loss
  for (const std::vector<Index>& rows : batcher.batch_indices(0)) {
    const data::Batch batch = batcher.make_batch(rows);
    const auto logits = model.forward(batch.ids, batch.padding_mask);  // (B, C)
    if (r.examples == 0) r.confusion = ConfusionMatrix(logits.size(1));
    const Index b = batch.labels.numel();
    loss_sum += static_cast<double>(cross_entropy(logits, batch.labels).item()) * static_cast<double>(b);
    r.confusion.add(batch.labels, argmax(logits.value(), 1));
    r.examples += b;
    r.tokens += batch.tokens;
  }
  r.loss = loss_sum / static_cast<double>(r.examples);
  r.accuracy = r.confusion.accuracy();
  r.macro_f1 = r.confusion.macro_f1();
  return r;
}

/// Class probabilities (B, C) of one batch: softmax of the logits, in eval mode and without a graph (the model's
/// mode is restored afterwards).
template <class Model>
auto predict_proba(Model& model, const Tensor<std::int64_t>& ids, const Tensor<bool>& padding_mask = {}) {
  detail::EvalModeGuard<Model> mode(model);
  NoGradGuard no_grad;
  return softmax(model.forward(ids, padding_mask)).value();
}

}  // namespace eigenformer::train
