// NumPy broadcasting kernels: an elementwise binary map over two broadcast operands, and its adjoint, the sum of
// a gradient back down to an operand's shape.
#pragma once

#include <algorithm>
#include <vector>

#include "eigenformer/core/parallel.hpp"
#include "eigenformer/core/shape.hpp"
#include "eigenformer/tensor/tensor.hpp"

namespace eigenformer {
namespace detail {

/// Strides of `s` seen from the (higher or equal rank) broadcast shape `out`: 0 on broadcast axes.
inline Shape broadcast_strides(const Shape& s, const Shape& out) {
  Shape st(out.size(), 0);
  const Shape own = strides_of(s);
  const std::size_t lead = out.size() - s.size();
  for (std::size_t i = 0; i < s.size(); ++i) st[lead + i] = s[i] == 1 ? 0 : own[i];
  return st;
}

/// True when `s` equals the trailing dimensions of `out` (a bias-like operand: one row repeated).
inline bool is_trailing_of(const Shape& s, const Shape& out) {
  if (s.size() > out.size()) return false;
  for (std::size_t i = 0; i < s.size(); ++i)
    if (s[i] != out[out.size() - s.size() + i]) return false;
  return true;
}

/// out[j] = sum over r of x[r * cols + j]: the sums of the columns of a row-major (rows, cols) matrix, row by row
/// (contiguous, vectorized), split by columns over threads when large.
template <typename T>
void column_sums(const T* x, Index rows, Index cols, T* out) {
  using Row = Eigen::Map<Eigen::Array<T, 1, Eigen::Dynamic>>;
  using ConstRow = Eigen::Map<const Eigen::Array<T, 1, Eigen::Dynamic>>;
  parallel_chunks(cols, static_cast<double>(rows), [&](Index begin, Index end) {
    Row o(out + begin, end - begin);
    o.setZero();
    for (Index r = 0; r < rows; ++r) o += ConstRow(x + r * cols + begin, end - begin);
  });
}

/// out[i] = f(a[ia], b[ib]) over the broadcast shape `out_shape`.
template <typename T, typename F>
Tensor<T> broadcast_map(const Tensor<T>& a, const Tensor<T>& b, const Shape& out_shape, F f) {
  Tensor<T> out = Tensor<T>::empty(out_shape);
  const Index n = out.numel();
  T* o = out.data();
  const T* pa = a.data();
  const T* pb = b.data();
  // Same shapes, a scalar operand, or a bias-like trailing operand: flat loops that vectorize, split over threads
  // when large. The general case walks an odometer.
  if (a.shape() == out_shape && b.shape() == out_shape) {
    parallel_chunks(n, 1.0, [&](Index begin, Index end) {
      for (Index i = begin; i < end; ++i) o[i] = f(pa[i], pb[i]);
    });
  } else if (b.numel() == 1 && a.shape() == out_shape) {
    const T vb = pb[0];
    parallel_chunks(n, 1.0, [&](Index begin, Index end) {
      for (Index i = begin; i < end; ++i) o[i] = f(pa[i], vb);
    });
  } else if (a.numel() == 1 && b.shape() == out_shape) {
    const T va = pa[0];
    parallel_chunks(n, 1.0, [&](Index begin, Index end) {
      for (Index i = begin; i < end; ++i) o[i] = f(va, pb[i]);
    });
  } else if (a.shape() == out_shape && is_trailing_of(b.shape(), out_shape) && b.numel() > 0) {
    const Index inner = b.numel();
    parallel_chunks(n / inner, static_cast<double>(inner), [&](Index begin, Index end) {
      for (Index r = begin * inner; r < end * inner; r += inner)
        for (Index i = 0; i < inner; ++i) o[r + i] = f(pa[r + i], pb[i]);
    });
  } else {
    const Shape sa = broadcast_strides(a.shape(), out_shape), sb = broadcast_strides(b.shape(), out_shape);
    const std::size_t rank = out_shape.size();
    std::vector<Index> idx(rank, 0);
    Index ia = 0, ib = 0;
    for (Index i = 0; i < n; ++i) {
      o[i] = f(pa[ia], pb[ib]);
      for (std::size_t d = rank; d-- > 0;) {  // odometer increment, innermost axis first
        ++idx[d];
        ia += sa[d];
        ib += sb[d];
        if (idx[d] < out_shape[d]) break;
        ia -= sa[d] * idx[d];
        ib -= sb[d] * idx[d];
        idx[d] = 0;
      }
    }
  }
  return out;
}

/// Sums g (of a broadcast shape) down to `shape`, the adjoint of broadcasting `shape` up to g's shape.
template <typename T>
Tensor<T> sum_to(const Tensor<T>& g, const Shape& shape) {
  if (g.shape() == shape) return g;
  Tensor<T> out = Tensor<T>::zeros(shape);
  const Index n = g.numel();
  if (out.numel() == 1) {
    out[0] = g.array().sum();
  } else if (is_trailing_of(shape, g.shape())) {
    const Index inner = out.numel();
    column_sums(g.data(), n / inner, inner, out.data());
  } else {
    const Shape so = broadcast_strides(shape, g.shape());
    const std::size_t rank = g.shape().size();
    std::vector<Index> idx(rank, 0);
    Index io = 0;
    for (Index i = 0; i < n; ++i) {
      out[io] += g[i];
      for (std::size_t d = rank; d-- > 0;) {
        ++idx[d];
        io += so[d];
        if (idx[d] < g.shape()[d]) break;
        io -= so[d] * idx[d];
        idx[d] = 0;
      }
    }
  }
  return out;
}

}  // namespace detail
}  // namespace eigenformer
