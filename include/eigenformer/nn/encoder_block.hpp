// One transformer encoder layer with the options, parameter names and arithmetic of
// torch.nn.TransformerEncoderLayer: self-attention and feed-forward sublayers with residuals, post-norm (the
// default, "Attention Is All You Need") or pre-norm (norm_first).
#pragma once

#include <cstdint>

#include "eigenformer/nn/attention.hpp"
#include "eigenformer/nn/dropout.hpp"
#include "eigenformer/nn/feed_forward.hpp"
#include "eigenformer/nn/layer_norm.hpp"
#include "eigenformer/nn/module.hpp"
#include "eigenformer/ops/elementwise.hpp"
#include "eigenformer/ops/layout.hpp"

namespace eigenformer::nn {

/// A self-attention + feed-forward block over (B, T, C) inputs (or (T, B, C) when batch_first is false).
template <typename T = float>
struct EncoderBlock : Module<EncoderBlock<T>, T> {
  struct Options {
    Index d_model = 512;
    Index nhead = 8;
    Index dim_feedforward = 2048;
    T dropout = T(0.1);
    Activation activation = Activation::relu;
    T layer_norm_eps = T(1e-5);
    bool batch_first = true;
    bool norm_first = false;
    std::uint64_t seed = 0;  // seeds the block's dropout generators

    EIGENFORMER_FIELDS(d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps, batch_first, norm_first,
                       seed)
  };

  EncoderBlock() = default;
  EncoderBlock(const Options& o, Generator& gen) : options(o) {
    if (o.d_model <= 0 || o.nhead <= 0 || o.d_model % o.nhead != 0)
      throw ValueError(eigenformer::detail::concat("EncoderBlock: d_model is ", o.d_model, ", nhead is ", o.nhead,
                                                   ", expected d_model > 0 divisible by nhead"));
    if (o.dim_feedforward <= 0)
      throw ValueError(eigenformer::detail::concat("EncoderBlock: dim_feedforward is ", o.dim_feedforward,
                                                   ", expected > 0"));
    // Each dropout draws from a stream of its own: seed * 4 + 1 .. 4.
    typename MultiHeadAttention<T>::Options attn;
    attn.embed_dim = o.d_model;
    attn.num_heads = o.nhead;
    attn.dropout = o.dropout;
    attn.seed = o.seed * 4 + 1;
    self_attn = MultiHeadAttention<T>(attn, gen);
    typename FeedForward<T>::Options ffo;
    ffo.d_model = o.d_model;
    ffo.dim_feedforward = o.dim_feedforward;
    ffo.activation = o.activation;
    ffo.dropout = o.dropout;
    ffo.seed = o.seed * 4 + 2;
    ff = FeedForward<T>(ffo, gen);
    norm1 = LayerNorm<T>(typename LayerNorm<T>::Options(o.d_model, o.layer_norm_eps));
    norm2 = LayerNorm<T>(typename LayerNorm<T>::Options(o.d_model, o.layer_norm_eps));
    dropout1 = Dropout<T>(typename Dropout<T>::Options(o.dropout, o.seed * 4 + 3));
    dropout2 = Dropout<T>(typename Dropout<T>::Options(o.dropout, o.seed * 4 + 4));
  }

  /// x: (B, T, C) (or (T, B, C) when batch_first is false); mask.key_padding (B, T) with true = padding.
  Var<T> forward(const Var<T>& x, const AttentionMask<T>& mask = {}) {
    if (!options.batch_first) return transpose(forward_batch_first(transpose(x, 0, 1), mask), 0, 1);
    return forward_batch_first(x, mask);
  }

  template <class V>
  void visit(V& v) {
    v.module("self_attn", self_attn);
    v.module("", ff);  // linear1, dropout, linear2: direct children of the layer in PyTorch
    v.module("norm1", norm1);
    v.module("norm2", norm2);
    v.module("dropout1", dropout1);
    v.module("dropout2", dropout2);
  }

  Options options;
  MultiHeadAttention<T> self_attn;
  FeedForward<T> ff;
  LayerNorm<T> norm1, norm2;
  Dropout<T> dropout1, dropout2;

 private:
  Var<T> forward_batch_first(const Var<T>& x, const AttentionMask<T>& mask) {
    if (x.dim() != 3 || x.size(2) != options.d_model)
      throw ShapeError(eigenformer::detail::concat("EncoderBlock: x is ", to_string(x.shape()), ", expected (B, T, ",
                                                   options.d_model, ")"));
    // residual + sublayer(h): without dropout after the sublayer, its last projection adds the residual in its own
    // GEMM (no separate add, and the projection's output is not kept for the backward).
    auto sa = [&](const Var<T>& h, const Var<T>& residual) {
      if (!dropout1.active()) return self_attn.forward_add(h, residual, mask);
      return add(residual, dropout1.forward(self_attn.forward(h, mask).output));
    };
    auto ffb = [&](const Var<T>& h, const Var<T>& residual) {
      if (!dropout2.active()) return ff.forward_add(h, residual);
      return add(residual, dropout2.forward(ff.forward(h)));
    };
    if (options.norm_first) {
      const Var<T> h = sa(norm1.forward(x), x);
      return ffb(norm2.forward(h), h);
    }
    const Var<T> h = norm1.forward(sa(x, x));
    return norm2.forward(ffb(h, h));
  }
};

}  // namespace eigenformer::nn
