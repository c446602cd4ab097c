// Inverted dropout with an explicit random engine (Srivastava et al. 2014; torch.nn.functional.dropout).
#pragma once

#include <mutex>
#include <utility>

#include "eigenformer/autograd/var.hpp"
#include "eigenformer/core/address_lock.hpp"

namespace eigenformer {

/// Zeroes each element with probability p and scales the rest by 1 / (1 - p) when training; returns x itself
/// in eval mode or when p == 0. p == 1 gives zeros and draws nothing from gen.
template <typename T>
Var<T> dropout(const Var<T>& x, T p, bool training, Generator& gen) {
  if (!(p >= T(0) && p <= T(1)))  // also rejects NaN
    throw ValueError(detail::concat("dropout: p is ", p, ", expected 0 <= p <= 1"));
  if (!training || p == T(0)) return x;

  // mask = 0 for a dropped element, 1 / (1 - p) for a kept one; saved for the backward (dx = dy * mask).
  Tensor<T> mask = Tensor<T>::empty(x.shape());
  const Index n = mask.numel();
  T* pm = mask.data();
  if (p == T(1)) {
    mask.set_zero();
  } else {
    const T keep_scale = T(1) / (T(1) - p);
    const double drop_below = static_cast<double>(p);
    std::lock_guard<std::mutex> lock(detail::address_lock(&gen));  // threads running one module at once share gen
    for (Index i = 0; i < n; ++i) {
      const double u = static_cast<double>(gen() >> 11) * 0x1.0p-53;  // uniform in [0, 1) from the top 53 bits
      pm[i] = u < drop_below ? T(0) : keep_scale;
    }
  }
  Tensor<T> y = Tensor<T>::empty(x.shape());
  y.array() = x.value().array() * mask.array();

  Var<T> out(std::move(y), {x}, "dropout");
  out.on_backward([x, mask](const Tensor<T>& dy) {
    Tensor<T> dx = Tensor<T>::empty(dy.shape());
    dx.array() = dy.array() * mask.array();
    x.accumulate_grad(std::move(dx));
  });
  return out;
}

}  // namespace eigenformer
