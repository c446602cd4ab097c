// Affine map y = x W^T + b over the last axis, one GEMM on the (rows, in) view (torch.nn.functional.linear), the
// same map fused with relu (the first half of a transformer feed-forward block), with a residual added in the same
// GEMM (a transformer sublayer's last projection and its skip connection), and with the weight stored (in, out) as
// transformers' Conv1D stores it.
#pragma once

#include <algorithm>
#include <utility>

#include "eigenformer/autograd/var.hpp"
#include "eigenformer/ops/broadcast.hpp"
#include "eigenformer/ops/gemm.hpp"

namespace eigenformer {
namespace detail {

/// How a linear map's weight is stored: (out, in) as torch.nn.Linear, or (in, out) as transformers' Conv1D (GPT-2).
enum class WeightLayout { out_in, in_out };

/// addend + x W^T + b (W as layout says), then relu when asked; addend is optional and has the output's shape (a
/// residual, or an adapter's contribution, which relu then sees). `fn` names the op in messages and in the graph.
template <typename T>
Var<T> linear_op(const char* fn, const Var<T>& x, const Var<T>& weight, const Var<T>& bias, bool relu,
                 const Var<T>& addend = Var<T>(), WeightLayout layout = WeightLayout::out_in) {
  const Shape& sx = x.shape();
  const Shape& sw = weight.shape();
  const bool in_out = layout == WeightLayout::in_out;
  if (sw.size() != 2)
    throw ShapeError(concat(fn, ": weight is ", to_string(sw), ", expected ",
                            in_out ? "(in_features, out_features)" : "(out_features, in_features)"));
  const Index in = in_out ? sw[0] : sw[1], out_features = in_out ? sw[1] : sw[0];
  if (sx.empty() || sx.back() != in)
    throw ShapeError(concat(fn, ": x is ", to_string(sx), ", weight is ", to_string(sw),
                            ", expected x's last dimension to be in_features = ", in));
  if (bias.defined() && bias.shape() != Shape{out_features})
    throw ShapeError(concat(fn, ": bias is ", to_string(bias.shape()), ", weight is ", to_string(sw),
                            ", expected bias (", out_features, ")"));

  Shape out_shape = sx;
  out_shape.back() = out_features;
  const Index rows = numel(Shape(sx.begin(), sx.end() - 1));  // every leading dimension
  if (addend.defined() && addend.shape() != out_shape)
    throw ShapeError(concat(fn, ": residual is ", to_string(addend.shape()), ", expected the output's shape ",
                            to_string(out_shape)));
  Tensor<T> y = Tensor<T>::empty(out_shape);  // (rows, out)
  if (addend.defined()) std::copy_n(addend.value().data(), y.numel(), y.data());
  // One GEMM over the (rows, in) view; the bias add and relu happen in its store, the addend is what it adds to.
  GemmProduct<T> product = GemmProduct<T>::sizes(rows, out_features, in)
                               .lhs(x.value().data(), in)
                               .add_bias(bias.defined() ? bias.value().data() : nullptr)
                               .apply_relu(relu);
  if (in_out)
    product.rhs(weight.value().data(), out_features);
  else
    product.rhs_transposed(weight.value().data(), in);
  gemm(addend.defined() ? product.add_to(y.data(), out_features) : product.out(y.data(), out_features));

  Var<T> result(y, {x, weight, bias, addend}, fn);
  // relu's derivative reads the output (y > 0 exactly where the pre-activation is): the pre-activation is not kept.
  const Tensor<T> saved_y = relu ? y : Tensor<T>();
  result.on_backward([x, weight, bias, addend, rows, saved_y, in_out](Tensor<T>& dy) {
    const Index in = x.shape().back(), out_features = dy.shape().back();
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
    if (addend.defined() && addend.requires_grad()) addend.accumulate_grad(dz);  // shared, never written
    const bool need_dx = x.requires_grad(), need_dw = weight.requires_grad();
    // dx = dz W, added straight into x's gradient when it has one of its own (in a transformer block the residual
    // path's gradient arrives first); else a new tensor.
    T* const dx_into = need_dx ? x.grad_to_accumulate() : nullptr;
    Tensor<T> dx = need_dx && !dx_into ? Tensor<T>::empty(x.shape()) : Tensor<T>();
    Tensor<T> dw = need_dw ? Tensor<T>::empty(weight.shape()) : Tensor<T>();
    // dw = dz^T x ((out, in) layout) or x^T dz ((in, out)), one GEMM summing over every leading dimension. The two
    // are equal in size and independent: on two threads they run side by side (gemm_pair).
    GemmProduct<T> dx_product = GemmProduct<T>::sizes(rows, in, out_features).lhs(dz.data(), out_features);
    if (in_out)
      dx_product.rhs_transposed(weight.value().data(), out_features);
    else
      dx_product.rhs(weight.value().data(), in);
    if (dx_into)
      dx_product.add_to(dx_into, in);
    else
      dx_product.out(dx.data(), in);
    const GemmProduct<T> dw_product =
        in_out ? GemmProduct<T>::sizes(in, out_features, rows)
                     .lhs_transposed(x.value().data(), in)
                     .rhs(dz.data(), out_features)
                     .out(dw.data(), out_features)
               : GemmProduct<T>::sizes(out_features, in, rows)
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

/// x W + b with weight stored (in, out), as transformers' Conv1D (GPT-2's projections); residual, when defined, is
/// added by the GEMM as in linear_residual.
template <typename T>
Var<T> linear_in_out(const Var<T>& x, const Var<T>& weight, const Var<T>& bias = Var<T>(),
                     const Var<T>& residual = Var<T>()) {
  return detail::linear_op("linear_in_out", x, weight, bias, false, residual, detail::WeightLayout::in_out);
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
