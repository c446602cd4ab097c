// Embedding lookup: rows of a (V, C) table gathered by integer ids, with a scatter-add backward
// (torch.nn.functional.embedding).
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>

#include "eigenformer/autograd/var.hpp"

namespace eigenformer {

/// weight[ids]: weight (V, C), ids of any shape -> (ids.shape..., C). Row padding_idx (if not -1) is looked up
/// as usual but gets no gradient, as in torch; unlike torch, -1 means "no padding row", not the last row.
template <typename T>
Var<T> embedding(const Var<T>& weight, const Tensor<std::int64_t>& ids, Index padding_idx = -1) {
  if (weight.dim() != 2)
    throw ShapeError(detail::concat("embedding: weight is ", to_string(weight.shape()),
                                    ", expected (num_embeddings, embedding_dim)"));
  const Index v = weight.shape()[0], c = weight.shape()[1];
  if (padding_idx != -1 && (padding_idx < 0 || padding_idx >= v))
    throw ValueError(detail::concat("embedding: padding_idx is ", padding_idx, ", expected -1 (none) or 0 <= ",
                                    "padding_idx < ", v));
  const Index n = ids.numel();
  const std::int64_t* pid = ids.data();
  for (Index i = 0; i < n; ++i) {
    if (pid[i] >= 0 && pid[i] < v) continue;
    Shape position(ids.shape().size());  // the flat index as one index per axis of ids
    for (Index k = static_cast<Index>(position.size()) - 1, rest = i; k >= 0; --k) {
      position[k] = rest % ids.shape()[k];
      rest /= ids.shape()[k];
    }
    throw ValueError(detail::concat("embedding: id ", pid[i], " at position ", to_string(position),
                                    " is out of range for V = ", v, " embeddings (expected 0 <= id < ", v, ")"));
  }

  Shape out_shape = ids.shape();
  out_shape.push_back(c);
  Tensor<T> y = Tensor<T>::empty(out_shape);  // (ids..., C)
  const T* pw = weight.value().data();
  for (Index i = 0; i < n; ++i) std::copy_n(pw + pid[i] * c, c, y.data() + i * c);

  Var<T> out(std::move(y), {weight}, "embedding");
  // The backward writes rows of dweight chosen by the ids: it keeps its own copy (a few bytes per token), so a
  // caller refilling its id buffer before backward cannot make it write out of bounds.
  out.on_backward([weight, ids = ids.clone(), padding_idx](const Tensor<T>& dy) {
    // Scatter-add: a repeated id accumulates every gradient row that looked it up.
    using ArrayMap = typename Tensor<T>::ArrayMap;
    using ConstArrayMap = typename Tensor<T>::ConstArrayMap;
    const Index c = weight.shape()[1];
    Tensor<T> dw = Tensor<T>::zeros(weight.shape());
    const std::int64_t* pid = ids.data();
    for (Index i = 0, n = ids.numel(); i < n; ++i) {
      if (pid[i] == padding_idx) continue;
      ArrayMap(dw.data() + pid[i] * c, c) += ConstArrayMap(dy.data() + i * c, c);
    }
    weight.accumulate_grad(std::move(dw));
  });
  return out;
}

}  // namespace eigenformer
