// Elementwise arithmetic with NumPy broadcasting (add, sub, mul, div), scalar forms, and the unary maps neg, exp,
// log, sqrt and pow by a scalar (torch.add, torch.mul, ... semantics). Backward sums over broadcast axes.
#pragma once

#include <cmath>

#include "eigenformer/autograd/var.hpp"
#include "eigenformer/ops/broadcast.hpp"

namespace eigenformer {

namespace detail {

/// A unary elementwise op: y = f(x), dx = dy * df(x, y).
template <typename T, typename F, typename DF>
Var<T> unary_map(const char* name, const Var<T>& x, F f, DF df) {
  Tensor<T> y = Tensor<T>::empty(x.shape());
  const T* px = x.value().data();
  T* py = y.data();
  parallel_chunks(y.numel(), 1.0, [&](Index begin, Index end) {
    for (Index i = begin; i < end; ++i) py[i] = f(px[i]);
  });
  Var<T> out(y, {x}, name);
  out.on_backward([x, y, df](const Tensor<T>& dy) {
    Tensor<T> dx = Tensor<T>::empty(dy.shape());
    const T* px = x.value().data();
    const T* pyv = y.data();
    const T* pdy = dy.data();
    T* pdx = dx.data();
    parallel_chunks(dx.numel(), 1.0, [&](Index begin, Index end) {
      for (Index i = begin; i < end; ++i) pdx[i] = pdy[i] * df(px[i], pyv[i]);
    });
    x.accumulate_grad(std::move(dx));
  });
  return out;
}

/// An elementwise op evaluated as Eigen arrays over contiguous chunks (whole SIMD registers):
/// f(x chunk, y chunk) writes y; the backward's df(x chunk, dy chunk, dx chunk) writes dx.
template <typename T, class F, class DF>
Var<T> array_map(const char* name, const Var<T>& x, double forward_cost, double backward_cost, F f, DF df) {
  using ArrayMap = typename Tensor<T>::ArrayMap;
  using ConstArrayMap = typename Tensor<T>::ConstArrayMap;
  Tensor<T> y = Tensor<T>::empty(x.shape());
  const T* px = x.value().data();
  T* py = y.data();
  parallel_chunks(y.numel(), forward_cost, [&](Index begin, Index end) {
    f(ConstArrayMap(px + begin, end - begin), ArrayMap(py + begin, end - begin));
  });
  Var<T> out(y, {x}, name);
  out.on_backward([x, df, backward_cost](const Tensor<T>& dy) {
    Tensor<T> dx = Tensor<T>::empty(dy.shape());
    const T* pxv = x.value().data();
    const T* pdy = dy.data();
    T* pdx = dx.data();
    parallel_chunks(dx.numel(), backward_cost, [&](Index begin, Index end) {
      df(ConstArrayMap(pxv + begin, end - begin), ConstArrayMap(pdy + begin, end - begin),
         ArrayMap(pdx + begin, end - begin));
    });
    x.accumulate_grad(std::move(dx));
  });
  return out;
}

}  // namespace detail

/// a + b with broadcasting.
template <typename T>
Var<T> add(const Var<T>& a, const Var<T>& b) {
  const Shape s = detail::broadcast_shapes("add", a.shape(), b.shape());
  Var<T> y(detail::broadcast_map(a.value(), b.value(), s, [](T u, T v) { return u + v; }), {a, b}, "add");
  y.on_backward([a, b](const Tensor<T>& dy) {
    if (a.requires_grad()) a.accumulate_grad(detail::sum_to(dy, a.shape()));
    if (b.requires_grad()) b.accumulate_grad(detail::sum_to(dy, b.shape()));
  });
  return y;
}

/// a - b with broadcasting.
template <typename T>
Var<T> sub(const Var<T>& a, const Var<T>& b) {
  const Shape s = detail::broadcast_shapes("sub", a.shape(), b.shape());
  Var<T> y(detail::broadcast_map(a.value(), b.value(), s, [](T u, T v) { return u - v; }), {a, b}, "sub");
  y.on_backward([a, b](const Tensor<T>& dy) {
    if (a.requires_grad()) a.accumulate_grad(detail::sum_to(dy, a.shape()));
    if (b.requires_grad()) {
      Tensor<T> g = detail::sum_to(dy, b.shape()).clone();
      g *= T(-1);
      b.accumulate_grad(std::move(g));
    }
  });
  return y;
}

/// a * b (elementwise) with broadcasting.
template <typename T>
Var<T> mul(const Var<T>& a, const Var<T>& b) {
  const Shape s = detail::broadcast_shapes("mul", a.shape(), b.shape());
  Var<T> y(detail::broadcast_map(a.value(), b.value(), s, [](T u, T v) { return u * v; }), {a, b}, "mul");
  y.on_backward([a, b, s](const Tensor<T>& dy) {
    if (a.requires_grad())
      a.accumulate_grad(detail::sum_to(detail::broadcast_map(dy, b.value(), s, [](T g, T v) { return g * v; }),
                                       a.shape()));
    if (b.requires_grad())
      b.accumulate_grad(detail::sum_to(detail::broadcast_map(dy, a.value(), s, [](T g, T u) { return g * u; }),
                                       b.shape()));
  });
  return y;
}

/// a / b (elementwise) with broadcasting; division by zero follows IEEE (inf or NaN), as in PyTorch.
template <typename T>
Var<T> div(const Var<T>& a, const Var<T>& b) {
  const Shape s = detail::broadcast_shapes("div", a.shape(), b.shape());
  Var<T> y(detail::broadcast_map(a.value(), b.value(), s, [](T u, T v) { return u / v; }), {a, b}, "div");
  const Tensor<T> yv = y.value();
  y.on_backward([a, b, s, yv](const Tensor<T>& dy) {
    // da = dy / b;  db = -dy * a / b^2 = -dy * y / b
    if (a.requires_grad())
      a.accumulate_grad(detail::sum_to(detail::broadcast_map(dy, b.value(), s, [](T g, T v) { return g / v; }),
                                       a.shape()));
    if (b.requires_grad()) {
      Tensor<T> gy = detail::broadcast_map(dy, yv, s, [](T g, T q) { return -g * q; });
      b.accumulate_grad(
          detail::sum_to(detail::broadcast_map(gy, b.value(), s, [](T g, T v) { return g / v; }), b.shape()));
    }
  });
  return y;
}

/// x * s for a scalar s.
template <typename T>
Var<T> scale(const Var<T>& x, T s) {
  return detail::unary_map("scale", x, [s](T v) { return v * s; }, [s](T, T) { return s; });
}

/// x + s for a scalar s.
template <typename T>
Var<T> add_scalar(const Var<T>& x, T s) {
  return detail::unary_map("add_scalar", x, [s](T v) { return v + s; }, [](T, T) { return T(1); });
}

/// -x.
template <typename T>
Var<T> neg(const Var<T>& x) {
  return detail::unary_map("neg", x, [](T v) { return -v; }, [](T, T) { return T(-1); });
}

/// e^x.
template <typename T>
Var<T> exp(const Var<T>& x) {
  return detail::unary_map("exp", x, [](T v) { return std::exp(v); }, [](T, T y) { return y; });
}

/// Natural logarithm (log 0 = -inf, log of a negative = NaN, as in PyTorch).
template <typename T>
Var<T> log(const Var<T>& x) {
  return detail::unary_map("log", x, [](T v) { return std::log(v); }, [](T v, T) { return T(1) / v; });
}

/// Square root.
template <typename T>
Var<T> sqrt(const Var<T>& x) {
  return detail::unary_map("sqrt", x, [](T v) { return std::sqrt(v); }, [](T, T y) { return T(0.5) / y; });
}

/// x^p for a scalar exponent p (p = 0 gives gradient 0 everywhere, as PyTorch does, even at x = 0).
template <typename T>
Var<T> pow(const Var<T>& x, T p) {
  return detail::unary_map(
      "pow", x, [p](T v) { return std::pow(v, p); },
      [p](T v, T) { return p == T(0) ? T(0) : p * std::pow(v, p - T(1)); });
}

template <typename T>
Var<T> operator+(const Var<T>& a, const Var<T>& b) { return add(a, b); }
template <typename T>
Var<T> operator-(const Var<T>& a, const Var<T>& b) { return sub(a, b); }
template <typename T>
Var<T> operator*(const Var<T>& a, const Var<T>& b) { return mul(a, b); }
template <typename T>
Var<T> operator/(const Var<T>& a, const Var<T>& b) { return div(a, b); }
template <typename T>
Var<T> operator-(const Var<T>& x) { return neg(x); }
template <typename T>
Var<T> operator*(const Var<T>& x, T s) { return scale(x, s); }
template <typename T>
Var<T> operator*(T s, const Var<T>& x) { return scale(x, s); }
template <typename T>
Var<T> operator+(const Var<T>& x, T s) { return add_scalar(x, s); }
template <typename T>
Var<T> operator-(const Var<T>& x, T s) { return add_scalar(x, -s); }

}  // namespace eigenformer
