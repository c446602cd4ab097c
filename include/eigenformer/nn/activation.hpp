// The nonlinearity of a feed-forward block, by name: torch's "relu" and "gelu" (exact, erf), the tanh
// approximation of GELU (transformers' "gelu_new", GPT-2's), and SiLU (x * sigmoid(x), "swish").
#pragma once

#include "eigenformer/core/fields.hpp"
#include "eigenformer/ops/activation.hpp"
#include "eigenformer/ops/elementwise.hpp"

namespace eigenformer::nn {

enum class Activation { relu, gelu, gelu_tanh, silu };

inline constexpr EnumNames<Activation, 4> enum_names(Activation) {
  return {{{Activation::relu, "relu"},
           {Activation::gelu, "gelu"},
           {Activation::gelu_tanh, "gelu_tanh"},
           {Activation::silu, "silu"}}};
}

/// Applies the activation.
template <typename T>
Var<T> activate(const Var<T>& x, Activation a) {
  switch (a) {
    case Activation::relu:
      return relu(x);
    case Activation::gelu:
      return gelu(x);
    case Activation::gelu_tanh:
      return gelu(x, GeluApproximation::tanh);
    case Activation::silu:
    default:
      return mul(x, sigmoid(x));
  }
}

}  // namespace eigenformer::nn
