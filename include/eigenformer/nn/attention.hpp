// Attention modules: scaled dot-product attention with dropout on the weights, and multi-head attention
// compatible with torch.nn.MultiheadAttention (packed in_proj_weight (3C, C) and in_proj_bias, out_proj).
#pragma once

#include <cstdint>
#include <vector>

#include "eigenformer/nn/init.hpp"
#include "eigenformer/nn/linear.hpp"
#include "eigenformer/nn/module.hpp"
#include "eigenformer/ops/attention.hpp"
#include "eigenformer/ops/layout.hpp"
#include "eigenformer/ops/reduction.hpp"

namespace eigenformer::nn {

/// softmax(Q K^T / sqrt(D) + mask) V as a module: holds the dropout rate and generator of the attention weights.
template <typename T = float>
struct ScaledDotProductAttention : Module<ScaledDotProductAttention<T>, T> {
  struct Options {
    T dropout = T(0);
    std::uint64_t seed = 0;

    EIGENFORMER_FIELDS(dropout, seed)
  };

  ScaledDotProductAttention() = default;
  explicit ScaledDotProductAttention(const Options& o) : options(o), gen(o.seed) {
    if (!(o.dropout >= 0 && o.dropout <= 1))
      throw ValueError(eigenformer::detail::concat("ScaledDotProductAttention: dropout is ", o.dropout,
                                                   ", expected 0 <= dropout <= 1"));
  }

  /// q (..., T, D), k (..., S, D), v (..., S, Dv) -> (..., T, Dv); probs_out, when given, receives the weights.
  Var<T> forward(const Var<T>& q, const Var<T>& k, const Var<T>& v, const AttentionMask<T>& mask = {},
                 Tensor<T>* probs_out = nullptr) {
    AttentionOptions<T> opt;
    opt.dropout = this->is_training() ? options.dropout : T(0);
    opt.gen = &gen;
    opt.probs_out = probs_out;
    return scaled_dot_product_attention(q, k, v, mask, opt);
  }

  /// Self-attention on packed projections qkv (B, T, 3C) -> (B, T, C), heads merged; probs_out receives
  /// (B, H, T, T).
  Var<T> forward_packed(const Var<T>& qkv, Index num_heads, const AttentionMask<T>& mask = {},
                        Tensor<T>* probs_out = nullptr) {
    AttentionOptions<T> opt;
    opt.dropout = this->is_training() ? options.dropout : T(0);
    opt.gen = &gen;
    opt.probs_out = probs_out;
    return scaled_dot_product_attention_packed(qkv, num_heads, mask, opt);
  }

  template <class V>
  void visit(V& v) {
    v.generator("", gen);
  }

  Options options;
  Generator gen;
};

/// Multi-head attention with torch.nn.MultiheadAttention's parameters, names and initialization (batch_first).
template <typename T = float>
struct MultiHeadAttention : Module<MultiHeadAttention<T>, T> {
  struct Options {
    Index embed_dim = 0;
    Index num_heads = 1;
    T dropout = T(0);  // on the attention weights, in training mode
    bool bias = true;
    std::uint64_t seed = 0;  // dropout generator

    EIGENFORMER_FIELDS(embed_dim, num_heads, dropout, bias, seed)
  };

  /// What forward returns: the output (B, T, C) and, when asked for, the attention weights (B, T, S) averaged
  /// over heads (or (B, H, T, S) per head).
  struct Result {
    Var<T> output;
    Tensor<T> attn_weights;
  };

  MultiHeadAttention() = default;
  MultiHeadAttention(const Options& o, Generator& gen) : options(o) {
    if (o.embed_dim <= 0 || o.num_heads <= 0 || o.embed_dim % o.num_heads != 0)
      throw ValueError(eigenformer::detail::concat("MultiHeadAttention: embed_dim is ", o.embed_dim, ", num_heads is ",
                                                   o.num_heads, ", expected embed_dim > 0 divisible by num_heads"));
    const Index C = o.embed_dim;
    in_proj_weight = Var<T>(init::xavier_uniform<T>(3 * C, C, gen), true);
    if (o.bias) in_proj_bias = Var<T>(Tensor<T>::zeros({3 * C}), true);
    out_proj = Linear<T>(typename Linear<T>::Options(C, C, o.bias), gen);  // NonDynamicallyQuantizableLinear's init ...
    if (o.bias) out_proj.bias.value().set_zero();  // ... then _reset_parameters zeroes out_proj.bias
    typename ScaledDotProductAttention<T>::Options sdpa;
    sdpa.dropout = o.dropout;
    sdpa.seed = o.seed;
    attention = ScaledDotProductAttention<T>(sdpa);
  }

