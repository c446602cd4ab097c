// GPT-2's decoder stack with transformers' options, names and initialization (GPT2Model: wte, wpe, drop, h.N,
// ln_f; Radford et al. 2019): token and learned position embeddings, n_layer pre-norm blocks of causal
// self-attention, a final LayerNorm. forward() runs whole sequences with a graph (training, scoring);
// forward_cached() runs new positions with a key/value cache (decoding).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "eigenformer/autograd/grad_mode.hpp"
#include "eigenformer/core/fields.hpp"
#include "eigenformer/nn/dropout.hpp"
#include "eigenformer/nn/embedding.hpp"
#include "eigenformer/nn/gpt2_block.hpp"
#include "eigenformer/nn/kv_cache.hpp"
#include "eigenformer/nn/layer_norm.hpp"
#include "eigenformer/nn/module.hpp"
#include "eigenformer/ops/elementwise.hpp"

namespace eigenformer::nn {

/// The position ids of left-padded sequences as transformers' generate gives them: each row counts its tokens that
/// are not padding from 0 (cumsum(mask) - 1), and a padding position gets 1. padding (B, T): true = padding.
inline Tensor<std::int64_t> positions_from_padding(const Tensor<bool>& padding) {
  if (padding.dim() != 2)
    throw ShapeError(eigenformer::detail::concat("positions_from_padding: padding is ", to_string(padding.shape()),
                                                 ", expected (B, T)"));
  Tensor<std::int64_t> out = Tensor<std::int64_t>::empty(padding.shape());
  for (Index b = 0; b < padding.size(0); ++b) {
    std::int64_t next = 0;
    for (Index t = 0; t < padding.size(1); ++t) out(b, t) = padding(b, t) ? 1 : next++;
  }
  return out;
}

/// ids (B, T) -> hidden states (B, T, n_embd) after ln_f.
template <typename T = float>
struct GPT2Model : Module<GPT2Model<T>, T> {
  /// transformers' GPT2Config fields (same names and defaults: the 124M "gpt2" checkpoint's).
  struct Options {
    Index vocab_size = 50257;
    Index n_positions = 1024;  // the context: positions 0 .. n_positions - 1
    Index n_embd = 768;
    Index n_layer = 12;
    Index n_head = 12;
    Index n_inner = 0;  // feed-forward width; 0 = 4 * n_embd (transformers' None)
    std::string activation_function = "gelu_new";
    T resid_pdrop = T(0.1);
    T embd_pdrop = T(0.1);
    T attn_pdrop = T(0.1);
    T layer_norm_epsilon = T(1e-5);
    T initializer_range = T(0.02);
    bool scale_attn_weights = true;
    bool scale_attn_by_inverse_layer_idx = false;
    bool reorder_and_upcast_attn = false;  // transformers' fp16 safeguard: float32 attention computes the same
    std::uint64_t seed = 0;                // initialization and dropout streams

    EIGENFORMER_FIELDS(vocab_size, n_positions, n_embd, n_layer, n_head, n_inner, activation_function, resid_pdrop,
                       embd_pdrop, attn_pdrop, layer_norm_epsilon, initializer_range, scale_attn_weights,
                       scale_attn_by_inverse_layer_idx, reorder_and_upcast_attn, seed)

    /// The feed-forward width.
    Index inner() const { return n_inner > 0 ? n_inner : 4 * n_embd; }
  };
  using Config = Options;  // what io::from_pretrained builds the model from

