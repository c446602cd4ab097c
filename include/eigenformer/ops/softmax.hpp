// Softmax and log-softmax along the last axis, computed stably row by row (torch.softmax and torch.log_softmax
// with dim=-1), with zeros instead of NaN for rows that are entirely -inf (fully masked attention rows).
#pragma once

#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "eigenformer/autograd/var.hpp"

namespace eigenformer {

namespace detail {

/// The frame of softmax and log_softmax, row by row over the last axis of x: y has x's shape; row_fn(x_row, y_row,
/// row_max) fills each row of y, except a row that is entirely -inf (nothing to normalize), which is zeroed and
/// handed to dead_fn(row) instead.
template <typename T, typename RowFn, typename DeadFn>
Tensor<T> stable_rows(const char* fn, const Tensor<T>& x, RowFn row_fn, DeadFn dead_fn) {
  if (x.dim() == 0) throw ShapeError(concat(fn, ": x is (), expected at least one dimension (it runs over the last)"));
  using ArrayMap = typename Tensor<T>::ArrayMap;  // one contiguous row
  using ConstArrayMap = typename Tensor<T>::ConstArrayMap;
  const Index c = x.shape().back();
  const Index rows = c == 0 ? 0 : x.numel() / c;
  Tensor<T> y = Tensor<T>::empty(x.shape());
  const T* px = x.data();
  T* py = y.data();
  for (Index r = 0; r < rows; ++r) {
    ConstArrayMap xr(px + r * c, c);
    ArrayMap yr(py + r * c, c);
    const T m = xr.maxCoeff();
    if (m == -std::numeric_limits<T>::infinity()) {
      yr.setZero();
      dead_fn(r);
    } else {
      row_fn(xr, yr, m);
    }
  }
  return y;
}

/// The gradient of a row-wise op over the last axis: row_fn(y_row, dy_row, dx_row) fills each row of dx.
template <typename T, typename RowFn>
Tensor<T> rows_grad(const Tensor<T>& y, const Tensor<T>& dy, RowFn row_fn) {
  using ArrayMap = typename Tensor<T>::ArrayMap;
  using ConstArrayMap = typename Tensor<T>::ConstArrayMap;
  const Index c = y.dim() == 0 ? 0 : y.shape().back();
  const Index rows = c == 0 ? 0 : y.numel() / c;
  Tensor<T> dx = Tensor<T>::empty(y.shape());
  const T* py = y.data();
  const T* pdy = dy.data();
  T* pdx = dx.data();
  for (Index r = 0; r < rows; ++r) {
    ArrayMap dxr(pdx + r * c, c);
    row_fn(ConstArrayMap(py + r * c, c), ConstArrayMap(pdy + r * c, c), dxr);
  }
  return dx;
}

}  // namespace detail

/// exp(x) / sum(exp(x)) along the last axis; a row that is entirely -inf gives zeros and a zero gradient.
template <typename T>
Var<T> softmax(const Var<T>& x) {
  Tensor<T> y = detail::stable_rows(
      "softmax", x.value(),
      [](const auto& xr, auto& yr, T m) {
        yr = (xr - m).exp();  // subtract the row max before exp: every exponent <= 0, no overflow
        yr *= T(1) / yr.sum();
      },
      [](Index) {});

  Var<T> out(y, {x}, "softmax");
  out.on_backward([x, y](const Tensor<T>& dy) {
    // dx = y * (dy - sum(dy * y)); a zero row of y gives a zero row of dx.
    x.accumulate_grad(detail::rows_grad(
        y, dy, [](const auto& yr, const auto& dyr, auto& dxr) { dxr = yr * (dyr - (dyr * yr).sum()); }));
  });
  return out;
}

/// x - log(sum(exp(x))) along the last axis. Unlike torch (which gives -inf), a row that is entirely -inf gives
/// zeros and a zero gradient, so a fully masked row cannot poison a sum with -inf or NaN.
template <typename T>
Var<T> log_softmax(const Var<T>& x) {
  std::vector<Index> dead_rows;  // rows that were entirely -inf, zeroed in the backward too
  Tensor<T> y = detail::stable_rows(
      "log_softmax", x.value(),
      [](const auto& xr, auto& yr, T m) {
        // Row max taken out of the log-sum-exp: log(sum(exp(x - m))) lies in [0, log(c)], and (x - m) - lse keeps
        // full precision even for logits like 1e4.
        const T lse = std::log((xr - m).exp().sum());
        yr = (xr - m) - lse;
      },
      [&dead_rows](Index r) { dead_rows.push_back(r); });

  Var<T> out(y, {x}, "log_softmax");
  out.on_backward([x, y, dead_rows](const Tensor<T>& dy) {
    // dx = dy - softmax(x) * sum(dy), with softmax(x) = exp(y).
    Tensor<T> dx =
        detail::rows_grad(y, dy, [](const auto& yr, const auto& dyr, auto& dxr) { dxr = dyr - yr.exp() * dyr.sum(); });
    const Index c = y.shape().back();
    for (Index r : dead_rows) typename Tensor<T>::ArrayMap(dx.data() + r * c, c).setZero();
    x.accumulate_grad(std::move(dx));
  });
  return out;
}

}  // namespace eigenformer
