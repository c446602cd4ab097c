// Parameter initializers with PyTorch's defaults (torch.nn.init): uniform bounds of Linear's
// kaiming_uniform_(a = sqrt(5)), Xavier uniform, normal.
#pragma once

#include <cmath>

#include "eigenformer/tensor/tensor.hpp"

namespace eigenformer::nn::init {

/// U(-bound, bound).
template <typename T>
Tensor<T> uniform(const Shape& shape, double bound, Generator& gen) {
  return Tensor<T>::uniform(shape, static_cast<T>(-bound), static_cast<T>(bound), gen);
}

/// torch.nn.Linear's weight and bias init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming_uniform_ with a = sqrt(5)).
template <typename T>
Tensor<T> linear_default(const Shape& shape, Index fan_in, Generator& gen) {
  return uniform<T>(shape, fan_in > 0 ? 1.0 / std::sqrt(static_cast<double>(fan_in)) : 0.0, gen);
}

/// torch.nn.init.xavier_uniform_ for a (fan_out, fan_in) matrix: U(-a, a), a = sqrt(6 / (fan_in + fan_out)).
template <typename T>
Tensor<T> xavier_uniform(Index fan_out, Index fan_in, Generator& gen) {
  return uniform<T>({fan_out, fan_in}, std::sqrt(6.0 / static_cast<double>(fan_in + fan_out)), gen);
}

}  // namespace eigenformer::nn::init
