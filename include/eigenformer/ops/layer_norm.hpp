// Fused layer normalization over the last axis with optional affine weight and bias (Ba et al. 2016;
// torch.nn.functional.layer_norm with normalized_shape = the last dimension, biased variance).
#pragma once

#include <cmath>
#include <utility>

#include "eigenformer/autograd/var.hpp"
#include "eigenformer/core/parallel.hpp"

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
  const T* pw = weight.defined() ? weight.value().data() : nullptr;
  const T* pb = bias.defined() ? bias.value().data() : nullptr;
  detail::parallel_chunks(rows, 8.0 * static_cast<double>(c), [&](Index begin, Index end) {
    for (Index r = begin; r < end; ++r) {
      ConstArrayMap xr(px + r * c, c);
      ArrayMap yr(py + r * c, c);
      const T mu = xr.mean();
      yr = xr - mu;  // two passes (mean, then squared deviations): no cancellation in E[x^2] - E[x]^2
      const T rs = T(1) / std::sqrt(yr.square().mean() + eps);
      if (pw && pb)
        yr = yr * rs * ConstArrayMap(pw, c) + ConstArrayMap(pb, c);
      else {
        yr *= rs;
        if (pw) yr *= ConstArrayMap(pw, c);
        if (pb) yr += ConstArrayMap(pb, c);
      }
      mean[r] = mu;
      rstd[r] = rs;
    }
  });

  Var<T> out(std::move(y), {x, weight, bias}, "layer_norm");
  out.on_backward([x, weight, bias, mean, rstd, rows, c](Tensor<T>& dy) {
    // With xhat = (x - mean) * rstd and g = dy * weight:
    //   dx = rstd * (g - mean(g) - xhat * mean(g * xhat)),  dweight = sum_rows dy * xhat,  dbias = sum_rows dy.
    using ArrayMap = typename Tensor<T>::ArrayMap;
    using ConstArrayMap = typename Tensor<T>::ConstArrayMap;
    const bool need_dx = x.requires_grad();
    const bool need_dw = weight.defined() && weight.requires_grad();
    const bool need_db = bias.defined() && bias.requires_grad();
    // dx overwrites dy when nothing else holds dy's buffer: a row of dy is read in full before its dx is stored.
    Tensor<T> dx = !need_dx ? Tensor<T>() : dy.is_unique() ? dy : Tensor<T>::empty(x.shape());
    Tensor<T> dw = need_dw ? Tensor<T>::zeros({c}) : Tensor<T>();
    Tensor<T> db = need_db ? Tensor<T>::zeros({c}) : Tensor<T>();
    const T* pw = weight.defined() ? weight.value().data() : nullptr;
    // Each range of rows sums dweight and dbias privately (row k of the parts); the parts are added in row order
    // afterwards, so the result does not depend on which thread finished first.
    const detail::ChunkPlan plan = detail::chunk_plan(rows, 12.0 * static_cast<double>(c));
    Tensor<T> dw_parts = need_dw ? Tensor<T>::zeros({plan.count, c}) : Tensor<T>();  // (chunks, C)
    Tensor<T> db_parts = need_db ? Tensor<T>::zeros({plan.count, c}) : Tensor<T>();  // (chunks, C)
    Tensor<T> scratch = Tensor<T>::empty({plan.count, 2 * c});  // (chunks, 2C): xhat and g of one row
    detail::run_chunks(rows, plan, [&](Index k, Index begin, Index end) {
      ArrayMap xhat(scratch.data() + k * 2 * c, c), g(scratch.data() + k * 2 * c + c, c);
      for (Index r = begin; r < end; ++r) {
        ConstArrayMap xr(x.value().data() + r * c, c), dyr(dy.data() + r * c, c);
        xhat = (xr - mean[r]) * rstd[r];
        if (need_dw) ArrayMap(dw_parts.data() + k * c, c) += dyr * xhat;
        if (need_db) ArrayMap(db_parts.data() + k * c, c) += dyr;
        if (!need_dx) continue;
        if (pw)
          g = dyr * ConstArrayMap(pw, c);
        else
          g = dyr;
        const T g_mean = g.mean(), gx_mean = (g * xhat).mean();
        ArrayMap(dx.data() + r * c, c) = (g - g_mean - xhat * gx_mean) * rstd[r];
      }
    });
    for (Index k = 0; k < plan.count; ++k) {
      if (need_dw) dw.array() += ConstArrayMap(dw_parts.data() + k * c, c);
      if (need_db) db.array() += ConstArrayMap(db_parts.data() + k * c, c);
    }
    if (need_dx) x.accumulate_grad(std::move(dx));
    if (need_dw) weight.accumulate_grad(std::move(dw));
    if (need_db) bias.accumulate_grad(std::move(db));
  });
  return out;
}

}  // namespace eigenformer
