// Position-wise feed-forward network: Linear -> activation -> dropout -> Linear, the inner part of
// torch.nn.TransformerEncoderLayer (parameters linear1 and linear2).
#pragma once

#include <cstdint>

#include "eigenformer/nn/dropout.hpp"
#include "eigenformer/nn/linear.hpp"
#include "eigenformer/nn/module.hpp"
#include "eigenformer/ops/activation.hpp"
#include "eigenformer/ops/linear.hpp"

namespace eigenformer::nn {

/// The nonlinearity of a feed-forward block (torch's "relu" and "gelu" (exact erf form)).
enum class Activation { relu, gelu };

/// Applies the activation.
template <typename T>
Var<T> activate(const Var<T>& x, Activation a) {
  return a == Activation::relu ? relu(x) : gelu(x);
}

/// y = linear2(dropout(activation(linear1(x)))), x: (..., d_model).
template <typename T = float>
struct FeedForward : Module<FeedForward<T>, T> {
  struct Options {
    Index d_model = 0;
    Index dim_feedforward = 2048;
    Activation activation = Activation::relu;
    T dropout = T(0.1);
    std::uint64_t seed = 0;
  };

  FeedForward() = default;
  FeedForward(const Options& o, Generator& gen) : options(o) {
    linear1 = Linear<T>({o.d_model, o.dim_feedforward, true}, gen);
    dropout = Dropout<T>({o.dropout, o.seed});
    linear2 = Linear<T>({o.dim_feedforward, o.d_model, true}, gen);
  }

  Var<T> forward(const Var<T>& x) { return linear2.forward(dropout.forward(hidden(x))); }

  /// residual + forward(x), with the add done by linear2's GEMM (linear_residual): linear2's own output is never
  /// stored. residual has x's shape.
  Var<T> forward_add(const Var<T>& x, const Var<T>& residual) {
    detail::check_residual("FeedForward::forward_add", x, residual);
    return linear_residual(dropout.forward(hidden(x)), linear2.weight, linear2.bias, residual);
  }

  template <typename F>
  void visit_parameters(F&& f) {
    linear1.visit_parameters(detail::prefixed("linear1.", f));
    linear2.visit_parameters(detail::prefixed("linear2.", f));
  }
  void set_training(bool on) { dropout.train(on); }

  Options options;
  Linear<T> linear1;  // (dim_feedforward, d_model)
  Dropout<T> dropout;
  Linear<T> linear2;  // (d_model, dim_feedforward)

 private:
  /// activation(linear1(x)), (..., dim_feedforward). relu runs inside linear1's GEMM (linear_relu): one pass less
  /// over the (rows, dim_feedforward) activations.
  Var<T> hidden(const Var<T>& x) {
    return options.activation == Activation::relu ? linear_relu(x, linear1.weight, linear1.bias)
                                                  : activate(linear1.forward(x), options.activation);
  }
};

}  // namespace eigenformer::nn
