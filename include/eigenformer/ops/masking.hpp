// masked_fill: the entries of x where a broadcastable boolean mask is true replaced by a value
// (torch.Tensor.masked_fill; true = masked, PyTorch's key_padding_mask convention).
#pragma once

#include <algorithm>
#include <vector>

#include "eigenformer/autograd/var.hpp"
#include "eigenformer/ops/broadcast.hpp"

namespace eigenformer {
namespace detail {

/// out[i] = mask[i] ? value : src[i], with mask broadcast to src's shape (already checked to fit).
template <typename T>
Tensor<T> masked_fill_kernel(const Tensor<T>& src, const Tensor<bool>& mask, T value) {
  const Shape& s = src.shape();
  Tensor<T> out = Tensor<T>::empty(s);
  const Index n = out.numel();
  const T* ps = src.data();
  const bool* pm = mask.data();
  T* po = out.data();
  if (n == 0) return out;
  if (mask.numel() == n) {  // a mask that fits with as many elements differs at most by size-1 axes: same layout
    for (Index i = 0; i < n; ++i) po[i] = pm[i] ? value : ps[i];
    return out;
  }
  // Row by row along the last axis (rank >= 1 here: a rank-0 src has one element, so the mask has one too). The
  // mask offset of each row comes from an odometer over the leading axes; within a row the mask either advances
  // (stride 1) or is one flag for the whole row (stride 0, e.g. a (B, 1, T, 1) mask).
  const Shape ms = broadcast_strides(mask.shape(), s);
  const std::size_t lead = s.size() - 1;
  const Index len = s[lead], step = ms[lead];
  std::vector<Index> idx(lead, 0);
  Index mo = 0;
  for (Index r = 0, rows = n / len; r < rows; ++r) {
    const T* a = ps + r * len;
    T* o = po + r * len;
    if (step == 0) {
      if (pm[mo])
        std::fill(o, o + len, value);
      else
        std::copy(a, a + len, o);
    } else {
      for (Index j = 0; j < len; ++j) o[j] = pm[mo + j] ? value : a[j];
    }
    for (std::size_t d = lead; d-- > 0;) {
      ++idx[d];
      mo += ms[d];
      if (idx[d] < s[d]) break;
      mo -= ms[d] * idx[d];
      idx[d] = 0;
    }
  }
  return out;
}

}  // namespace detail

/// x with the entries where mask is true set to value (which may be -infinity, as attention masks use). mask must
/// broadcast to x's shape (NumPy rules, the result being x's shape); backward passes dy where mask is false and
/// zero where it is true.
template <typename T>
Var<T> masked_fill(const Var<T>& x, const Tensor<bool>& mask, T value) {
  // NumPy broadcasting of mask against x gives x's shape exactly when the mask's rank is not larger and each of
  // its dimensions (aligned from the right) is 1 or x's.
  const Shape& xs = x.shape();
  const Shape& ms = mask.shape();
  bool fits = ms.size() <= xs.size();
  for (std::size_t i = 0; fits && i < ms.size(); ++i) {
    const Index m = ms[ms.size() - 1 - i], d = xs[xs.size() - 1 - i];
    fits = m == 1 || m == d;
  }
  if (!fits)
    throw ShapeError(detail::concat("masked_fill: mask is ", to_string(ms), ", x is ", to_string(xs),
                                    ", expected a mask that broadcasts to x's shape"));
  Var<T> y(detail::masked_fill_kernel(x.value(), mask, value), {x}, "masked_fill");
  // A private copy of the mask: the caller may reuse its mask tensor before backward runs.
  y.on_backward([x, m = mask.clone()](const Tensor<T>& dy) {
    x.accumulate_grad(detail::masked_fill_kernel(dy, m, T(0)));
  });
  return y;
}

}  // namespace eigenformer
