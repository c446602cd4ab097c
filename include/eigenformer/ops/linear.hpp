// Affine map y = x W^T + b over the last axis, one GEMM on the (rows, in) view (torch.nn.functional.linear), the
// same map fused with relu (the first half of a transformer feed-forward block), and with a residual added in the
// same GEMM (a transformer sublayer's last projection and its skip connection).
#pragma once

#include <algorithm>
#include <utility>

#include "eigenformer/autograd/var.hpp"
#include "eigenformer/ops/broadcast.hpp"
#include "eigenformer/ops/gemm.hpp"

namespace eigenformer {
namespace detail {

/// x W^T + b, then relu when asked, or plus residual when it is defined (not both); `fn` names the op in messages
/// and in the graph.
template <typename T>
Var<T> linear_op(const char* fn, const Var<T>& x, const Var<T>& weight, const Var<T>& bias, bool relu,
                 const Var<T>& residual = Var<T>()) {
  const Shape& sx = x.shape();
  const Shape& sw = weight.shape();
  if (sw.size() != 2)
    throw ShapeError(concat(fn, ": weight is ", to_string(sw), ", expected (out_features, in_features)"));
  if (sx.empty() || sx.back() != sw[1])
    throw ShapeError(concat(fn, ": x is ", to_string(sx), ", weight is ", to_string(sw),
                            ", expected x's last dimension to be in_features = ", sw[1]));
  if (bias.defined() && bias.shape() != Shape{sw[0]})
    throw ShapeError(concat(fn, ": bias is ", to_string(bias.shape()), ", weight is ", to_string(sw),
                            ", expected bias (", sw[0], ")"));

  const Index in = sw[1], out_features = sw[0];
  Shape out_shape = sx;
  out_shape.back() = out_features;
  const Index rows = numel(Shape(sx.begin(), sx.end() - 1));  // every leading dimension
  if (residual.defined() && residual.shape() != out_shape)
    throw ShapeError(concat(fn, ": residual is ", to_string(residual.shape()), ", expected the output's shape ",
                            to_string(out_shape)));
  Tensor<T> y = Tensor<T>::empty(out_shape);  // (rows, out)
  if (residual.defined()) std::copy_n(residual.value().data(), y.numel(), y.data());
  // One GEMM over the (rows, in) view; the bias add and relu happen in its store, the residual is what it adds to.
  GemmProduct<T> product = GemmProduct<T>::sizes(rows, out_features, in)
                               .lhs(x.value().data(), in)
                               .rhs_transposed(weight.value().data(), in)
                               .add_bias(bias.defined() ? bias.value().data() : nullptr)
                               .apply_relu(relu);
  gemm(residual.defined() ? product.add_to(y.data(), out_features) : product.out(y.data(), out_features));

  Var<T> result(y, {x, weight, bias, residual}, fn);
  // relu's derivative reads the output (y > 0 exactly where the pre-activation is): the pre-activation is not kept.
  const Tensor<T> saved_y = relu ? y : Tensor<T>();
  result.on_backward([x, weight, bias, residual, rows, saved_y](Tensor<T>& dy) {
    const Index out_features = weight.shape()[0], in = weight.shape()[1];
    if (residual.defined() && residual.requires_grad()) residual.accumulate_grad(dy);  // shared, never written
    // (rows, out): the gradient before the activation. relu's mask is applied in place when nothing else holds
    // dy's buffer: a feed-forward block's hidden gradient is its largest tensor, and a second one was the peak of
    // a training step's memory.
    Tensor<T> dz = saved_y.defined() && !dy.is_unique() ? Tensor<T>::empty(dy.shape()) : dy;
    if (saved_y.defined()) {
      const T* py = saved_y.data();
      const T* pdy = dy.data();
      T* pdz = dz.data();
      parallel_chunks(dz.numel(), 1.0, [&](Index begin, Index end) {
        for (Index i = begin; i < end; ++i) {
          const T g = pdy[i];  // read unconditionally: the select then vectorizes
          pdz[i] = py[i] > T(0) ? g : T(0);
        }
      });
    }
    const bool need_dx = x.requires_grad(), need_dw = weight.requires_grad();
    // dx = dz W, added straight into x's gradient when it has one of its own (in a transformer block the residual
    // path's gradient arrives first); else a new tensor.
    T* const dx_into = need_dx ? x.grad_to_accumulate() : nullptr;
    Tensor<T> dx = need_dx && !dx_into ? Tensor<T>::empty(x.shape()) : Tensor<T>();
    Tensor<T> dw = need_dw ? Tensor<T>::empty(weight.shape()) : Tensor<T>();
    // dw = dz^T x, one GEMM summing over every leading dimension. The two are equal in size and independent: on
    // two threads they run side by side (gemm_pair).
    GemmProduct<T> dx_product = GemmProduct<T>::sizes(rows, in, out_features).lhs(dz.data(), out_features).rhs(
        weight.value().data(), in);
    if (dx_into)
      dx_product.add_to(dx_into, in);
    else
      dx_product.out(dx.data(), in);
    const GemmProduct<T> dw_product = GemmProduct<T>::sizes(out_features, in, rows)
                                          .lhs_transposed(dz.data(), out_features)
                                          .rhs(x.value().data(), in)
                                          .out(dw.data(), in);
    if (need_dx && need_dw) {
      gemm_pair(dx_product, dw_product);
    } else if (need_dx) {
      gemm(dx_product);
    } else if (need_dw) {
      gemm(dw_product);
    }
    if (need_dx && !dx_into) x.accumulate_grad(std::move(dx));
    if (need_dw) weight.accumulate_grad(std::move(dw));
    if (bias.defined() && bias.requires_grad()) {
      Tensor<T> db = Tensor<T>::empty(bias.shape());
      column_sums(dz.data(), rows, out_features, db.data());
      bias.accumulate_grad(std::move(db));
    }
  });
  return result;
}

}  // namespace detail

/// x W^T + b: x (..., in), weight (out, in), bias (out) or an undefined Var<T>() for none -> (..., out).
template <typename T>
Var<T> linear(const Var<T>& x, const Var<T>& weight, const Var<T>& bias = Var<T>()) {
  return detail::linear_op("linear", x, weight, bias, false);
}

/// relu(x W^T + b) in one op: the relu is applied as the GEMM stores its result, and the backward needs only the
/// output. Same shapes as linear().
template <typename T>
Var<T> linear_relu(const Var<T>& x, const Var<T>& weight, const Var<T>& bias = Var<T>()) {
  return detail::linear_op("linear_relu", x, weight, bias, true);
}

/// residual + x W^T + b in one op: the GEMM adds its product to a copy of residual, so the projection's own output
/// is never stored (nor kept by the graph), and no separate add pass runs. residual has the output's shape; the
/// other arguments are linear()'s. Equals add(residual, linear(x, weight, bias)) up to rounding order.
template <typename T>
Var<T> linear_residual(const Var<T>& x, const Var<T>& weight, const Var<T>& bias, const Var<T>& residual) {
  if (!residual.defined()) throw ValueError("linear_residual: residual is undefined, expected a tensor");
  return detail::linear_op("linear_residual", x, weight, bias, false, residual);
}

}  // namespace eigenformer
