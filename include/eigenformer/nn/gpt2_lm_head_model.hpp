// GPT-2 with its language-modeling head, as transformers' GPT2LMHeadModel: the decoder stack under "transformer."
// and lm_head, a bias-free linear map onto the vocabulary whose weight is the token embedding (tied, unless
// tie_word_embeddings is false). Logits for whole sequences with a graph (training, scoring), or for new positions
// with a key/value cache (decoding).
#pragma once

#include <algorithm>
#include <cstdint>

#include "eigenformer/autograd/grad_mode.hpp"
#include "eigenformer/core/fields.hpp"
#include "eigenformer/nn/gpt2_model.hpp"
#include "eigenformer/nn/kv_cache.hpp"
#include "eigenformer/nn/linear.hpp"
#include "eigenformer/nn/module.hpp"
#include "eigenformer/ops/layout.hpp"
#include "eigenformer/runtime/inference.hpp"

namespace eigenformer::nn {

/// ids (B, T) -> next-token logits (B, T, vocab_size).
template <typename T = float>
struct GPT2LMHeadModel : Module<GPT2LMHeadModel<T>, T> {
  struct Options {
    typename GPT2Model<T>::Options transformer;  // the decoder stack (transformers' GPT2Config fields)
    bool tie_word_embeddings = true;             // lm_head.weight is transformer.wte.weight
    std::int64_t bos_token_id = 50256;           // <|endoftext|> in GPT-2's vocabulary
    std::int64_t eos_token_id = 50256;           // where generation stops by default; -1 = none

    EIGENFORMER_FIELDS(transformer, tie_word_embeddings, bos_token_id, eos_token_id)
  };
  using Config = Options;  // what io::from_pretrained builds the model from

  GPT2LMHeadModel() = default;
  /// Builds the model (see GPT2Model for the initialization); an untied lm_head gets N(0, initializer_range^2).
  explicit GPT2LMHeadModel(const Options& o) : options(o), transformer(o.transformer) {
    const auto& t = o.transformer;
    if (o.eos_token_id < -1 || o.eos_token_id >= t.vocab_size || o.bos_token_id < -1 || o.bos_token_id >= t.vocab_size)
      throw ValueError(eigenformer::detail::concat("GPT2LMHeadModel: bos_token_id is ", o.bos_token_id,
                                                   ", eos_token_id is ", o.eos_token_id,
                                                   ", expected -1 (none) or ids below vocab_size = ", t.vocab_size));
    lm_head.options = typename Linear<T>::Options(t.n_embd, t.vocab_size, false);
    if (o.tie_word_embeddings) {
      lm_head.weight = transformer.wte.weight;  // one Var: one tensor, one gradient
    } else {
      Generator gen(t.seed * 4 + 3);
      lm_head.weight = Var<T>(Tensor<T>::normal({t.vocab_size, t.n_embd}, T(0), t.initializer_range, gen), true);
    }
  }

  /// Whole sequences with a graph (see GPT2Model::forward for ids, padding and position_ids): the logits
  /// (B, T, vocab_size) of the token after each position.
  Var<T> forward(const Tensor<std::int64_t>& ids, const Tensor<bool>& padding = {},
                 const Tensor<std::int64_t>& position_ids = {}) {
    return lm_head.forward(transformer.forward(ids, padding, position_ids));
  }

  /// New positions with a key/value cache (see GPT2Model::forward_cached), in eval mode, without a graph: the
  /// logits (B, vocab_size) of the token after each sequence's last new position, or with all_positions
  /// (B, Tq, vocab_size) of every new position. Only the positions asked for go through lm_head.
  Var<T> forward_cached(const Tensor<std::int64_t>& ids, KVCache<T>& cache, const Tensor<bool>& padding = {},
                        bool all_positions = false) {
    const Var<T> hidden = transformer.forward_cached(ids, cache, padding);  // (B, Tq, C)
    NoGradGuard no_grad;
    if (all_positions || hidden.size(1) == 1) {
      const Var<T> logits = lm_head.forward(hidden);
      return all_positions ? logits : reshape(logits, {logits.size(0), logits.size(2)});
    }
    return lm_head.forward(select(hidden, 1, hidden.size(1) - 1));  // (B, C) -> (B, V)
  }

  /// A key/value cache for batch sequences of up to capacity positions.
  KVCache<T> make_cache(Index batch, Index capacity) const { return transformer.make_cache(batch, capacity); }
  /// The longest sequence the model reads (n_positions).
  Index context_length() const { return options.transformer.n_positions; }
  Index vocab_size() const { return options.transformer.vocab_size; }
  /// The token that ends a text (generation stops there by default), or -1.
  std::int64_t eos_token_id() const { return options.eos_token_id; }

  /// The work of a forward over batch sequences of length tokens, for runners (runtime/inference.hpp): per layer the
  /// four projections and the two attention products, and lm_head.
  ForwardCost forward_cost(Index batch, Index length) const {
    const auto& t = options.transformer;
    const double C = double(t.n_embd), F = double(t.inner()), V = double(t.vocab_size);
    const double tokens = double(batch) * double(length);
    ForwardCost cost;
    cost.flops = 2 * tokens * ((4 * C * C + 2 * C * F + double(length) * C) * double(t.n_layer) + C * V);
    cost.largest_weight_bytes = std::max({3 * C * C, C * F, C * V}) * double(sizeof(T));
    return cost;
  }

  template <class V>
  void visit(V& v) {
    v.module("transformer", transformer);  // first: a tied weight is named transformer.wte.weight
    v.module("lm_head", lm_head);
  }

  Options options;
  GPT2Model<T> transformer;
  Linear<T> lm_head;  // weight (vocab_size, n_embd), no bias
};

}  // namespace eigenformer::nn
