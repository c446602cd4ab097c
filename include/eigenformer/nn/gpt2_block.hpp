// One GPT-2 transformer block with transformers' names (GPT2Block: ln_1, attn, ln_2, mlp) and its feed-forward
// part (GPT2MLP: c_fc, the activation, c_proj, dropout): pre-norm, x + attn(ln_1(x)), then h + mlp(ln_2(h)).
#pragma once

#include <cstdint>
#include <string>

#include "eigenformer/core/fields.hpp"
#include "eigenformer/nn/conv1d.hpp"
#include "eigenformer/nn/dropout.hpp"
#include "eigenformer/nn/gpt2_attention.hpp"
#include "eigenformer/nn/hf_activation.hpp"
#include "eigenformer/nn/kv_cache.hpp"
#include "eigenformer/nn/layer_norm.hpp"
#include "eigenformer/nn/module.hpp"

namespace eigenformer::nn {

/// y = dropout(c_proj(act(c_fc(x)))), x: (..., C); act is named as transformers names it ("gelu_new", ...).
template <typename T = float>
struct GPT2MLP : Module<GPT2MLP<T>, T> {
  struct Options {
    Index n_embd = 768;
    Index n_inner = 3072;
    std::string activation_function = "gelu_new";
    T resid_pdrop = T(0.1);
    T init_std = T(0.02);       // c_fc's weight
    T proj_init_std = T(0.02);  // c_proj's weight
    std::uint64_t seed = 0;     // the dropout generator

    EIGENFORMER_FIELDS(n_embd, n_inner, activation_function, resid_pdrop, init_std, proj_init_std, seed)
  };

  GPT2MLP() = default;
  GPT2MLP(const Options& o, Generator& gen) : options(o) {
    if (!is_hf_activation(o.activation_function))
      throw ValueError(eigenformer::detail::concat("GPT2MLP: activation_function is \"", o.activation_function,
                                                   "\", expected one of ", hf_activation_names()));
    fused_ = hf_activation_as_enum(o.activation_function, activation_);
    typename Conv1D<T>::Options fc;
    fc.in_features = o.n_embd;
    fc.out_features = o.n_inner;
    fc.init_std = o.init_std;
    c_fc = Conv1D<T>(fc, gen);
    typename Conv1D<T>::Options proj;
    proj.in_features = o.n_inner;
    proj.out_features = o.n_embd;
    proj.init_std = o.proj_init_std;
    c_proj = Conv1D<T>(proj, gen);
    dropout = Dropout<T>(typename Dropout<T>::Options(o.resid_pdrop, o.seed));
  }

  /// residual + mlp(x); without active dropout c_proj's GEMM adds the residual.
  Var<T> forward_add(const Var<T>& x, const Var<T>& residual) {
    const Var<T> hidden = fused_ ? c_fc.forward_activation(x, activation_)
                                 : hf_activation(options.activation_function, c_fc.forward(x));  // (..., n_inner)
    if (!dropout.active()) return c_proj.forward_add(hidden, residual);
    return add(residual, dropout.forward(c_proj.forward(hidden)));
  }

  template <class V>
  void visit(V& v) {
    v.module("c_fc", c_fc);
    v.module("c_proj", c_proj);
    v.module("dropout", dropout);
  }

  Options options;
  Conv1D<T> c_fc;    // (C, n_inner)
  Conv1D<T> c_proj;  // (n_inner, C)
  Dropout<T> dropout;

 private:
  bool fused_ = false;  // the activation is an nn::Activation (relu then runs in c_fc's GEMM)
  Activation activation_ = Activation::gelu_tanh;
};

/// A pre-norm transformer block over (B, T, C).
template <typename T = float>
struct GPT2Block : Module<GPT2Block<T>, T> {
  struct Options {
    typename GPT2Attention<T>::Options attn;
    typename GPT2MLP<T>::Options mlp;
    T layer_norm_epsilon = T(1e-5);

    EIGENFORMER_FIELDS(attn, mlp, layer_norm_epsilon)
  };

  GPT2Block() = default;
  GPT2Block(const Options& o, Generator& gen) : options(o) {
    if (o.mlp.n_embd != o.attn.n_embd)
      throw ValueError(eigenformer::detail::concat("GPT2Block: mlp.n_embd is ", o.mlp.n_embd, ", attn.n_embd is ",
                                                   o.attn.n_embd, ", expected them equal"));
    ln_1 = LayerNorm<T>(typename LayerNorm<T>::Options(o.attn.n_embd, o.layer_norm_epsilon));
    attn = GPT2Attention<T>(o.attn, gen);
    ln_2 = LayerNorm<T>(typename LayerNorm<T>::Options(o.attn.n_embd, o.layer_norm_epsilon));
    mlp = GPT2MLP<T>(o.mlp, gen);
  }

  /// Whole sequences x (B, T, C); key_padding (B, T), true = padding (undefined = none). Records a graph.
  Var<T> forward(const Var<T>& x, const Tensor<bool>& key_padding = {}) {
    const Var<T> h = attn.forward_add(ln_1.forward(x), x, key_padding);
    return mlp.forward_add(ln_2.forward(h), h);
  }

  /// New positions x (B, Tq, C) of the sequences in cache (layer `layer`), between the cache's begin_step and
  /// end_step, in eval mode without a graph (decoding).
  Var<T> forward_cached(const Var<T>& x, KVCache<T>& cache, Index layer) {
    const Var<T> h = attn.forward_add_cached(ln_1.forward(x), x, cache, layer);
    return mlp.forward_add(ln_2.forward(h), h);
  }

  template <class V>
  void visit(V& v) {
    v.module("ln_1", ln_1);
    v.module("attn", attn);
    v.module("ln_2", ln_2);
    v.module("mlp", mlp);
  }

  Options options;
  LayerNorm<T> ln_1;
  GPT2Attention<T> attn;
  LayerNorm<T> ln_2;
  GPT2MLP<T> mlp;
};

}  // namespace eigenformer::nn
