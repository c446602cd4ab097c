// The masked-language-model task (BERT's pretraining objective, Devlin et al. 2019, chosen as BERT's
// create_pretraining_data.py chooses): in each sequence, round(0.15 n) of its n tokens that are not special (at
// least one) are chosen at random, or whole words with their "##" pieces until that count is reached; a chosen
// token becomes [MASK] with probability 0.8, a random token with 0.1, and stays with 0.1; the model predicts the
// original token at the chosen positions. The choice is drawn from a stream keyed by (seed, epoch, example): masks
// are new every epoch, the same for an example whichever batch, thread or process sees it, and the validation
// masks are those of epoch 0 every time. Metrics: loss (mean over the predicted tokens), accuracy and perplexity.
// See train/task.hpp for what a task is.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "eigenformer/autograd/grad_mode.hpp"
#include "eigenformer/data/batcher.hpp"
#include "eigenformer/data/shuffle.hpp"
#include "eigenformer/ops/loss.hpp"
#include "eigenformer/ops/reduction.hpp"
#include "eigenformer/train/task.hpp"

namespace eigenformer::train {

/// How MaskedLmTask chooses and replaces tokens.
struct MaskedLmOptions {
  double probability = 0.15;      // the fraction of a sequence's tokens chosen (at least one)
  double mask_fraction = 0.8;     // of the chosen that become mask_id
  double random_fraction = 0.1;   // of the chosen that become a random token (the rest stay as they are)
  std::int64_t mask_id = -1;      // [MASK]'s id
  Index vocab_size = 0;           // random tokens are drawn from [0, vocab_size), special ids excepted
  std::vector<std::int64_t> special_ids;  // never chosen, never drawn ([CLS], [SEP], [PAD], ...)
  /// Whole-word masking: with continuation[id] true for "##" pieces, words are chosen with all their pieces.
  bool whole_word = false;
  std::vector<bool> continuation;
  std::uint64_t seed = 0;
};

/// One batch's masked inputs and what the model must predict.
struct MaskedBatch {
  Tensor<std::int64_t> ids;        // (B, T): the batch's ids with the chosen tokens replaced
  Tensor<std::int64_t> positions;  // (N): flat indices b * T + t of the chosen tokens
  Tensor<std::int64_t> targets;    // (N): their original ids
};

/// Masked-LM training and evaluation of a model with forward_at(ids, padding_mask, token_type_ids, positions) ->
/// (N, vocab) logits at the given flat positions (nn::BertForMaskedLM).
class MaskedLmTask {
 public:
  using Batch = data::Batch;

  /// Throws ValueError naming the option out of range.
  explicit MaskedLmTask(MaskedLmOptions options) : o_(std::move(options)) {
    using eigenformer::detail::concat;
    const char* fn = "MaskedLmTask";
    const auto fraction = [fn](const char* name, double v) {
      if (!(v >= 0 && v <= 1)) throw ValueError(concat(fn, ": ", name, " is ", v, ", expected 0 <= ", name, " <= 1"));
    };
    fraction("probability", o_.probability);
    fraction("mask_fraction", o_.mask_fraction);
    fraction("random_fraction", o_.random_fraction);
    if (o_.mask_fraction + o_.random_fraction > 1)
      throw ValueError(concat(fn, ": mask_fraction + random_fraction is ", o_.mask_fraction + o_.random_fraction,
                              ", expected <= 1"));
    if (o_.vocab_size < 1) throw ValueError(concat(fn, ": vocab_size is ", o_.vocab_size, ", expected >= 1"));
    if (o_.mask_id < 0 || o_.mask_id >= o_.vocab_size)
      throw ValueError(concat(fn, ": mask_id is ", o_.mask_id, ", expected 0 <= mask_id < vocab_size ", o_.vocab_size));
    if (o_.whole_word && static_cast<Index>(o_.continuation.size()) != o_.vocab_size)
      throw ValueError(concat(fn, ": whole_word needs continuation flags for the ", o_.vocab_size, " ids, got ",
                              o_.continuation.size()));
    special_.assign(static_cast<std::size_t>(o_.vocab_size), false);
    for (const std::int64_t id : o_.special_ids)
      if (id >= 0 && id < o_.vocab_size) special_[static_cast<std::size_t>(id)] = true;
    for (std::int64_t id = 0; id < o_.vocab_size; ++id)
      if (!special_[static_cast<std::size_t>(id)]) drawable_.push_back(id);
    if (drawable_.empty()) throw ValueError(concat(fn, ": every id is special: no token can be drawn"));
  }

  const MaskedLmOptions& options() const { return o_; }

  std::vector<std::string> metric_names() const { return {"loss", "accuracy", "perplexity"}; }
  std::string default_monitor() const { return "loss"; }
  bool lower_is_better(const std::string& metric) const { return metric != "accuracy"; }
  /// [loss sum over predicted tokens, predicted tokens, correct predictions].
  MetricSums new_sums() const { return MetricSums(3, 0.0); }

