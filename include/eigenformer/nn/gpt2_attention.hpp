// GPT-2's causal self-attention with transformers' parameter names (GPT2Attention: c_attn, c_proj, attn_dropout,
// resid_dropout; Radford et al. 2019): the packed (B, T, 3C) projection c_attn, causal multi-head attention, the
// output projection c_proj adding the residual. A forward over a whole sequence records a graph (training); a
// forward over new positions with a key/value cache (decoding) appends their keys and values to the cache and
// attends over it where it lies.
#pragma once

#include <cmath>
#include <cstdint>

#include "eigenformer/core/fields.hpp"
#include "eigenformer/nn/conv1d.hpp"
#include "eigenformer/nn/dropout.hpp"
#include "eigenformer/nn/kv_cache.hpp"
#include "eigenformer/nn/module.hpp"
#include "eigenformer/ops/attention.hpp"
#include "eigenformer/ops/elementwise.hpp"

namespace eigenformer::nn {

/// Causal multi-head self-attention over (B, T, C) inputs, its projections stored (in, out).
template <typename T = float>
struct GPT2Attention : Module<GPT2Attention<T>, T> {
  struct Options {
    Index n_embd = 768;
    Index n_head = 12;
    T attn_pdrop = T(0.1);                         // dropout on the attention probabilities (training)
    T resid_pdrop = T(0.1);                        // dropout on the output projection (training)
    bool scale_attn_weights = true;                // scores / sqrt(head size)
    bool scale_attn_by_inverse_layer_idx = false;  // scores / (layer_idx + 1) as well
    Index layer_idx = 0;
    T init_std = T(0.02);       // c_attn's weight ~ N(0, init_std^2)
    T proj_init_std = T(0.02);  // c_proj's weight (transformers: initializer_range / sqrt(2 n_layer))
    std::uint64_t seed = 0;     // the two dropout generators

    EIGENFORMER_FIELDS(n_embd, n_head, attn_pdrop, resid_pdrop, scale_attn_weights, scale_attn_by_inverse_layer_idx,
                       layer_idx, init_std, proj_init_std, seed)
  };

  GPT2Attention() = default;
  GPT2Attention(const Options& o, Generator& gen) : options(o), attn_gen(o.seed * 2 + 1) {
    if (o.n_embd <= 0 || o.n_head <= 0 || o.n_embd % o.n_head != 0)
      throw ValueError(eigenformer::detail::concat("GPT2Attention: n_embd is ", o.n_embd, ", n_head is ", o.n_head,
                                                   ", expected n_embd > 0 divisible by n_head"));
    if (!(o.attn_pdrop >= 0 && o.attn_pdrop <= 1))
      throw ValueError(eigenformer::detail::concat("GPT2Attention: attn_pdrop is ", o.attn_pdrop,
                                                   ", expected 0 <= attn_pdrop <= 1"));
    if (o.layer_idx < 0)
      throw ValueError(eigenformer::detail::concat("GPT2Attention: layer_idx is ", o.layer_idx, ", expected >= 0"));
    typename Conv1D<T>::Options qkv;
    qkv.in_features = o.n_embd;
    qkv.out_features = 3 * o.n_embd;
    qkv.init_std = o.init_std;
    c_attn = Conv1D<T>(qkv, gen);
    typename Conv1D<T>::Options proj;
    proj.in_features = o.n_embd;
    proj.out_features = o.n_embd;
    proj.init_std = o.proj_init_std;
    c_proj = Conv1D<T>(proj, gen);
    resid_dropout = Dropout<T>(typename Dropout<T>::Options(o.resid_pdrop, o.seed * 2 + 2));
  }

  /// The factor applied to the scores q . k.
  T scale() const {
    T s = options.scale_attn_weights ? T(1) / std::sqrt(static_cast<T>(options.n_embd / options.n_head)) : T(1);
    if (options.scale_attn_by_inverse_layer_idx) s /= static_cast<T>(options.layer_idx + 1);
    return s;
  }

  /// residual + attention(x) over whole sequences: x (B, T, C), query t attending keys s <= t that are not
  /// padding (key_padding (B, T), true = padding; undefined = none). Records a graph.
  Var<T> forward_add(const Var<T>& x, const Var<T>& residual, const Tensor<bool>& key_padding = {}) {
    AttentionMask<T> mask;
    mask.causal = true;
    mask.key_padding = key_padding;
    AttentionOptions<T> opt;
    opt.scale = scale();
    if (this->is_training() && options.attn_pdrop > T(0)) {
      opt.dropout = options.attn_pdrop;
      opt.gen = &attn_gen;
    }
    const Var<T> heads =
        scaled_dot_product_attention_packed(c_attn.forward(x), options.n_head, mask, opt);  // (B, T, C)
    if (!resid_dropout.active()) return c_proj.forward_add(heads, residual);
    return add(residual, resid_dropout.forward(c_proj.forward(heads)));
  }

  /// residual + attention(x) for new positions x (B, Tq, C) of the sequences in cache: their keys and values go to
  /// the cache's layer `layer`, and each attends the cache's positions up to its own that are not padding. Call
  /// between the cache's begin_step and end_step, in eval mode without a graph (decoding).
  Var<T> forward_add_cached(const Var<T>& x, const Var<T>& residual, KVCache<T>& cache, Index layer) {
    const Index C = options.n_embd;
    const Var<T> qkv = c_attn.forward(x);  // (B, Tq, 3C): q | k | v
    cache.append(layer, qkv.value(), C, 2 * C);
    const Tensor<T> heads = cached_multi_head_attention(qkv.value(), options.n_head, cache.view(layer), scale());
    return c_proj.forward_add(Var<T>(heads), residual);
  }

  template <class V>
  void visit(V& v) {
    v.module("c_attn", c_attn);
    v.module("c_proj", c_proj);
    v.generator("attn_dropout", attn_gen);
    v.module("resid_dropout", resid_dropout);
  }

  Options options;
  Conv1D<T> c_attn;    // (C, 3C)
  Conv1D<T> c_proj;    // (C, C)
  Generator attn_gen;  // dropout on the attention probabilities (transformers' attn_dropout)
  Dropout<T> resid_dropout;
};

}  // namespace eigenformer::nn
