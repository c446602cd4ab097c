// The activation functions of Hugging Face configs by name (transformers' ACT2FN: a config's
// "activation_function" or "hidden_act"), mapped onto eigenformer's ops.
#pragma once

#include <string>
#include <string_view>

#include "eigenformer/nn/activation.hpp"
#include "eigenformer/ops/activation.hpp"
#include "eigenformer/ops/elementwise.hpp"

namespace eigenformer::nn {

/// The names accepted, comma-separated (for messages).
inline const char* hf_activation_names() {
  return "relu, relu2, gelu, gelu_python, gelu_new, gelu_fast, gelu_accurate, gelu_pytorch_tanh, quick_gelu, silu, "
         "swish, tanh, sigmoid, linear";
}

/// Whether name is an activation hf_activation computes.
inline bool is_hf_activation(std::string_view name) {
  for (const char* n : {"relu", "relu2", "gelu", "gelu_python", "gelu_new", "gelu_fast", "gelu_accurate",
                        "gelu_pytorch_tanh", "quick_gelu", "silu", "swish", "tanh", "sigmoid", "linear"})
    if (name == n) return true;
  return false;
}

/// The activation as an nn::Activation when it is one of those (a Linear can fuse relu): relu, gelu (the erf form:
/// "gelu", "gelu_python"), the tanh approximation ("gelu_new", "gelu_fast", "gelu_accurate", "gelu_pytorch_tanh",
/// the same formula 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))) and silu ("silu", "swish"); false otherwise.
inline bool hf_activation_as_enum(std::string_view name, Activation& out) {
  if (name == "relu") {
    out = Activation::relu;
  } else if (name == "gelu" || name == "gelu_python") {
    out = Activation::gelu;
  } else if (name == "gelu_new" || name == "gelu_fast" || name == "gelu_accurate" || name == "gelu_pytorch_tanh") {
    out = Activation::gelu_tanh;
  } else if (name == "silu" || name == "swish") {
    out = Activation::silu;
  } else {
    return false;
  }
  return true;
}

/// Applies the activation transformers names `name`; throws ValueError naming the accepted names for another.
/// quick_gelu is x * sigmoid(1.702 x), relu2 is relu(x)^2, linear the identity.
template <typename T>
Var<T> hf_activation(std::string_view name, const Var<T>& x) {
  Activation a;
  if (hf_activation_as_enum(name, a)) return activate(x, a);
  if (name == "quick_gelu") return mul(x, sigmoid(scale(x, T(1.702))));
  if (name == "relu2") {
    const Var<T> r = relu(x);
    return mul(r, r);
  }
  if (name == "tanh") return tanh(x);
  if (name == "sigmoid") return sigmoid(x);
  if (name == "linear") return x;
  throw ValueError(eigenformer::detail::concat("hf_activation: activation \"", std::string(name),
                                               "\" is not supported, expected one of ", hf_activation_names()));
}

}  // namespace eigenformer::nn
