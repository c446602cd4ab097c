// Linear layer y = x W^T + b, matching torch.nn.Linear (weight (out, in), its default initialization), with the
// fused forms that transformer blocks use: the activation folded into the GEMM's store (relu), and a residual
// added by the GEMM itself. Every module calls these on its Linear children and never reads their weights, so a
// change to how a Linear computes applies everywhere: a LoRA adapter (nn/lora.hpp) adds its update in each form.
#pragma once

#include <memory>

#include "eigenformer/core/fields.hpp"
#include "eigenformer/nn/activation.hpp"
#include "eigenformer/nn/init.hpp"
#include "eigenformer/nn/lora.hpp"
#include "eigenformer/nn/module.hpp"
#include "eigenformer/ops/linear.hpp"

namespace eigenformer::nn {

/// A fully connected layer over the last axis.
template <typename T = float>
struct Linear : Module<Linear<T>, T> {
  struct Options {
    Index in_features = 0;
    Index out_features = 0;
    bool bias = true;

    Options() = default;
    Options(Index in, Index out, bool with_bias = true) : in_features(in), out_features(out), bias(with_bias) {}
    EIGENFORMER_FIELDS(in_features, out_features, bias)
  };

  Linear() = default;
  Linear(const Options& o, Generator& gen) : options(o) {
    if (o.in_features <= 0 || o.out_features <= 0)
      throw ValueError(eigenformer::detail::concat("Linear: in_features is ", o.in_features, ", out_features is ",
                                                   o.out_features, ", expected both > 0"));
    weight = Var<T>(init::linear_default<T>({o.out_features, o.in_features}, o.in_features, gen), true);
    if (o.bias) bias = Var<T>(init::linear_default<T>({o.out_features}, o.in_features, gen), true);
  }

  /// x: (..., in_features) -> (..., out_features).
  Var<T> forward(const Var<T>& x) const {
    if (!adapter) return linear(x, weight, bias);
    return eigenformer::detail::linear_op("linear", x, weight, bias, false, adapter->delta(x));
  }
  /// relu(x W^T + b), the relu applied as the GEMM stores its result (one pass less over the output).
  Var<T> forward_relu(const Var<T>& x) const {
    if (!adapter) return linear_relu(x, weight, bias);
    return eigenformer::detail::linear_op("linear_relu", x, weight, bias, true, adapter->delta(x));
  }
  /// activation(x W^T + b), fused where the GEMM can apply the activation.
  Var<T> forward_activation(const Var<T>& x, Activation a) const {
    return a == Activation::relu ? forward_relu(x) : activate(forward(x), a);
  }
  /// residual + x W^T + b, the GEMM adding its product to a copy of residual (residual has the output's shape):
  /// the projection's own output is never stored.
  Var<T> forward_add(const Var<T>& x, const Var<T>& residual) const {
    if (!adapter) return linear_residual(x, weight, bias, residual);
    if (!residual.defined()) throw ValueError("Linear::forward_add: residual is undefined, expected a tensor");
    return linear_residual(x, weight, bias, add(residual, adapter->delta(x)));
  }

  template <class V>
  void visit(V& v) {
    v.parameter("weight", weight);
    v.parameter("bias", bias);
    if (adapter) v.module("", *adapter);  // lora_A.weight, lora_B.weight beside weight and bias
  }

  Options options;
  Var<T> weight;  // (out_features, in_features)
  Var<T> bias;    // (out_features), undefined when options.bias is false
  std::shared_ptr<LoraAdapter<T>> adapter;  // a LoRA update (add_lora), or null
};

}  // namespace eigenformer::nn
