// Reductions over all elements or one axis: sum, mean, max (with its gradient routed to the first maximal element)
// and argmax, matching torch.sum, torch.mean, torch.max(dim) and torch.argmax.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "eigenformer/autograd/var.hpp"
#include "eigenformer/ops/layout.hpp"  // detail::AxisBlocks

namespace eigenformer {
namespace detail {

/// The result shape of reducing `axis`: the axis dropped, or kept with size 1.
inline Shape reduced_shape(Shape s, Index axis, bool keepdim) {
  if (keepdim)
    s[axis] = 1;
  else
    s.erase(s.begin() + axis);
  return s;
}

/// out(o, i) = scale * sum_k x(o, k, i).
template <typename T>
void sum_axis_kernel(const T* px, const AxisBlocks& e, T scale, T* po) {
  using RowMajor = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using RowVector = Eigen::Matrix<T, 1, Eigen::Dynamic>;
  if (e.inner == 1) {  // the last axis: each output is the sum of one contiguous row
    Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, 1>>(po, e.outer) =
        Eigen::Map<const RowMajor>(px, e.outer, e.n).rowwise().sum() * scale;
    return;
  }
  for (Index o = 0; o < e.outer; ++o)  // sum n contiguous rows of length inner
    Eigen::Map<RowVector>(po + o * e.inner, e.inner) =
        Eigen::Map<const RowMajor>(px + o * e.n * e.inner, e.n, e.inner).colwise().sum() * scale;
}

/// dx(o, k, i) = scale * dy(o, i): the adjoint of sum_axis_kernel.
template <typename T>
Tensor<T> expand_axis_kernel(const Tensor<T>& dy, const Shape& x_shape, const AxisBlocks& e, T scale) {
  Tensor<T> dx = Tensor<T>::empty(x_shape);
  const T* pdy = dy.data();
  T* pdx = dx.data();
  for (Index o = 0; o < e.outer; ++o) {
    const T* src = pdy + o * e.inner;
    T* dst = pdx + o * e.n * e.inner;
    if (e.inner == 1) {
      std::fill(dst, dst + e.n, scale * src[0]);
    } else {
      for (Index k = 0; k < e.n; ++k)
        for (Index i = 0; i < e.inner; ++i) dst[k * e.inner + i] = scale * src[i];
    }
  }
  return dx;
}

/// True when v replaces the running maximum b: larger, or the first NaN (torch.max propagates NaN and reports
/// its index).
template <typename T>
bool replaces_max(T v, T b) {
  return v > b || (v != v && b == b);
}

/// The maximum along the axis and the index of its first occurrence, both (outer * inner) flat.
template <typename T>
std::pair<Tensor<T>, Tensor<std::int64_t>> max_axis_kernel(const char* fn, const Tensor<T>& x, Index axis) {
  const AxisBlocks e = axis_blocks(x.shape(), axis);
  if (e.n == 0)
    throw ValueError(concat(fn, ": cannot reduce axis ", axis, " of size 0 (x is ", to_string(x.shape()),
                            "); expected a non-empty axis"));
  Tensor<T> best = Tensor<T>::empty({e.outer * e.inner});
  Tensor<std::int64_t> arg = Tensor<std::int64_t>::empty({e.outer * e.inner});
  const T* px = x.data();
  T* pb = best.data();
  std::int64_t* pa = arg.data();
  if (e.inner == 1) {  // the last axis: one contiguous row per output
    for (Index o = 0; o < e.outer; ++o) {
      const T* row = px + o * e.n;
      Index k_best = 0;
      if constexpr (std::is_floating_point_v<T>) {
        // A vectorized, NaN-propagating row maximum, then a scan for its first position (not one branchy pass).
        using ConstArrayMap = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;
        const T m = ConstArrayMap(row, e.n).template maxCoeff<Eigen::PropagateNaN>();
        if (m != m)
          while (row[k_best] == row[k_best]) ++k_best;
        else
          while (row[k_best] != m) ++k_best;
      } else {
        for (Index k = 1; k < e.n; ++k)
          if (replaces_max(row[k], row[k_best])) k_best = k;
      }
      pb[o] = row[k_best];
      pa[o] = static_cast<std::int64_t>(k_best);
    }
  } else {  // a running maximum over n contiguous rows of length inner, updated without branches
    for (Index o = 0; o < e.outer; ++o) {
      const T* block = px + o * e.n * e.inner;
      T* b = pb + o * e.inner;
      std::int64_t* a = pa + o * e.inner;
      std::copy(block, block + e.inner, b);
      std::fill(a, a + e.inner, std::int64_t(0));
      for (Index k = 1; k < e.n; ++k) {
        const T* r = block + k * e.inner;
        for (Index i = 0; i < e.inner; ++i) {
          const bool take = replaces_max(r[i], b[i]);
          b[i] = take ? r[i] : b[i];
          a[i] = take ? static_cast<std::int64_t>(k) : a[i];
        }
      }
    }
  }
  return {std::move(best), std::move(arg)};
}

}  // namespace detail

/// The sum of all elements, as a rank-0 Var (0 for an empty tensor).
template <typename T>
Var<T> sum(const Var<T>& x) {
  Var<T> y(Tensor<T>::scalar(x.value().array().sum()), {x}, "sum");
  y.on_backward([x](const Tensor<T>& dy) { x.accumulate_grad(Tensor<T>::full(x.shape(), dy[0])); });
  return y;
}

/// The sum along one axis (negative counts from the end); keepdim leaves it with size 1.
template <typename T>
Var<T> sum(const Var<T>& x, Index axis, bool keepdim = false) {
  const Index a = detail::normalize_axis("sum", axis, x.dim());
  const detail::AxisBlocks e = detail::axis_blocks(x.shape(), a);
  Tensor<T> out = Tensor<T>::empty(detail::reduced_shape(x.shape(), a, keepdim));
  detail::sum_axis_kernel(x.value().data(), e, T(1), out.data());
  Var<T> y(std::move(out), {x}, "sum");
  y.on_backward([x, e](const Tensor<T>& dy) { x.accumulate_grad(detail::expand_axis_kernel(dy, x.shape(), e, T(1))); });
  return y;
}

/// The mean of all elements, as a rank-0 Var (NaN for an empty tensor, as in PyTorch).
template <typename T>
Var<T> mean(const Var<T>& x) {
  const T n = static_cast<T>(x.numel());
  Var<T> y(Tensor<T>::scalar(x.value().array().sum() / n), {x}, "mean");
  y.on_backward([x, n](const Tensor<T>& dy) { x.accumulate_grad(Tensor<T>::full(x.shape(), dy[0] / n)); });
  return y;
}

/// The mean along one axis (negative counts from the end); keepdim leaves it with size 1.
template <typename T>
Var<T> mean(const Var<T>& x, Index axis, bool keepdim = false) {
  const Index a = detail::normalize_axis("mean", axis, x.dim());
  const detail::AxisBlocks e = detail::axis_blocks(x.shape(), a);
  const T inv_n = T(1) / static_cast<T>(e.n);  // an empty axis gives 0 * inf = NaN, as in PyTorch
  Tensor<T> out = Tensor<T>::empty(detail::reduced_shape(x.shape(), a, keepdim));
  detail::sum_axis_kernel(x.value().data(), e, inv_n, out.data());
  Var<T> y(std::move(out), {x}, "mean");
  y.on_backward(
      [x, e, inv_n](const Tensor<T>& dy) { x.accumulate_grad(detail::expand_axis_kernel(dy, x.shape(), e, inv_n)); });
  return y;
}

/// The maximum along one axis (torch.max(x, dim).values); the gradient flows to the first maximal element only.
/// Throws ValueError when the axis is empty.
template <typename T>
Var<T> max(const Var<T>& x, Index axis, bool keepdim = false) {
  const Index a = detail::normalize_axis("max", axis, x.dim());
  const detail::AxisBlocks e = detail::axis_blocks(x.shape(), a);
  std::pair<Tensor<T>, Tensor<std::int64_t>> best = detail::max_axis_kernel("max", x.value(), a);
  Var<T> y(best.first.reshape(detail::reduced_shape(x.shape(), a, keepdim)), {x}, "max");
  // The argmax indices, (outer * inner) positions along the axis, are cached for backward.
  y.on_backward([x, e, arg = std::move(best.second)](const Tensor<T>& dy) {
    Tensor<T> dx = Tensor<T>::zeros(x.shape());
    const T* pdy = dy.data();
    const std::int64_t* pa = arg.data();
    T* pdx = dx.data();
    for (Index o = 0; o < e.outer; ++o)
      for (Index i = 0; i < e.inner; ++i) {
        const Index j = o * e.inner + i;
        pdx[(o * e.n + static_cast<Index>(pa[j])) * e.inner + i] = pdy[j];
      }
    x.accumulate_grad(std::move(dx));
  });
  return y;
}

/// The index of the first maximum along one axis (torch.argmax(x, dim)); not differentiable. Throws ValueError
/// when the axis is empty.
template <typename T>
Tensor<std::int64_t> argmax(const Tensor<T>& x, Index axis, bool keepdim = false) {
  const Index a = detail::normalize_axis("argmax", axis, x.dim());
  return detail::max_axis_kernel("argmax", x, a).second.reshape(detail::reduced_shape(x.shape(), a, keepdim));
}

}  // namespace eigenformer
