// Linear layer y = x W^T + b, matching torch.nn.Linear (weight (out, in), its default initialization).
#pragma once

#include "eigenformer/nn/init.hpp"
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
  Var<T> forward(const Var<T>& x) const { return linear(x, weight, bias); }

  template <typename F>
  void visit_parameters(F&& f) {
    f("weight", weight);
    if (bias.defined()) f("bias", bias);
  }
  void set_training(bool) {}

  Options options;
  Var<T> weight;  // (out_features, in_features)
  Var<T> bias;    // (out_features), undefined when options.bias is false
};

}  // namespace eigenformer::nn