  GPT2Model() = default;
  /// Builds the model with transformers' initialization: every weight N(0, initializer_range^2), each block's two
  /// c_proj weights N(0, initializer_range^2 / (2 n_layer)), biases 0, LayerNorms 1 and 0. Throws ValueError for
  /// inconsistent options (n_embd not divisible by n_head, an unknown activation, ...).
  explicit GPT2Model(const Options& o) : options(o) {
    const char* fn = "GPT2Model";
    if (o.vocab_size <= 0 || o.n_positions <= 0 || o.n_embd <= 0 || o.n_layer < 0 || o.n_head <= 0 || o.n_inner < 0)
      throw ValueError(eigenformer::detail::concat(fn, ": vocab_size is ", o.vocab_size, ", n_positions is ",
                                                   o.n_positions, ", n_embd is ", o.n_embd, ", n_layer is ", o.n_layer,
                                                   ", n_head is ", o.n_head, ", n_inner is ", o.n_inner,
                                                   ", expected sizes > 0 (n_layer, n_inner >= 0)"));
    if (o.n_embd % o.n_head != 0)
      throw ValueError(eigenformer::detail::concat(fn, ": n_embd is ", o.n_embd, ", n_head is ", o.n_head,
                                                   ", expected n_embd divisible by n_head"));
    for (const T p : {o.resid_pdrop, o.embd_pdrop, o.attn_pdrop})
      if (!(p >= 0 && p <= 1))
        throw ValueError(eigenformer::detail::concat(fn, ": resid_pdrop, embd_pdrop, attn_pdrop are ", o.resid_pdrop,
                                                     ", ", o.embd_pdrop, ", ", o.attn_pdrop,
                                                     ", expected each in [0, 1]"));
    if (!(o.initializer_range >= 0))
      throw ValueError(
          eigenformer::detail::concat(fn, ": initializer_range is ", o.initializer_range, ", expected >= 0"));
    Generator gen(o.seed);
    // Embedding's own initialization is torch.nn.Embedding's N(0, 1); transformers draws N(0, initializer_range^2).
    wte.options.num_embeddings = o.vocab_size;
    wte.options.embedding_dim = o.n_embd;
    wte.weight = Var<T>(Tensor<T>::normal({o.vocab_size, o.n_embd}, T(0), o.initializer_range, gen), true);
    wpe.options.num_embeddings = o.n_positions;
    wpe.options.embedding_dim = o.n_embd;
    wpe.weight = Var<T>(Tensor<T>::normal({o.n_positions, o.n_embd}, T(0), o.initializer_range, gen), true);
    drop = Dropout<T>(typename Dropout<T>::Options(o.embd_pdrop, o.seed * 4 + 1));
    const T proj_std = o.n_layer > 0 ? o.initializer_range / std::sqrt(T(2) * static_cast<T>(o.n_layer)) : T(0);
    h.reserve(static_cast<std::size_t>(o.n_layer));
    for (Index i = 0; i < o.n_layer; ++i) {
      typename GPT2Block<T>::Options b;
      b.layer_norm_epsilon = o.layer_norm_epsilon;
      b.attn.n_embd = o.n_embd;
      b.attn.n_head = o.n_head;
      b.attn.attn_pdrop = o.attn_pdrop;
      b.attn.resid_pdrop = o.resid_pdrop;
      b.attn.scale_attn_weights = o.scale_attn_weights;
      b.attn.scale_attn_by_inverse_layer_idx = o.scale_attn_by_inverse_layer_idx;
      b.attn.layer_idx = i;
      b.attn.init_std = o.initializer_range;
      b.attn.proj_init_std = proj_std;
      b.attn.seed = (o.seed * 4 + 2) * 1000003 + static_cast<std::uint64_t>(i) * 2;
      b.mlp.n_embd = o.n_embd;
      b.mlp.n_inner = o.inner();
      b.mlp.activation_function = o.activation_function;
      b.mlp.resid_pdrop = o.resid_pdrop;
      b.mlp.init_std = o.initializer_range;
      b.mlp.proj_init_std = proj_std;
      b.mlp.seed = (o.seed * 4 + 2) * 1000003 + static_cast<std::uint64_t>(i) * 2 + 1;
      h.emplace_back(b, gen);
    }
    ln_f = LayerNorm<T>(typename LayerNorm<T>::Options(o.n_embd, o.layer_norm_epsilon));
  }

  /// Whole sequences with a graph: ids (B, T) in [0, vocab_size) with T <= n_positions; padding (B, T), true =
  /// padding, keeps every query from attending those keys (undefined: none); position_ids (B, T) in [0,
  /// n_positions) (undefined: 0 .. T - 1 in every row; left-padded rows want positions_from_padding(padding)).
  /// Returns the hidden states (B, T, n_embd) after ln_f. Throws ValueError or ShapeError naming the bad input.
  Var<T> forward(const Tensor<std::int64_t>& ids, const Tensor<bool>& padding = {},
                 const Tensor<std::int64_t>& position_ids = {}) {
    const char* fn = "GPT2Model::forward";
    check_ids(fn, ids, options.n_positions);
    check_same_shape(fn, "padding", padding.defined() ? padding.shape() : ids.shape(), ids.shape());
    if (position_ids.defined()) {
      check_same_shape(fn, "position_ids", position_ids.shape(), ids.shape());
      check_positions(fn, position_ids);
    }
    Var<T> x = position_ids.defined() ? add(wte.forward(ids), wpe.forward(position_ids))
                                      : wte.forward_add_positions(ids, wpe.weight);  // (B, T, C)
    if (drop.active()) x = drop.forward(x);
    for (GPT2Block<T>& block : h) x = block.forward(x, padding);
    return ln_f.forward(x);
  }

