// Fused layer normalization over the last axis with optional affine weight and bias (Ba et al. 2016;
// torch.nn.functional.layer_norm with normalized_shape = the last dimension, biased variance).
#pragma once

#include <cmath>
#include <utility>

#include "eigenformer/autograd/var.hpp"

namespace eigenformer {

/// (x - mean) / sqrt(var + eps) * weight + bias over the last axis; weight and bias (C) may each be undefined.
template <typename T>
Var<T> layer_norm(const Var<T>& x, const Var<T>& weight, const Var<T>& bias, T eps = T(1e-5)) {
  if (x.dim() == 0) throw ShapeError("layer_norm: x is (), expected at least one dimension (it normalizes the last)");
  const Index c = x.shape().back();
  auto check_affine = [&](const char* name, const Var<T>& p) {
    if (p.defined() && p.shape() != Shape{c})
      throw ShapeError(detail::concat("layer_norm: ", name, " is ", to_string(p.shape()), ", x is ",
                                      to_string(x.shape()), ", expected ", name, " (", c, ")"));
  };
  check_affine("weight", weight);
  check_affine("bias", bias);
  if (!(eps >= T(0))) throw ValueError(detail::concat("layer_norm: eps is ", eps, ", expected eps >= 0"));

  using ArrayMap = typename Tensor<T>::ArrayMap;  // one contiguous row
  using ConstArrayMap = typename Tensor<T>::ConstArrayMap;
  const Index rows = c == 0 ? 0 : x.numel() / c;
  Tensor<T> y = Tensor<T>::empty(x.shape());
  Tensor<T> mean = Tensor<T>::empty({rows});  // cached for the backward
  Tensor<T> rstd = Tensor<T>::empty({rows});  // 1 / sqrt(var + eps), cached for the backward
  const T* px = x.value().data();
  T* py = y.data();
  for (Index r = 0; r < rows; ++r) {
    ConstArrayMap xr(px + r * c, c);
    ArrayMap yr(py + r * c, c);
    const T mu = xr.mean();
    yr = xr - mu;  // two passes (mean, then squared deviations): no cancellation in E[x^2] - E[x]^2
    const T rs = T(1) / std::sqrt(yr.square().mean() + eps);
    yr *= rs;
    if (weight.defined()) yr *= ConstArrayMap(weight.value().data(), c);
    if (bias.defined()) yr += ConstArrayMap(bias.value().data(), c);
    mean[r] = mu;
    rstd[r] = rs;
  }

  Var<T> out(std::move(y), {x, weight, bias}, "layer_norm");
  out.on_backward([x, weight, bias, mean, rstd, rows, c](const Tensor<T>& dy) {
    // With xhat = (x - mean) * rstd and g = dy * weight:
    //   dx = rstd * (g - mean(g) - xhat * mean(g * xhat)),  dweight = sum_rows dy * xhat,  dbias = sum_rows dy.
    using ArrayMap = typename Tensor<T>::ArrayMap;
    using ConstArrayMap = typename Tensor<T>::ConstArrayMap;
    using Array = typename Tensor<T>::Array;
    const bool need_dx = x.requires_grad();
    const bool need_dw = weight.defined() && weight.requires_grad();
    const bool need_db = bias.defined() && bias.requires_grad();
    Tensor<T> dx = need_dx ? Tensor<T>::empty(x.shape()) : Tensor<T>();
    Tensor<T> dw = need_dw ? Tensor<T>::zeros({c}) : Tensor<T>();
    Tensor<T> db = need_db ? Tensor<T>::zeros({c}) : Tensor<T>();
    Array xhat(c), g(c);  // row scratch, reused
    for (Index r = 0; r < rows; ++r) {
      ConstArrayMap xr(x.value().data() + r * c, c), dyr(dy.data() + r * c, c);
      xhat = (xr - mean[r]) * rstd[r];
      if (need_dw) dw.array() += dyr * xhat;
      if (need_db) db.array() += dyr;
      if (!need_dx) continue;
      if (weight.defined())
        g = dyr * ConstArrayMap(weight.value().data(), c);
      else
        g = dyr;
      const T g_mean = g.mean(), gx_mean = (g * xhat).mean();
      ArrayMap(dx.data() + r * c, c) = (g - g_mean - xhat * gx_mean) * rstd[r];
    }
    if (need_dx) x.accumulate_grad(std::move(dx));
    if (need_dw) weight.accumulate_grad(std::move(dw));
    if (need_db) bias.accumulate_grad(std::move(db));
  });
  return out;
}

}  // namespace eigenformer
