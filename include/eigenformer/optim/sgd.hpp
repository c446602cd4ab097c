// Stochastic gradient descent with optional momentum, dampening, Nesterov momentum and L2 weight decay; matches
// torch.optim.SGD (its _single_tensor_sgd, torch 1.13).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "eigenformer/optim/optimizer.hpp"

namespace eigenformer::optim {

/// SGD's hyperparameters, with torch.optim.SGD's defaults.
template <typename T>
struct SGDOptions {
  T lr = T(1e-3);  // PyTorch requires lr; 1e-3 is this library's choice
  T momentum = 0;
  T dampening = 0;
  T weight_decay = 0;  // L2 penalty: d = grad + weight_decay * param
  bool nesterov = false;
};

/// torch.optim.SGD over named parameters. Per step, for each parameter with a gradient:
///   d = g + weight_decay * p
///   buf = d on the first step (step_count() == 0), else momentum * buf + (1 - dampening) * d  (momentum != 0)
///   d = nesterov ? d + momentum * buf : buf                                                 (momentum != 0)
///   p -= lr * d
/// State: "step" and, with momentum, "<name>.momentum_buffer".
template <typename T = float>
class SGD : public detail::OptimizerBase<T, SGDOptions<T>> {
  using Base = detail::OptimizerBase<T, SGDOptions<T>>;

 public:
  using Options = SGDOptions<T>;

  /// Throws ValueError on a negative or non-finite option, or nesterov without momentum or with dampening.
  explicit SGD(const NamedParameters<T>& params, const Options& options = Options())
      : Base("SGD", params, validated(options),
             options.momentum != 0 ? std::vector<const char*>{"momentum_buffer"} : std::vector<const char*>{}) {}

  /// One update of every trainable parameter that has a gradient. Throws ValueError, changing nothing, when a
  /// gradient holds NaN or Inf.
  void step() {
    const Index t = this->begin_step();
    const Options& o = this->options_;
    const T lr = o.lr, m = o.momentum, wd = o.weight_decay;
    const T keep = T(1) - o.dampening;  // the float PyTorch gets by rounding its double 1 - dampening
    for (std::size_t i = 0; i < this->size(); ++i) {
      if (!this->updates(i)) continue;
      Var<T>& p = this->param(i);
      auto w = p.value().array();
      const Tensor<T>& grad = p.grad();
      const auto g = grad.array();
      // d is the (decayed) gradient as an Eigen expression: evaluated inside, never stored. It reads w, which is
      // written only by the last, coefficient-wise assignment.
      auto update = [&](const auto& d) {
        if (m == 0) {
          w += (-lr) * d;
          return;
        }
        auto buf = this->state(i, 0).array();
        if (t == 0)
          buf = d;
        else
          buf = buf * m + keep * d;
        if (o.nesterov)
          w += (-lr) * (d + m * buf);
        else
          w += (-lr) * buf;
      };
      if (wd != 0)
        update(g + wd * w);
      else
        update(g);
    }
    this->end_step(t);
  }

 private:
  static Options validated(const Options& o) {
    detail::check_non_negative("SGD", "momentum", o.momentum);
    detail::check_non_negative("SGD", "dampening", o.dampening);
    detail::check_non_negative("SGD", "weight_decay", o.weight_decay);
    if (o.nesterov && (o.momentum <= 0 || o.dampening != 0))
      throw ValueError(eigenformer::detail::concat("SGD: nesterov momentum requires momentum > 0 and dampening == 0, "
                                                   "got momentum ", o.momentum, " and dampening ", o.dampening));
    return o;
  }
};

}  // namespace eigenformer::optim
