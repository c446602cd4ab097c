// How a decoder's next token is chosen from its logits, with the processors of transformers' generate in its
// order: the repetition penalty (Keskar et al. 2019, CTRL), then temperature, top-k and top-p (nucleus, Holtzman et
// al. 2020), then a draw from the softmax of what is left; temperature 0 is greedy decoding (argmax).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <vector>

#include "eigenformer/core/config.hpp"
#include "eigenformer/core/error.hpp"
#include "eigenformer/core/fields.hpp"
#include "eigenformer/tensor/tensor.hpp"

namespace eigenformer {

/// The choice of the next token.
struct SamplingOptions {
  double temperature = 1.0;         // 0: greedy (argmax); > 0: the logits are divided by it before the draw
  Index top_k = 50;                 // draw among the k most likely tokens (ties at the k-th kept); 0 = every token
  double top_p = 1.0;               // then among the fewest most likely tokens whose probability reaches it, (0, 1]
  double repetition_penalty = 1.0;  // > 0: a logit of a token already in the sequence is divided by it (multiplied
                                    // when negative); 1 = off

  EIGENFORMER_FIELDS(temperature, top_k, top_p, repetition_penalty)

  bool greedy() const { return temperature == 0; }
};

/// Throws ValueError naming fn and the option that is out of range.
inline void check_sampling_options(const char* fn, const SamplingOptions& o) {
  using detail::concat;
  if (!(o.temperature >= 0) || !std::isfinite(o.temperature))
    throw ValueError(concat(fn, ": temperature is ", o.temperature, ", expected a finite value >= 0 (0 = greedy)"));
  if (o.top_k < 0) throw ValueError(concat(fn, ": top_k is ", o.top_k, ", expected >= 0 (0 = off)"));
  if (!(o.top_p > 0 && o.top_p <= 1)) throw ValueError(concat(fn, ": top_p is ", o.top_p, ", expected 0 < top_p <= 1"));
  if (!(o.repetition_penalty > 0) || !std::isfinite(o.repetition_penalty))
    throw ValueError(
        concat(fn, ": repetition_penalty is ", o.repetition_penalty, ", expected a finite value > 0 (1 = off)"));
}

/// Chooses tokens from rows of logits. Holds its random generator and scratch buffers: one sampler per
/// generation (not shared between threads).
class TokenSampler {
 public:
  /// Throws ValueError for options out of range.
  explicit TokenSampler(const SamplingOptions& options, std::uint64_t seed = 0) : options_(options), gen_(seed) {
    check_sampling_options("TokenSampler", options);
  }

  const SamplingOptions& options() const { return options_; }

