// Affine map y = x W^T + b over the last axis, one GEMM on the (rows, in) view (torch.nn.functional.linear).
#pragma once

#include <utility>

#include "eigenformer/autograd/var.hpp"

namespace eigenformer {

/// x W^T + b: x (..., in), weight (out, in), bias (out) or an undefined Var<T>() for none -> (..., out).
template <typename T>
Var<T> linear(const Var<T>& x, const Var<T>& weight, const Var<T>& bias = Var<T>()) {
  const Shape& sx = x.shape();
  const Shape& sw = weight.shape();
  if (sw.size() != 2)
    throw ShapeError(detail::concat("linear: weight is ", to_string(sw), ", expected (out_features, in_features)"));
  if (sx.empty() || sx.back() != sw[1])
    throw ShapeError(detail::concat("linear: x is ", to_string(sx), ", weight is ", to_string(sw),
                                    ", expected x's last dimension to be in_features = ", sw[1]));
  if (bias.defined() && bias.shape() != Shape{sw[0]})
    throw ShapeError(detail::concat("linear: bias is ", to_string(bias.shape()), ", weight is ", to_string(sw),
                                    ", expected bias (", sw[0], ")"));

  using MatrixMap = typename Tensor<T>::MatrixMap;
  using ConstMatrixMap = typename Tensor<T>::ConstMatrixMap;
  const Index in = sw[1], out_features = sw[0];
  Shape out_shape = sx;
  out_shape.back() = out_features;
  const Index rows = in == 0 ? numel(Shape(sx.begin(), sx.end() - 1)) : x.numel() / in;
  Tensor<T> y = Tensor<T>::empty(out_shape);  // (rows, out) view: rows = every leading dimension
  MatrixMap ym(y.data(), rows, out_features);
  ConstMatrixMap xm(x.value().data(), rows, in);
  ConstMatrixMap wm(weight.value().data(), out_features, in);
  if (bias.defined())
    ym.rowwise() = Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>>(bias.value().data(), out_features);
  else
    ym.setZero();
  // Accumulating into the bias-filled output folds the bias add into the GEMM.
  ym.noalias() += xm * wm.transpose();

  Var<T> result(std::move(y), {x, weight, bias}, "linear");
  result.on_backward([x, weight, bias, rows](const Tensor<T>& dy) {
    using MatrixMap = typename Tensor<T>::MatrixMap;
    using ConstMatrixMap = typename Tensor<T>::ConstMatrixMap;
    const Index out_features = weight.shape()[0], in = weight.shape()[1];
    ConstMatrixMap dym(dy.data(), rows, out_features);  // (rows, out)
    if (x.requires_grad()) {
      Tensor<T> dx = Tensor<T>::empty(x.shape());
      MatrixMap(dx.data(), rows, in).noalias() = dym * ConstMatrixMap(weight.value().data(), out_features, in);
      x.accumulate_grad(std::move(dx));
    }
    if (weight.requires_grad()) {
      Tensor<T> dw = Tensor<T>::empty(weight.shape());
      // One GEMM sums over every leading dimension of x.
      MatrixMap(dw.data(), out_features, in).noalias() = dym.transpose() * ConstMatrixMap(x.value().data(), rows, in);
      weight.accumulate_grad(std::move(dw));
    }
    if (bias.defined() && bias.requires_grad()) {
      Tensor<T> db = Tensor<T>::empty(bias.shape());
      Eigen::Map<Eigen::Matrix<T, 1, Eigen::Dynamic>>(db.data(), out_features) = dym.colwise().sum();
      bias.accumulate_grad(std::move(db));
    }
  });
  return result;
}

}  // namespace eigenformer