  /// New positions with a key/value cache (decoding), in eval mode, without a graph: ids (B, Tq) follow what cache
  /// holds for the same B sequences (a new cache: the prompts); padding (B, Tq) marks padding tokens (left padding
  /// of prompts of different lengths; undefined: none). Each token's position id is the number of tokens its
  /// sequence held before it, padding not counted. The keys and values of the new positions are appended to the
  /// cache. Returns the hidden states (B, Tq, n_embd) after ln_f. Throws ValueError for ids out of range, a position
  /// past n_positions, a cache of other sizes or without room, or a model in training mode; the cache is then
  /// unchanged.
  Var<T> forward_cached(const Tensor<std::int64_t>& ids, KVCache<T>& cache, const Tensor<bool>& padding = {}) {
    const char* fn = "GPT2Model::forward_cached";
    if (this->is_training())
      throw ValueError(eigenformer::detail::concat(fn,
                                                   ": the model is in training mode, expected eval() (decoding "
                                                   "applies no dropout)"));
    check_ids(fn, ids, options.n_positions);
    if (ids.size(1) > cache.remaining())
      throw ValueError(eigenformer::detail::concat(fn, ": ", ids.size(1), " new tokens per sequence, but the cache ",
                                                   "has room for ", cache.remaining(), " more (capacity ",
                                                   cache.capacity(), ")"));
    if (cache.num_layers() != options.n_layer || cache.width() != options.n_embd || cache.batch() != ids.size(0))
      throw ValueError(eigenformer::detail::concat(fn, ": the cache has ", cache.num_layers(), " layers of width ",
                                                   cache.width(), " for ", cache.batch(), " sequences, expected ",
                                                   options.n_layer, " layers of width ", options.n_embd, " for ",
                                                   ids.size(0), " (make it with make_cache)"));
    NoGradGuard no_grad;
    const Tensor<std::int64_t> positions = cache.begin_step(ids.size(1), padding);  // (B, Tq)
    check_positions(fn, positions);
    Var<T> x = add(wte.forward(ids), wpe.forward(positions));  // (B, Tq, C)
    for (Index l = 0; l < options.n_layer; ++l) x = h[static_cast<std::size_t>(l)].forward_cached(x, cache, l);
    Var<T> out = ln_f.forward(x);
    cache.end_step();
    return out;
  }

  /// A key/value cache for batch sequences of up to capacity positions (capacity <= n_positions is not required:
  /// left padding takes positions without taking position ids).
  KVCache<T> make_cache(Index batch, Index capacity) const {
    return KVCache<T>(options.n_layer, batch, capacity, options.n_embd);
  }

  template <class V>
  void visit(V& v) {
    v.module("wte", wte);
    v.module("wpe", wpe);
    v.module("drop", drop);
    v.modules("h", h);
    v.module("ln_f", ln_f);
  }

  Options options;
  Embedding<T> wte;  // (vocab_size, n_embd)
  Embedding<T> wpe;  // (n_positions, n_embd)
  Dropout<T> drop;
  std::vector<GPT2Block<T>> h;
  LayerNorm<T> ln_f;

 private:
  /// ids must be (B, T) with B, T >= 1, T <= max_steps, every id in [0, vocab_size).
  void check_ids(const char* fn, const Tensor<std::int64_t>& ids, Index max_steps) const {
    if (ids.dim() != 2 || ids.size(0) == 0 || ids.size(1) == 0)
      throw ShapeError(
          eigenformer::detail::concat(fn, ": ids is ", to_string(ids.shape()), ", expected (B, T) with B, T >= 1"));
    if (ids.size(1) > max_steps)
      throw ValueError(eigenformer::detail::concat(fn, ": ", ids.size(1), " tokens per sequence, expected at most ",
                                                   max_steps, " (n_positions, the model's context)"));
    for (Index b = 0; b < ids.size(0); ++b)
      for (Index t = 0; t < ids.size(1); ++t) {
        const std::int64_t id = ids(b, t);
        if (id < 0 || id >= options.vocab_size)
          throw ValueError(
              eigenformer::detail::concat(fn, ": token id ", id, " at (", b, ", ", t,
                                          ") is out of range, expected 0 <= id < vocab_size = ", options.vocab_size));
      }
  }
  void check_positions(const char* fn, const Tensor<std::int64_t>& positions) const {
    for (Index i = 0; i < positions.numel(); ++i)
      if (positions[i] < 0 || positions[i] >= options.n_positions)
        throw ValueError(eigenformer::detail::concat(fn, ": position id ", positions[i], " of token ", i,
                                                     " is out of range, expected 0 <= position < n_positions = ",
                                                     options.n_positions, " (the model's context)"));
  }
  static void check_same_shape(const char* fn, const char* what, const Shape& got, const Shape& want) {
    if (got != want)
      throw ShapeError(eigenformer::detail::concat(fn, ": ", what, " is ", to_string(got), ", expected ids' shape ",
                                                   to_string(want)));
  }
};

}  // namespace eigenformer::nn
