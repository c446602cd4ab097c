// Embedding lookup: rows of a (V, C) table gathered by integer ids, with a scatter-add backward
// (torch.nn.functional.embedding), alone or with a row of a positional table added to each step.
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>

#include "eigenformer/autograd/var.hpp"

namespace eigenformer {

namespace detail {

/// Throws unless weight is (V, C), padding_idx is -1 or a row of it, and every id is in [0, V); fn names the op.
template <typename T>
void check_embedding(const char* fn, const Var<T>& weight, const Tensor<std::int64_t>& ids, Index padding_idx) {
  if (!weight.defined())
    throw ValueError(concat(fn, ": weight is an undefined Var, expected (num_embeddings, embedding_dim)"));
  if (weight.dim() != 2)
    throw ShapeError(concat(fn, ": weight is ", to_string(weight.shape()), ", expected (num_embeddings, embedding_dim)"));
  const Index v = weight.shape()[0];
  if (padding_idx != -1 && (padding_idx < 0 || padding_idx >= v))
    throw ValueError(concat(fn, ": padding_idx is ", padding_idx, ", expected -1 (none) or 0 <= padding_idx < ", v));
  const std::int64_t* pid = ids.data();
  for (Index i = 0, n = ids.numel(); i < n; ++i) {
    if (pid[i] >= 0 && pid[i] < v) continue;
    Shape position(ids.shape().size());  // the flat index as one index per axis of ids
    for (Index k = static_cast<Index>(position.size()) - 1, rest = i; k >= 0; --k) {
      position[k] = rest % ids.shape()[k];
      rest /= ids.shape()[k];
    }
    throw ValueError(concat(fn, ": id ", pid[i], " at position ", to_string(position), " is out of range for V = ", v,
                            " embeddings (expected 0 <= id < ", v, ")"));
  }
}

/// dweight of a lookup: the rows of dy (one per id) added into a zero (V, C) table, except padding_idx's.
template <typename T>
void accumulate_embedding_grad(const Var<T>& weight, const Tensor<std::int64_t>& ids, Index padding_idx,
                               const Tensor<T>& dy) {
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
}

}  // namespace detail

/// weight[ids]: weight (V, C), ids of any shape -> (ids.shape..., C). Row padding_idx (if not -1) is looked up
/// as usual but gets no gradient, as in torch; unlike torch, -1 means "no padding row", not the last row.
template <typename T>
Var<T> embedding(const Var<T>& weight, const Tensor<std::int64_t>& ids, Index padding_idx = -1) {
  detail::check_embedding("embedding", weight, ids, padding_idx);
  const Index c = weight.shape()[1], n = ids.numel();
  Shape out_shape = ids.shape();
  out_shape.push_back(c);
  Tensor<T> y = Tensor<T>::empty(out_shape);  // (ids..., C)
  const T* pw = weight.value().data();
  const std::int64_t* pid = ids.data();
  for (Index i = 0; i < n; ++i) std::copy_n(pw + pid[i] * c, c, y.data() + i * c);

  Var<T> out(std::move(y), {weight}, "embedding");
  // The backward writes rows of dweight chosen by the ids: it keeps its own copy (a few bytes per token), so a
  // caller refilling its id buffer before backward cannot make it write out of bounds.
  out.on_backward([weight, ids = ids.clone(), padding_idx](const Tensor<T>& dy) {
    detail::accumulate_embedding_grad(weight, ids, padding_idx, dy);
  });
  return out;
}

/// weight[ids] + positions[t], t the index along ids' last axis: weight (V, C), ids (..., T), positions (P, C) with
/// P >= T -> (ids.shape..., C). The same values as add(embedding(weight, ids, padding_idx), first T rows of
/// positions), in one op: the lookup is not kept as a tensor of its own until backward (embedding then add keep
/// it as add's input). positions gets a gradient when it requires one (a learned table), summed over the leading
/// axes of ids; rows from T on get zeros.
template <typename T>
Var<T> embedding_with_positions(const Var<T>& weight, const Tensor<std::int64_t>& ids, const Var<T>& positions,
                                Index padding_idx = -1) {
  constexpr const char* fn = "embedding_with_positions";
  detail::check_embedding(fn, weight, ids, padding_idx);
  const Index c = weight.shape()[1];
  if (ids.dim() == 0)
    throw ShapeError(detail::concat(fn, ": ids is a scalar, expected at least one axis (positions run along the last)"));
  const Index steps = ids.shape().back();
  if (!positions.defined())
    throw ValueError(detail::concat(fn, ": positions is an undefined Var, expected a (P, ", c, ") table"));
  if (positions.dim() != 2 || positions.shape()[1] != c || positions.shape()[0] < steps)
    throw ShapeError(detail::concat(fn, ": positions is ", to_string(positions.shape()), ", weight is ",
                                    to_string(weight.shape()), ", ids is ", to_string(ids.shape()), ", expected (P, ", c,
                                    ") with P >= ", steps, " (the length of ids' last axis)"));
  const Index n = ids.numel();
  Shape out_shape = ids.shape();
  out_shape.push_back(c);
  Tensor<T> y = Tensor<T>::empty(out_shape);  // (ids..., C)
  using ArrayMap = typename Tensor<T>::ArrayMap;
  using ConstArrayMap = typename Tensor<T>::ConstArrayMap;
  const T* pw = weight.value().data();
  const T* pp = positions.value().data();
  const std::int64_t* pid = ids.data();
  for (Index i = 0; i < n; ++i)
    ArrayMap(y.data() + i * c, c) = ConstArrayMap(pw + pid[i] * c, c) + ConstArrayMap(pp + (i % steps) * c, c);

  Var<T> out(std::move(y), {weight, positions}, fn);
  out.on_backward([weight, positions, ids = ids.clone(), padding_idx, steps](const Tensor<T>& dy) {
    if (weight.requires_grad()) detail::accumulate_embedding_grad(weight, ids, padding_idx, dy);
    if (!positions.requires_grad()) return;
    const Index c = weight.shape()[1];
    Tensor<T> dp = Tensor<T>::zeros(positions.shape());  // row t: the sum of dy over every sequence at step t
    for (Index i = 0, n = ids.numel(); i < n; ++i)
      ArrayMap(dp.data() + (i % steps) * c, c) += ConstArrayMap(dy.data() + i * c, c);
    positions.accumulate_grad(std::move(dp));
  });
  return out;
}

}  // namespace eigenformer
