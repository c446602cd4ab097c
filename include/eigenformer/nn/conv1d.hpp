// transformers' Conv1D (pytorch_utils.Conv1D), GPT-2's projection layer: a linear map y = x W + b whose weight is
// stored (in, out), transposed from torch.nn.Linear, so that checkpoints load as they are. The same fused forms as
// Linear: relu in the GEMM's store, a residual added by the GEMM.
#pragma once

#include "eigenformer/core/fields.hpp"
#include "eigenformer/nn/activation.hpp"
#include "eigenformer/nn/module.hpp"
#include "eigenformer/ops/linear.hpp"

namespace eigenformer::nn {

/// A fully connected layer over the last axis with its weight stored (in_features, out_features).
template <typename T = float>
struct Conv1D : Module<Conv1D<T>, T> {
  struct Options {
    Index in_features = 0;   // transformers' nx
    Index out_features = 0;  // transformers' nf
    T init_std = T(0.02);    // weight ~ N(0, init_std^2), bias zero (transformers' initialization)

    EIGENFORMER_FIELDS(in_features, out_features, init_std)
  };

  Conv1D() = default;
  Conv1D(const Options& o, Generator& gen) : options(o) {
    if (o.in_features <= 0 || o.out_features <= 0)
      throw ValueError(eigenformer::detail::concat("Conv1D: in_features is ", o.in_features, ", out_features is ",
                                                   o.out_features, ", expected both > 0"));
    if (!(o.init_std >= 0))
      throw ValueError(eigenformer::detail::concat("Conv1D: init_std is ", o.init_std, ", expected >= 0"));
    weight = Var<T>(Tensor<T>::normal({o.in_features, o.out_features}, T(0), o.init_std, gen), true);
    bias = Var<T>(Tensor<T>::zeros({o.out_features}), true);
  }

  /// x: (..., in_features) -> (..., out_features).
  Var<T> forward(const Var<T>& x) const { return linear_in_out(x, weight, bias); }
  /// activation(x W + b); relu is applied as the GEMM stores its result.
  Var<T> forward_activation(const Var<T>& x, Activation a) const {
    if (a == Activation::relu)
      return eigenformer::detail::linear_op("linear_in_out", x, weight, bias, true, Var<T>(),
                                            eigenformer::detail::WeightLayout::in_out);
    return activate(forward(x), a);
  }
  /// residual + x W + b, the GEMM adding its product to a copy of residual (the projection's output is never
  /// stored); residual has the output's shape.
  Var<T> forward_add(const Var<T>& x, const Var<T>& residual) const {
    if (!residual.defined()) throw ValueError("Conv1D::forward_add: residual is undefined, expected a tensor");
    return linear_in_out(x, weight, bias, residual);
  }

  template <class V>
  void visit(V& v) {
    v.parameter("weight", weight);
    v.parameter("bias", bias);
  }

  Options options;
  Var<T> weight;  // (in_features, out_features)
  Var<T> bias;    // (out_features)
};

}  // namespace eigenformer::nn
