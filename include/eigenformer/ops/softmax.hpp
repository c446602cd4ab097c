// Softmax and log-softmax along the last axis, computed stably row by row (torch.softmax and torch.log_softmax
// with dim=-1), with zeros instead of NaN for rows that are entirely -inf (fully masked attention rows).
#pragma once

#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "eigenformer/autograd/var.hpp"

namespace eigenformer {

/// exp(x) / sum(exp(x)) along the last axis; a row that is entirely -inf gives zeros and a zero gradient.
template <typename T>
Var<T> softmax(const Var<T>& x) {
  if (x.dim() == 0) throw ShapeError("softmax: x is (), expected at least one dimension (it runs over the last)");
  using ArrayMap = typename Tensor<T>::ArrayMap;  // one contiguous row
  using ConstArrayMap = typename Tensor<T>::ConstArrayMap;
  const Index c = x.shape().back();
  const Index rows = c == 0 ? 0 : x.numel() / c;
  Tensor<T> y = Tensor<T>::empty(x.shape());
  const T* px = x.value().data();
  T* py = y.data();
  for (Index r = 0; r < rows; ++r) {
    ConstArrayMap xr(px + r * c, c);
    ArrayMap yr(py + r * c, c);
    const T m = xr.maxCoeff();
    if (m == -std::numeric_limits<T>::infinity()) {  // nothing to attend to: zeros, not 0/0
      yr.setZero();
      continue;
    }
    yr = (xr - m).exp();  // subtract the row max before exp: every exponent <= 0, no overflow
    yr *= T(1) / yr.sum();
  }

  Var<T> out(y, {x}, "softmax");
  out.on_backward([x, y, rows, c](const Tensor<T>& dy) {
    // dx = y * (dy - sum(dy * y)); a zero row of y gives a zero row of dx.
    using ArrayMap = typename Tensor<T>::ArrayMap;
    using ConstArrayMap = typename Tensor<T>::ConstArrayMap;
    Tensor<T> dx = Tensor<T>::empty(x.shape());
    for (Index r = 0; r < rows; ++r) {
      ConstArrayMap yr(y.data() + r * c, c), dyr(dy.data() + r * c, c);
      ArrayMap(dx.data() + r * c, c) = yr * (dyr - (dyr * yr).sum());
    }
    x.accumulate_grad(std::move(dx));
  });
  return out;
}

/// x - log(sum(exp(x))) along the last axis. Unlike torch (which gives -inf), a row that is entirely -inf gives
/// zeros and a zero gradient, so a fully masked row cannot poison a sum with -inf or NaN.
template <typename T>
Var<T> log_softmax(const Var<T>& x) {
  if (x.dim() == 0)
    throw ShapeError("log_softmax: x is (), expected at least one dimension (it runs over the last)");
  using ArrayMap = typename Tensor<T>::ArrayMap;  // one contiguous row
  using ConstArrayMap = typename Tensor<T>::ConstArrayMap;
  const Index c = x.shape().back();
  const Index rows = c == 0 ? 0 : x.numel() / c;
  Tensor<T> y = Tensor<T>::empty(x.shape());
  std::vector<Index> dead_rows;  // rows that were entirely -inf, zeroed in the backward too
  const T* px = x.value().data();
  T* py = y.data();
  for (Index r = 0; r < rows; ++r) {
    ConstArrayMap xr(px + r * c, c);
    ArrayMap yr(py + r * c, c);
    const T m = xr.maxCoeff();
    if (m == -std::numeric_limits<T>::infinity()) {
      yr.setZero();
      dead_rows.push_back(r);
      continue;
    }
    // Row max taken out of the log-sum-exp: log(sum(exp(x - m))) lies in [0, log(c)], and (x - m) - lse keeps
    // full precision even for logits like 1e4.
    const T lse = std::log((xr - m).exp().sum());
    yr = (xr - m) - lse;
  }

  Var<T> out(y, {x}, "log_softmax");
  out.on_backward([x, y, rows, c, dead_rows](const Tensor<T>& dy) {
    // dx = dy - softmax(x) * sum(dy), with softmax(x) = exp(y).
    using ArrayMap = typename Tensor<T>::ArrayMap;
    using ConstArrayMap = typename Tensor<T>::ConstArrayMap;
    Tensor<T> dx = Tensor<T>::empty(x.shape());
    for (Index r = 0; r < rows; ++r) {
      ConstArrayMap yr(y.data() + r * c, c), dyr(dy.data() + r * c, c);
      ArrayMap(dx.data() + r * c, c) = dyr - yr.exp() * dyr.sum();
    }
    for (Index r : dead_rows) ArrayMap(dx.data() + r * c, c).setZero();
    x.accumulate_grad(std::move(dx));
  });
  return out;
}

}  // namespace eigenformer
