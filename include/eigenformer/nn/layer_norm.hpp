// Layer normalization over the last dimension (Ba et al. 2016); matches torch.nn.LayerNorm.
#pragma once

#include "eigenformer/nn/module.hpp"
#include "eigenformer/ops/layer_norm.hpp"

namespace eigenformer::nn {

/// Normalizes each vector of the last axis to zero mean and unit variance, then scales and shifts.
template <typename T = float>
struct LayerNorm : Module<LayerNorm<T>, T> {
  struct Options {
    Index dim = 0;
    T eps = T(1e-5);
    bool elementwise_affine = true;

    Options() = default;
    Options(Index d, T epsilon = T(1e-5), bool affine = true) : dim(d), eps(epsilon), elementwise_affine(affine) {}
    EIGENFORMER_FIELDS(dim, eps, elementwise_affine)
  };

  LayerNorm() = default;
  explicit LayerNorm(const Options& o) : options(o) {
    if (o.dim <= 0) throw ValueError(eigenformer::detail::concat("LayerNorm: dim is ", o.dim, ", expected > 0"));
    if (!(o.eps > 0)) throw ValueError(eigenformer::detail::concat("LayerNorm: eps is ", o.eps, ", expected > 0"));
    if (o.elementwise_affine) {
      weight = Var<T>(Tensor<T>::ones({o.dim}), true);
      bias = Var<T>(Tensor<T>::zeros({o.dim}), true);
    }
  }

  /// x: (..., dim) -> same shape.
  Var<T> forward(const Var<T>& x) const { return layer_norm(x, weight, bias, options.eps); }

  template <class V>
  void visit(V& v) {
    v.parameter("weight", weight);
    v.parameter("bias", bias);
  }

  Options options;
  Var<T> weight;  // (dim)
  Var<T> bias;    // (dim)
};

}  // namespace eigenformer::nn