  /// Self-attention: x (B, T, C).
  Result forward(const Var<T>& x, const AttentionMask<T>& mask = {}, bool need_weights = false,
                 bool average_attn_weights = true) {
    check_input("x", x);
    // One projection GEMM, then attention reading the heads straight from the packed (B, T, 3C) result.
    Tensor<T> probs;
    const Var<T> heads = attention.forward_packed(linear(x, in_proj_weight, in_proj_bias), options.num_heads, mask,
                                                  need_weights ? &probs : nullptr);  // (B, T, C)
    return finish(heads, probs, need_weights, average_attn_weights);
  }

  /// residual + forward(x, mask).output, with the add done by the output projection's GEMM (linear_residual): the
  /// projection's own output is never stored. residual has x's shape. EncoderBlock uses it when its dropout after
  /// attention is off.
  Var<T> forward_add(const Var<T>& x, const Var<T>& residual, const AttentionMask<T>& mask = {}) {
    check_input("x", x);
    detail::check_residual("MultiHeadAttention::forward_add", x, residual);
    const Var<T> heads = attention.forward_packed(linear(x, in_proj_weight, in_proj_bias), options.num_heads, mask,
                                                  nullptr);  // (B, T, C)
    return out_proj.forward_add(heads, residual);
  }

  /// Attention of query (B, T, C) over key and value (B, S, C), with the packed projection split in three.
  Result forward(const Var<T>& query, const Var<T>& key, const Var<T>& value, const AttentionMask<T>& mask = {},
                 bool need_weights = false, bool average_attn_weights = true) {
    check_input("query", query);
    check_input("key", key);
    check_input("value", value);
    if (key.size(1) != value.size(1) || key.size(0) != query.size(0) || value.size(0) != query.size(0))
      throw ShapeError(eigenformer::detail::concat("MultiHeadAttention: query is ", to_string(query.shape()), ", key is ",
                                                   to_string(key.shape()), ", value is ", to_string(value.shape()),
                                                   ", expected the same batch and key/value lengths"));
    const Index C = options.embed_dim;
    const std::vector<Var<T>> w = split(in_proj_weight, {C, C, C}, 0);
    std::vector<Var<T>> b(3);
    if (in_proj_bias.defined()) b = split(in_proj_bias, {C, C, C}, 0);
    const Index H = options.num_heads;
    return attend(split_heads(linear(query, w[0], b[0]), H), split_heads(linear(key, w[1], b[1]), H),
                  split_heads(linear(value, w[2], b[2]), H), mask, need_weights, average_attn_weights);
  }

  template <class V>
  void visit(V& v) {
    v.parameter("in_proj_weight", in_proj_weight);
    v.parameter("in_proj_bias", in_proj_bias);
    v.module("out_proj", out_proj);
    v.module("attention", attention);
  }

  Options options;
  Var<T> in_proj_weight;  // (3C, C): rows [0, C) project queries, [C, 2C) keys, [2C, 3C) values
  Var<T> in_proj_bias;    // (3C)
  Linear<T> out_proj;     // (C, C)
  ScaledDotProductAttention<T> attention;

 private:
  void check_input(const char* arg, const Var<T>& x) const {
    if (x.dim() != 3 || x.size(2) != options.embed_dim)
      throw ShapeError(eigenformer::detail::concat("MultiHeadAttention: ", arg, " is ", to_string(x.shape()),
                                                   ", expected (B, T, ", options.embed_dim, ")"));
  }

  Result attend(const Var<T>& q, const Var<T>& k, const Var<T>& v, const AttentionMask<T>& mask, bool need_weights,
                bool average) {
    Tensor<T> probs;
    const Var<T> heads = attention.forward(q, k, v, mask, need_weights ? &probs : nullptr);  // (B, H, T, D)
    return finish(merge_heads(heads), probs, need_weights, average);
  }

  /// The output projection of the merged heads (B, T, C), and the weights when asked for.
  Result finish(const Var<T>& merged, const Tensor<T>& probs, bool need_weights, bool average) {
    Result r;
    r.output = out_proj.forward(merged);
    if (need_weights) {
      if (average) {
        const Index B = probs.size(0), H = probs.size(1), Tn = probs.size(2), S = probs.size(3);
        r.attn_weights = Tensor<T>::zeros({B, Tn, S});
        for (Index b = 0; b < B; ++b)
          for (Index h = 0; h < H; ++h)
            Eigen::Map<typename Tensor<T>::Matrix>(r.attn_weights.data() + b * Tn * S, Tn, S) +=
                probs.matrix(b * H + h) / static_cast<T>(H);
      } else {
        r.attn_weights = probs;
      }
    }
    return r;
  }
};

}  // namespace eigenformer::nn
