// Position-wise feed-forward network: Linear -> activation -> dropout -> Linear, the inner part of
// torch.nn.TransformerEncoderLayer (parameters linear1 and linear2).
#pragma once

#include <cstdint>

#include "eigenformer/nn/activation.hpp"
#include "eigenformer/nn/dropout.hpp"
#include "eigenformer/nn/linear.hpp"
#include "eigenformer/nn/module.hpp"

namespace eigenformer::nn {

/// y = linear2(dropout(activation(linear1(x)))), x: (..., d_model).
template <typename T = float>
struct FeedForward : Module<FeedForward<T>, T> {
  struct Options {
    Index d_model = 0;
    Index dim_feedforward = 2048;
    Activation activation = Activation::relu;
    T dropout = T(0.1);
    std::uint64_t seed = 0;

    EIGENFORMER_FIELDS(d_model, dim_feedforward, activation, dropout, seed)
  };

  FeedForward() = default;
  FeedForward(const Options& o, Generator& gen) : options(o) {
    linear1 = Linear<T>(typename Linear<T>::Options(o.d_model, o.dim_feedforward), gen);
    dropout = Dropout<T>(typename Dropout<T>::Options(o.dropout, o.seed));
    linear2 = Linear<T>(typename Linear<T>::Options(o.dim_feedforward, o.d_model), gen);
  }

  Var<T> forward(const Var<T>& x) { return linear2.forward(dropout.forward(hidden(x))); }

  /// residual + forward(x), with the add done by linear2's GEMM: linear2's own output is never stored. residual
  /// has x's shape.
  Var<T> forward_add(const Var<T>& x, const Var<T>& residual) {
    detail::check_residual("FeedForward::forward_add", x, residual);
    return linear2.forward_add(dropout.forward(hidden(x)), residual);
  }

  template <class V>
  void visit(V& v) {
    v.module("linear1", linear1);
    v.module("dropout", dropout);
    v.module("linear2", linear2);
  }

  Options options;
  Linear<T> linear1;  // (dim_feedforward, d_model)
  Dropout<T> dropout;
  Linear<T> linear2;  // (d_model, dim_feedforward)

 private:
  /// activation(linear1(x)), (..., dim_feedforward).
  Var<T> hidden(const Var<T>& x) { return linear1.forward_activation(x, options.activation); }
};

}  // namespace eigenformer::nn
