// Gradient clipping by the global L2 norm of all gradients; matches torch.nn.utils.clip_grad_norm_ (norm_type 2).
#pragma once

#include <cmath>

#include "eigenformer/optim/optimizer.hpp"

namespace eigenformer::optim {
namespace detail {

/// Keeps T out of deduction for an argument, so clip_grad_norm(float_params, 1.0) compiles (C++20's
/// std::type_identity).
template <typename T>
struct NonDeduced {
  using type = T;
};

}  // namespace detail

/// Scales every gradient in place by max_norm / (norm + 1e-6) when the L2 norm of all gradients together exceeds
/// max_norm, and returns that norm (before scaling). Parameters without a gradient are ignored. The sum of squares
/// accumulates in double. A non-finite norm is returned with the gradients left as they are (torch would scale
/// them to NaN), so the optimizer's step() can name the parameter that holds the NaN or Inf. Throws ValueError on
/// a negative or non-finite max_norm.
template <typename T>
T clip_grad_norm(const NamedParameters<T>& params, typename detail::NonDeduced<T>::type max_norm) {
  if (!(max_norm >= 0) || !std::isfinite(static_cast<double>(max_norm)))
    throw ValueError(eigenformer::detail::concat("clip_grad_norm: max_norm is ", max_norm,
                                                 ", expected a finite value >= 0"));
  double sum_sq = 0;
  for (const auto& np : params) {
    const Var<T>& p = np.second;
    if (p.has_grad()) sum_sq += p.grad().array().template cast<double>().square().sum();
  }
  const double norm = std::sqrt(sum_sq);
  if (!std::isfinite(norm)) return static_cast<T>(norm);
  const double coef = static_cast<double>(max_norm) / (norm + 1e-6);
  if (coef < 1) {  // torch clamps coef to 1 and always multiplies; a factor of 1 changes nothing
    for (const auto& np : params) {
      Var<T> p = np.second;  // a handle: the gradient it reaches is the parameter's
      if (p.has_grad()) p.grad().array() *= static_cast<T>(coef);
    }
  }
  return static_cast<T>(norm);
}

}  // namespace eigenformer::optim