  /// The next token after a sequence: logits (V) of the position that predicts it, context the sequence so far
  /// (prompt and generated tokens; ids outside [0, V) are ignored), which the repetition penalty reads.
  std::int64_t next(const float* logits, Index V, const std::vector<std::int64_t>& context) {
    if (V < 1) throw ValueError(detail::concat("TokenSampler::next: ", V, " logits, expected at least one"));
    scores_.assign(logits, logits + V);
    if (options_.repetition_penalty != 1.0) apply_repetition_penalty(V, context);
    if (options_.greedy()) return argmax(V);
    const double inv_t = 1.0 / options_.temperature;
    // Candidates in order of decreasing score: only as many as top-k and top-p can keep are sorted (a nucleus is
    // usually a small part of the vocabulary; the sort widens until it covers it).
    const Index k = options_.top_k > 0 ? std::min(options_.top_k, V) : V;
    order_.resize(static_cast<std::size_t>(V));
    std::iota(order_.begin(), order_.end(), std::int64_t(0));
    const auto higher = [this](std::int64_t a, std::int64_t b) {
      const double x = scores_[static_cast<std::size_t>(a)], y = scores_[static_cast<std::size_t>(b)];
      return x > y || (x == y && a < b);
    };
    // Probabilities are exp((score - max) / temperature), normalized over the tokens top-k keeps: top-p measures
    // its mass among those, as transformers' warpers do one after the other.
    const double max_score = *std::max_element(scores_.begin(), scores_.end());
    Index kept = k;
    if (k < V) {  // top-k keeps every token whose score reaches the k-th largest (torch.topk's kth value)
      std::nth_element(order_.begin(), order_.begin() + (k - 1), order_.end(), higher);
      const double kth = scores_[static_cast<std::size_t>(order_[static_cast<std::size_t>(k - 1)])];
      kept = static_cast<Index>(
          std::partition(order_.begin(), order_.end(),
                         [&](std::int64_t i) { return scores_[static_cast<std::size_t>(i)] >= kth; }) -
          order_.begin());
    }
    // Unnormalized probabilities of the kept tokens.
    double total = 0;
    for (Index r = 0; r < kept; ++r)
      total += std::exp((scores_[static_cast<std::size_t>(order_[static_cast<std::size_t>(r)])] - max_score) * inv_t);
    if (options_.top_p < 1.0) kept = nucleus(kept, total, max_score, inv_t);
    total = 0;
    weights_.resize(static_cast<std::size_t>(kept));
    for (Index r = 0; r < kept; ++r) {
      weights_[static_cast<std::size_t>(r)] =
          std::exp((scores_[static_cast<std::size_t>(order_[static_cast<std::size_t>(r)])] - max_score) * inv_t);
      total += weights_[static_cast<std::size_t>(r)];
    }
    // Inverse-CDF draw with 53 random bits.
    const double u = static_cast<double>(gen_() >> 11) * 0x1.0p-53 * total;
    double acc = 0;
    for (Index r = 0; r < kept; ++r) {
      acc += weights_[static_cast<std::size_t>(r)];
      if (u < acc) return order_[static_cast<std::size_t>(r)];
    }
    return order_[static_cast<std::size_t>(kept - 1)];
  }

 private:
  void apply_repetition_penalty(Index V, const std::vector<std::int64_t>& context) {
    seen_.assign(static_cast<std::size_t>(V), false);
    const double p = options_.repetition_penalty;
    for (const std::int64_t id : context) {
      if (id < 0 || id >= V || seen_[static_cast<std::size_t>(id)]) continue;
      seen_[static_cast<std::size_t>(id)] = true;
      double& s = scores_[static_cast<std::size_t>(id)];
      s = s < 0 ? s * p : s / p;
    }
  }

  /// The first index of the largest score (NaN never wins).
  std::int64_t argmax(Index V) const {
    Index best = 0;
    for (Index i = 1; i < V; ++i)
      if (scores_[static_cast<std::size_t>(i)] > scores_[static_cast<std::size_t>(best)]) best = i;
    return best;
  }

  /// Of the `kept` candidates in order_[0, kept) (their weights summing to total), how many the nucleus keeps:
  /// sorted by decreasing score, tokens are kept while the probability of those before them is below top_p (so the
  /// token that reaches top_p is kept, and always the first). order_ is sorted that far.
  Index nucleus(Index kept, double total, double max_score, double inv_t) {
    const auto higher = [this](std::int64_t a, std::int64_t b) {
      const double x = scores_[static_cast<std::size_t>(a)], y = scores_[static_cast<std::size_t>(b)];
      return x > y || (x == y && a < b);
    };
    const double target = options_.top_p * total;
    Index sorted = 0;
    double before = 0;
    for (Index width = 64;; width *= 4) {
      const Index upto = std::min(kept, width);
      std::partial_sort(order_.begin() + sorted, order_.begin() + upto, order_.begin() + kept, higher);
      for (Index r = sorted; r < upto; ++r) {
        if (before >= target) return std::max<Index>(r, 1);
        before +=
            std::exp((scores_[static_cast<std::size_t>(order_[static_cast<std::size_t>(r)])] - max_score) * inv_t);
      }
      sorted = upto;
      if (upto == kept) return kept;
    }
  }

  SamplingOptions options_;
  Generator gen_;
  std::vector<double> scores_;
  std::vector<std::int64_t> order_;
  std::vector<double> weights_;
  std::vector<bool> seen_;
};

}  // namespace eigenformer