  /// The masks of a batch in the given epoch: for each row, from the stream of (seed, epoch, batch.indices[row]).
  MaskedBatch mask(const Batch& batch, Index epoch) const {
    const Index B = batch.ids.size(0), Tn = batch.ids.size(1);
    MaskedBatch m;
    m.ids = batch.ids.clone();
    std::vector<std::int64_t> positions, targets;
    std::vector<std::vector<Index>> words;  // the choosable tokens of a row, grouped by word
    for (Index r = 0; r < B; ++r) {
      std::mt19937_64 gen(data::mix_seed(data::mix_seed(o_.seed, static_cast<std::uint64_t>(epoch)),
                                         static_cast<std::uint64_t>(batch.indices[static_cast<std::size_t>(r)])));
      words.clear();
      Index choosable = 0;
      for (Index t = 0; t < Tn; ++t) {
        const Index at = r * Tn + t;
        const std::int64_t id = batch.ids[at];
        if (batch.padding_mask.defined() && batch.padding_mask[at]) continue;
        if (id < 0 || id >= o_.vocab_size)
          throw ValueError(eigenformer::detail::concat("MaskedLmTask: token id ", id, " of example ",
                                                       batch.indices[static_cast<std::size_t>(r)],
                                                       " is out of range, expected 0 <= id < ", o_.vocab_size));
        if (special_[static_cast<std::size_t>(id)]) continue;
        const bool continues = o_.whole_word && o_.continuation[static_cast<std::size_t>(id)] && !words.empty() &&
                               words.back().back() == at - 1;
        if (continues)
          words.back().push_back(at);
        else
          words.push_back({at});
        ++choosable;
      }
      if (choosable == 0) continue;
      const Index target = std::max<Index>(1, static_cast<Index>(std::llround(o_.probability * double(choosable))));
      data::shuffle(words, gen);
      Index chosen = 0;
      const std::size_t first = positions.size();
      for (const std::vector<Index>& word : words) {
        if (chosen >= target) break;
        if (chosen + static_cast<Index>(word.size()) > target) continue;  // a word too long for what is left
        for (const Index at : word) positions.push_back(at);
        chosen += static_cast<Index>(word.size());
      }
      std::sort(positions.begin() + static_cast<std::ptrdiff_t>(first), positions.end());
      for (std::size_t j = first; j < positions.size(); ++j) replace(m, targets, positions[j], gen);
    }
    m.positions = Tensor<std::int64_t>::from(positions);
    m.targets = Tensor<std::int64_t>::from(targets);
    return m;
  }

  /// The batch's mean loss over its predicted tokens, with a graph, in the model's current mode.
  template <class Model>
  auto train_loss(Model& model, const Batch& batch, const BatchContext& context, MetricSums& sums) const {
    const MaskedBatch m = mask(batch, context.epoch);
    if (m.positions.numel() == 0)
      throw ValueError("MaskedLmTask: the batch has no token that can be predicted (only special tokens)");
    const auto logits = model.forward_at(m.ids, batch.padding_mask, Tensor<std::int64_t>(), m.positions);  // (N, V)
    auto loss = cross_entropy(logits, m.targets);
    add(sums, logits.value(), m.targets, static_cast<double>(loss.item()));
    return loss;
  }

  /// Adds the batch to sums with epoch 0's masks (the same every time it is evaluated), without a graph.
  template <class Model>
  void evaluate(Model& model, const Batch& batch, const BatchContext&, MetricSums& sums) const {
    NoGradGuard no_grad;
    const MaskedBatch m = mask(batch, 0);
    if (m.positions.numel() == 0) return;
    const auto logits = model.forward_at(m.ids, batch.padding_mask, Tensor<std::int64_t>(), m.positions);
    add(sums, logits.value(), m.targets, static_cast<double>(cross_entropy(logits, m.targets).item()));
  }

  std::vector<double> values(const MetricSums& s) const {
    const double n = s[1], nan = std::numeric_limits<double>::quiet_NaN();
    const double loss = n > 0 ? s[0] / n : nan;
    return {loss, n > 0 ? s[2] / n : nan, n > 0 ? std::exp(loss) : nan};
  }
  std::string details(const MetricSums&) const { return ""; }
  Index tokens(const Batch& batch) const { return batch.tokens; }
  /// The mean loss is over the masked tokens (the epoch's masks).
  double loss_units(const Batch& batch, const BatchContext& context) const {
    return static_cast<double>(mask(batch, context.epoch).positions.numel());
  }

 private:
  static double uniform(std::mt19937_64& gen) { return static_cast<double>(gen() >> 11) * 0x1.0p-53; }

  /// Replaces the chosen token at: 80% mask_id, 10% a random token, 10% unchanged (as the options' fractions say).
  void replace(MaskedBatch& m, std::vector<std::int64_t>& targets, Index at, std::mt19937_64& gen) const {
    targets.push_back(m.ids[at]);
    const double u = uniform(gen);
    if (u < o_.mask_fraction) {
      m.ids[at] = o_.mask_id;
    } else if (u < o_.mask_fraction + o_.random_fraction) {
      m.ids[at] = drawable_[static_cast<std::size_t>(gen() % drawable_.size())];
    }
  }

  template <typename T>
  static void add(MetricSums& sums, const Tensor<T>& logits, const Tensor<std::int64_t>& targets, double mean_loss) {
    const Index n = targets.numel();
    sums[0] += mean_loss * static_cast<double>(n);
    sums[1] += static_cast<double>(n);
    const Tensor<std::int64_t> predicted = argmax(logits, 1);
    for (Index i = 0; i < n; ++i) sums[2] += predicted[i] == targets[i];
  }

  MaskedLmOptions o_;
  std::vector<bool> special_;
  std::vector<std::int64_t> drawable_;
};

}  // namespace eigenformer::train
