// Masked mean pooling over the sequence axis, the sentence embedding of BERT-style classifiers (Sentence-BERT's
// mean pooling; torch: (x * ~mask[..., None]).sum(1) / (~mask).sum(1, keepdim=True)).
#pragma once

#include <utility>

#include "eigenformer/autograd/var.hpp"

namespace eigenformer {

/// Mean of x (B, T, C) over the positions t where padding_mask (B, T) is false -> (B, C). A sequence with no
/// valid position gives a zero row and a zero gradient (torch's formula would give 0 / 0 = NaN).
template <typename T>
Var<T> masked_mean(const Var<T>& x, const Tensor<bool>& padding_mask) {
  const Shape& sx = x.shape();
  if (sx.size() != 3 || padding_mask.shape() != Shape{sx[0], sx[1]})
    throw ShapeError(detail::concat("masked_mean: x is ", to_string(sx), ", padding_mask is ",
                                    to_string(padding_mask.shape()), ", expected x (B, T, C) and padding_mask (B, T)"));
  using RowMap = Eigen::Map<Eigen::Matrix<T, 1, Eigen::Dynamic>>;
  using ConstRowMap = Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>>;
  const Index b = sx[0], t = sx[1], c = sx[2];
  const bool* pm = padding_mask.data();
  Tensor<T> inv_count = Tensor<T>::empty({b});  // 1 / (valid positions), 0 for none; saved for the backward
  Tensor<T> y = Tensor<T>::zeros({b, c});       // (B, C)
  const T* px = x.value().data();
  for (Index i = 0; i < b; ++i) {
    RowMap yr(y.data() + i * c, c);
    Index count = 0;
    for (Index j = 0; j < t; ++j) {
      if (pm[i * t + j]) continue;
      yr += ConstRowMap(px + (i * t + j) * c, c);
      ++count;
    }
    inv_count[i] = count > 0 ? T(1) / static_cast<T>(count) : T(0);
    yr *= inv_count[i];
  }

  Var<T> out(std::move(y), {x}, "masked_mean");
  out.on_backward([x, mask = padding_mask.clone(), inv_count](const Tensor<T>& dy) {
    // dx[b, t] = dy[b] / count_b at valid positions, 0 at padding.
    using RowMap = Eigen::Map<Eigen::Matrix<T, 1, Eigen::Dynamic>>;
    using ConstRowMap = Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>>;
    const Index b = x.shape()[0], t = x.shape()[1], c = x.shape()[2];
    Tensor<T> dx = Tensor<T>::empty(x.shape());
    const bool* pm = mask.data();
    for (Index i = 0; i < b; ++i) {
      ConstRowMap dyr(dy.data() + i * c, c);
      for (Index j = 0; j < t; ++j) {
        RowMap dxr(dx.data() + (i * t + j) * c, c);
        if (pm[i * t + j])
          dxr.setZero();
        else
          dxr = dyr * inv_count[i];
      }
    }
    x.accumulate_grad(std::move(dx));
  });
  return out;
}

}  // namespace eigenformer
