// Elementwise activations relu, gelu (exact erf form and tanh approximation), tanh and sigmoid, matching
// torch.relu, torch.nn.functional.gelu(approximate='none' | 'tanh'), torch.tanh and torch.sigmoid.
#pragma once

#include <unsupported/Eigen/SpecialFunctions>  // ArrayBase::erf

#include <cmath>

#include "eigenformer/ops/elementwise.hpp"

namespace eigenformer {

/// Which formula gelu() uses (torch.nn.functional.gelu's `approximate` argument).
enum class GeluApproximation { none, tanh };

/// max(x, 0); the gradient at 0 is 0 and NaN propagates, as in PyTorch.
template <typename T>
Var<T> relu(const Var<T>& x) {
  // Selects rather than multiplies by a 0/1 derivative: branch-free loops that vectorize.
  Tensor<T> y = Tensor<T>::empty(x.shape());
  const T* px = x.value().data();
  T* py = y.data();
  detail::parallel_chunks(y.numel(), 1.0, [&](Index begin, Index end) {
    for (Index i = begin; i < end; ++i) py[i] = px[i] < T(0) ? T(0) : px[i];
  });
  Var<T> out(y, {x}, "relu");
  out.on_backward([x](const Tensor<T>& dy) {
    Tensor<T> dx = Tensor<T>::empty(dy.shape());
    const T* px = x.value().data();
    const T* pdy = dy.data();
    T* pdx = dx.data();
    detail::parallel_chunks(dx.numel(), 1.0, [&](Index begin, Index end) {
      for (Index i = begin; i < end; ++i) {
        const T g = pdy[i];  // read unconditionally: the select then vectorizes
        pdx[i] = px[i] > T(0) ? g : T(0);
      }
    });
    x.accumulate_grad(std::move(dx));
  });
  return out;
}

/// Gaussian error linear unit (Hendrycks & Gimpel 2016): x * Phi(x), or its tanh approximation.
template <typename T>
Var<T> gelu(const Var<T>& x, GeluApproximation approx = GeluApproximation::none) {
  constexpr T kSqrt1_2 = T(0.70710678118654752440);      // 1 / sqrt(2)
  constexpr T kInvSqrt2Pi = T(0.39894228040143267794);   // 1 / sqrt(2 pi)
  constexpr T kSqrt2OverPi = T(0.79788456080286535588);  // sqrt(2 / pi)
  constexpr T kKappa = T(0.044715);
  using ArrayMap = typename Tensor<T>::ArrayMap;
  using ConstArrayMap = typename Tensor<T>::ConstArrayMap;
  if (approx == GeluApproximation::none) {
    // y = x Phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2;  dy/dx = Phi(x) + x phi(x), phi the standard normal pdf.
    // Eigen's array erf: whole SIMD registers for float (a rational approximation within a few ulp), std::erf
    // for double.
    return detail::array_map(
        "gelu", x, 20.0, 30.0,
        [=](const ConstArrayMap& v, ArrayMap y) { y = v * (T(0.5) + T(0.5) * (v * kSqrt1_2).erf()); },
        [=](const ConstArrayMap& v, const ConstArrayMap& dy, ArrayMap d) {
          d = T(0.5) + T(0.5) * (v * kSqrt1_2).erf();  // Phi(x), then the gradient over it
          d = dy * (d + v * kInvSqrt2Pi * (T(-0.5) * v.square()).exp());
        });
  }
  // y = x (1 + tanh(u)) / 2 with u = sqrt(2/pi) (x + 0.044715 x^3), computed as x s with s = (1 + tanh u) / 2 =
  // 1 / (1 + exp(-2u)): the same value without the cancellation of 1 + tanh(u) for u << 0, and whole SIMD registers
  // of exp (Eigen's vectorized exp; a scalar tanh per element cost more than the GEMMs around it).
  // dy/dx = s + 2 x s (1 - s) sqrt(2/pi) (1 + 3 * 0.044715 x^2); the backward recomputes s from x.
  return detail::array_map(
      "gelu", x, 20.0, 30.0,
      [=](const ConstArrayMap& v, ArrayMap y) {
        y = v / (T(1) + (T(-2) * kSqrt2OverPi * (v + kKappa * v.cube())).exp());
      },
      [=](const ConstArrayMap& v, const ConstArrayMap& dy, ArrayMap d) {
        d = T(1) / (T(1) + (T(-2) * kSqrt2OverPi * (v + kKappa * v.cube())).exp());  // s, then the gradient
        d = dy * (d + T(2) * v * d * (T(1) - d) * kSqrt2OverPi * (T(1) + T(3) * kKappa * v.square()));
      });
}

/// Hyperbolic tangent; dy/dx = 1 - y^2.
template <typename T>
Var<T> tanh(const Var<T>& x) {
  return detail::unary_map(
      "tanh", x, [](T v) { return std::tanh(v); }, [](T, T y) { return T(1) - y * y; });
}

/// Logistic sigmoid 1 / (1 + e^-x); dy/dx = y (1 - y).
template <typename T>
Var<T> sigmoid(const Var<T>& x) {
  // exp only ever sees -|x|, so it cannot overflow: large |x| give 0 or 1 instead of inf / inf = NaN.
  return detail::unary_map(
      "sigmoid", x,
      [](T v) {
        if (v >= T(0)) return T(1) / (T(1) + std::exp(-v));
        const T e = std::exp(v);
        return e / (T(1) + e);
      },
      [](T, T y) { return y * (T(1) - y); });
}

}  // namespace eigenformer
