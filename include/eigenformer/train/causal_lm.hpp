// The causal language-modeling task: a decoder maps ids (B, T) to next-token logits (B, T, V) and learns the token
// after each position; the loss is the mean next-token cross-entropy, the metrics the loss and the perplexity
// exp(loss) (as transformers' run_clm reports it). Also the loss of transformers' GPT2LMHeadModel(labels=...), whose
// labels are the ids themselves, shifted inside. See train/task.hpp for what a task is.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "eigenformer/data/token_blocks.hpp"
#include "eigenformer/ops/layout.hpp"
#include "eigenformer/ops/loss.hpp"
#include "eigenformer/runtime/inference.hpp"
#include "eigenformer/train/task.hpp"

namespace eigenformer::train {

/// Mean cross-entropy of logits (B, T, V) against targets (B, T) that name the token each position predicts;
/// targets equal to ignore_index add nothing. The logits are read as (B * T, V) in place.
template <typename T>
Var<T> next_token_loss(const Var<T>& logits, const Tensor<std::int64_t>& targets, std::int64_t ignore_index = -100) {
  if (logits.dim() != 3 || targets.shape() != Shape{logits.size(0), logits.size(1)})
    throw ShapeError(eigenformer::detail::concat("next_token_loss: logits is ", to_string(logits.shape()),
                                                 ", targets is ", to_string(targets.shape()),
                                                 ", expected logits (B, T, V) and targets (B, T)"));
  CrossEntropyOptions o;
  o.ignore_index = ignore_index;
  const Index rows = logits.size(0) * logits.size(1);
  return cross_entropy(reshape(logits, {rows, logits.size(2)}), targets.reshape({rows}), o);
}

/// transformers' causal-LM loss (GPT2LMHeadModel(input_ids, labels=labels).loss): position t predicts labels
/// t + 1, labels equal to ignore_index (-100: padding) are left out. logits (B, T, V), labels (B, T).
template <typename T>
Var<T> causal_lm_loss(const Var<T>& logits, const Tensor<std::int64_t>& labels, std::int64_t ignore_index = -100) {
  if (labels.dim() != 2)
    throw ShapeError(
        eigenformer::detail::concat("causal_lm_loss: labels is ", to_string(labels.shape()), ", expected (B, T)"));
  const Index B = labels.size(0), Tn = labels.size(1);
  Tensor<std::int64_t> targets =
      Tensor<std::int64_t>::full({B, Tn}, ignore_index);  // the last position predicts nothing
  for (Index b = 0; b < B; ++b)
    for (Index t = 0; t + 1 < Tn; ++t) targets(b, t) = labels(b, t + 1);
  return next_token_loss(logits, targets, ignore_index);
}

/// Next-token prediction over data::TokenBlocks batches.
class CausalLmTask {
 public:
  using Batch = data::TokenBlockBatch;

  std::vector<std::string> metric_names() const { return {"loss", "perplexity"}; }
  std::string default_monitor() const { return "perplexity"; }

  /// [summed next-token loss, tokens predicted].
  MetricSums new_sums() const { return MetricSums(2, 0.0); }

  /// The batch's mean next-token loss, with a graph, in the model's current mode.
  template <class Model>
  auto train_loss(Model& model, const Batch& batch, const BatchContext&, MetricSums& sums) const {
    auto loss = next_token_loss(model.forward(batch.ids), batch.targets);
    add(sums, static_cast<double>(loss.item()), batch);
    return loss;
  }

  /// Adds the batch to sums: a forward without a graph (infer: the batch may be split across threads).
  template <class Model>
  void evaluate(Model& model, const Batch& batch, const BatchContext&, MetricSums& sums) const {
    const auto logits = infer(model, batch.ids);
    add(sums, static_cast<double>(next_token_loss(logits, batch.targets).item()), batch);
  }

  /// loss (mean per token) and perplexity; NaN for no tokens.
  std::vector<double> values(const MetricSums& sums) const {
    const double tokens = sums.size() > 1 ? sums[1] : 0.0;
    const double loss = tokens > 0 ? sums[0] / tokens : std::numeric_limits<double>::quiet_NaN();
    return {loss, std::exp(loss)};
  }

  std::string details(const MetricSums&) const { return {}; }
  Index tokens(const Batch& batch) const { return batch.tokens; }
  /// The mean loss is over the tokens predicted (targets that are not -100).
  double loss_units(const Batch& batch, const BatchContext&) const { return static_cast<double>(predicted(batch)); }

 private:
  static Index predicted(const Batch& batch) {
    Index counted = 0;
    for (Index i = 0; i < batch.targets.numel(); ++i) counted += batch.targets[i] != -100;
    return counted;
  }
  static void add(MetricSums& sums, double mean_loss, const Batch& batch) {
    const Index counted = predicted(batch);
    sums[0] += mean_loss * static_cast<double>(counted);
    sums[1] += static_cast<double>(counted);
  }
};

}  // namespace eigenformer::train
