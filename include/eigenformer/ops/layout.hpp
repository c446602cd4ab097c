// Shape and layout ops: reshape (a view), transpose and permute, concat, split and chunk, index_select and select,
// matching torch.reshape, torch.transpose, torch.permute, torch.cat, torch.split, torch.chunk, torch.index_select
// and torch.select. Every result but reshape's owns a new contiguous buffer.
#pragma once

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <numeric>
#include <utility>
#include <vector>

#include "eigenformer/autograd/var.hpp"

namespace eigenformer {
namespace detail {

/// A tensor seen as (outer, n, inner) around one axis: the elements before it, along it and after it.
struct AxisBlocks {
  Index outer = 1, n = 1, inner = 1;
};

inline AxisBlocks axis_blocks(const Shape& s, Index axis) {
  AxisBlocks b;
  for (Index d = 0; d < static_cast<Index>(s.size()); ++d) (d < axis ? b.outer : d == axis ? b.n : b.inner) *= s[d];
  return b;
}

/// Calls f(k, offset) for k = 0, 1, ... over the row-major positions of `extents`, where offset is the sum of
/// position * stride over the axes (an odometer: no division per element).
template <typename F>
void for_each_strided(const Shape& extents, const Shape& strides, F&& f) {
  const Index count = numel(extents);
  const std::size_t rank = extents.size();
  std::vector<Index> idx(rank, 0);
  Index off = 0;
  for (Index k = 0; k < count; ++k) {
    f(k, off);
    for (std::size_t d = rank; d-- > 0;) {  // innermost axis first
      ++idx[d];
      off += strides[d];
      if (idx[d] < extents[d]) break;
      off -= strides[d] * idx[d];
      idx[d] = 0;
    }
  }
}

/// out = x with its axes reordered: out axis i is x axis dims[i]. dims must be a valid permutation.
template <typename T>
Tensor<T> permute_kernel(const Tensor<T>& x, const std::vector<Index>& dims) {
  const Shape& s = x.shape();
  const std::size_t rank = s.size();
  const Shape st = strides_of(s);
  Shape out_shape(rank), src_strides(rank);  // src_strides[i]: x's stride along out axis i
  for (std::size_t i = 0; i < rank; ++i) {
    out_shape[i] = s[static_cast<std::size_t>(dims[i])];
    src_strides[i] = st[static_cast<std::size_t>(dims[i])];
  }
  Tensor<T> out = Tensor<T>::empty(out_shape);
  if (out.numel() == 0) return out;
  const T* px = x.data();
  T* po = out.data();

  // Trailing axes that stay in place are contiguous in both tensors: copy them as whole blocks. The head split
  // (B, T, H, D) <-> (B, H, T, D) copies rows of D.
  std::size_t keep = rank;
  while (keep > 0 && dims[keep - 1] == static_cast<Index>(keep - 1)) --keep;
  if (keep < rank || rank == 0) {
    const Index block = numel(Shape(s.begin() + static_cast<Index>(keep), s.end()));
    for_each_strided(Shape(out_shape.begin(), out_shape.begin() + static_cast<Index>(keep)),
                     Shape(src_strides.begin(), src_strides.begin() + static_cast<Index>(keep)),
                     [&](Index k, Index off) { std::copy(px + off, px + off + block, po + k * block); });
    return out;
  }

  // Swapping only the last two axes is a batch of matrix transposes.
  bool batched_transpose = rank >= 2 && dims[rank - 1] == static_cast<Index>(rank - 2) &&
                           dims[rank - 2] == static_cast<Index>(rank - 1);
  for (std::size_t i = 0; i + 2 < rank && batched_transpose; ++i) batched_transpose = dims[i] == static_cast<Index>(i);
  if (batched_transpose) {
    const Index batch = x.numel() / (s[rank - 1] * s[rank - 2]);
    for (Index b = 0; b < batch; ++b) out.matrix(b) = x.matrix(b).transpose();
    return out;
  }

  // General case: each output row gathers with x's stride along the axis that becomes the last.
  const Index len = out_shape[rank - 1], stride = src_strides[rank - 1];
  for_each_strided(Shape(out_shape.begin(), out_shape.end() - 1), Shape(src_strides.begin(), src_strides.end() - 1),
                   [&](Index k, Index off) {
                     T* row = po + k * len;
                     for (Index j = 0; j < len; ++j) row[j] = px[off + j * stride];
                   });
  return out;
}

/// permute with validated, non-negative dims; `fn` names the op in the graph.
template <typename T>
Var<T> permute_var(const char* fn, const Var<T>& x, const std::vector<Index>& dims) {
  std::vector<Index> inverse(dims.size());
  for (std::size_t i = 0; i < dims.size(); ++i) inverse[static_cast<std::size_t>(dims[i])] = static_cast<Index>(i);
  Var<T> y(permute_kernel(x.value(), dims), {x}, fn);
  y.on_backward([x, inverse](const Tensor<T>& dy) { x.accumulate_grad(permute_kernel(dy, inverse)); });
  return y;
}

/// The slice [start, start + len) of x along axis a, with result shape out_shape (the axis kept or removed).
template <typename T>
Var<T> narrow_var(const char* fn, const Var<T>& x, Index a, Index start, Index len, const Shape& out_shape) {
  const AxisBlocks b = axis_blocks(x.shape(), a);
  const Index row = len * b.inner, stride = b.n * b.inner, offset = start * b.inner;  // per outer index
  Tensor<T> out = Tensor<T>::empty(out_shape);
  const T* px = x.value().data();
  T* po = out.data();
  for (Index o = 0; o < b.outer; ++o) std::copy(px + o * stride + offset, px + o * stride + offset + row, po + o * row);
  Var<T> y(std::move(out), {x}, fn);
  y.on_backward([x, b, row, stride, offset](const Tensor<T>& dy) {
    const T* pdy = dy.data();
    if (T* into = x.grad_to_accumulate()) {
      // Add in place: the same += accumulate_grad would do, without a zero tensor of x's full size per slice
      // (split into q, k, v would otherwise build three).
      for (Index o = 0; o < b.outer; ++o)
        for (Index j = 0; j < row; ++j) into[o * stride + offset + j] += pdy[o * row + j];
    } else {
      Tensor<T> g = Tensor<T>::zeros(x.shape());
      T* pg = g.data();
      for (Index o = 0; o < b.outer; ++o) std::copy(pdy + o * row, pdy + (o + 1) * row, pg + o * stride + offset);
      x.accumulate_grad(std::move(g));
    }
  });
  return y;
}

/// Consecutive slices of the given sizes along axis a (sizes already checked to sum to the axis size).
template <typename T>
std::vector<Var<T>> split_var(const char* fn, const Var<T>& x, const std::vector<Index>& sizes, Index a) {
  std::vector<Var<T>> out;
  out.reserve(sizes.size());
  Index start = 0;
  for (Index len : sizes) {
    Shape s = x.shape();
    s[static_cast<std::size_t>(a)] = len;
    out.push_back(narrow_var(fn, x, a, start, len, s));
    start += len;
  }
  return out;
}

}  // namespace detail

/// A view of x's buffer with another shape (one entry may be -1, inferred); throws ShapeError if the element
/// counts differ. Backward reshapes the gradient.
template <typename T>
Var<T> reshape(const Var<T>& x, const Shape& shape) {
  Var<T> y(x.value().reshape(shape), {x}, "reshape");
  y.on_backward([x](const Tensor<T>& dy) { x.accumulate_grad(dy.reshape(x.shape())); });
  return y;
}

/// x with its axes reordered: result axis i is x axis dims[i] (negative entries count from the end).
template <typename T>
Var<T> permute(const Var<T>& x, std::vector<Index> dims) {
  const Index rank = x.dim();
  if (static_cast<Index>(dims.size()) != rank)
    throw ValueError(detail::concat("permute: dims ", to_string(dims), " has ", dims.size(), " entries, x is ",
                                    to_string(x.shape()), ", expected ", rank));
  const std::vector<Index> given = dims;
  std::vector<bool> seen(static_cast<std::size_t>(rank), false);
  for (Index& d : dims) {
    d = detail::normalize_axis("permute", d, rank);
    if (seen[static_cast<std::size_t>(d)])
      throw ValueError(detail::concat("permute: dims ", to_string(given), " is not a permutation of the axes of x ",
                                      to_string(x.shape()), ": axis ", d, " appears twice"));
    seen[static_cast<std::size_t>(d)] = true;
  }
  return detail::permute_var("permute", x, dims);
}

/// x with axes a0 and a1 swapped (negative axes count from the end).
template <typename T>
Var<T> transpose(const Var<T>& x, Index a0, Index a1) {
  const Index rank = x.dim();
  const Index i = detail::normalize_axis("transpose", a0, rank), j = detail::normalize_axis("transpose", a1, rank);
  std::vector<Index> dims(static_cast<std::size_t>(rank));
  std::iota(dims.begin(), dims.end(), Index(0));
  std::swap(dims[static_cast<std::size_t>(i)], dims[static_cast<std::size_t>(j)]);
  return detail::permute_var("transpose", x, dims);
}

/// The tensors joined along an existing axis; all shapes must agree except along it.
template <typename T>
Var<T> concat(const std::vector<Var<T>>& xs, Index axis) {
  if (xs.empty()) throw ValueError("concat: xs is empty, expected at least one tensor");
  const Shape& s0 = xs[0].shape();
  const Index a = detail::normalize_axis("concat", axis, static_cast<Index>(s0.size()));
  const std::size_t ua = static_cast<std::size_t>(a);
  Shape out_shape = s0;
  out_shape[ua] = 0;
  for (std::size_t k = 0; k < xs.size(); ++k) {
    const Shape& s = xs[k].shape();
    bool ok = s.size() == s0.size();
    for (std::size_t d = 0; ok && d < s.size(); ++d) ok = d == ua || s[d] == s0[d];
    if (!ok)
      throw ShapeError(detail::concat("concat: xs[", k, "] is ", to_string(s), ", xs[0] is ", to_string(s0),
                                      ", expected the same shape except along axis ", a));
    out_shape[ua] += s[ua];
  }
  const detail::AxisBlocks b = detail::axis_blocks(out_shape, a);
  const Index out_row = b.n * b.inner;  // elements per outer index in the result
  Tensor<T> out = Tensor<T>::empty(out_shape);
  T* po = out.data();
  Index col = 0;
  for (const Var<T>& x : xs) {
    const Index row = x.shape()[ua] * b.inner;
    const T* px = x.value().data();
    for (Index o = 0; o < b.outer; ++o) std::copy(px + o * row, px + (o + 1) * row, po + o * out_row + col);
    col += row;
  }
  Var<T> y(std::move(out), xs, "concat");
  y.on_backward([xs, ua, b, out_row](const Tensor<T>& dy) {
    const T* pdy = dy.data();
    Index col = 0;
    for (const Var<T>& x : xs) {
      const Index row = x.shape()[ua] * b.inner;
      if (x.requires_grad()) {
        Tensor<T> g = Tensor<T>::empty(x.shape());
        T* pg = g.data();
        for (Index o = 0; o < b.outer; ++o)
          std::copy(pdy + o * out_row + col, pdy + o * out_row + col + row, pg + o * row);
        x.accumulate_grad(std::move(g));
      }
      col += row;
    }
  });
  return y;
}

/// concat({a, b, c}, axis): a braced list deduces T, which a std::vector parameter cannot.
template <typename T>
Var<T> concat(std::initializer_list<Var<T>> xs, Index axis) {
  return concat(std::vector<Var<T>>(xs), axis);
}

/// Consecutive slices along an axis with the given sizes, which must be non-negative and sum to the axis size.
template <typename T>
std::vector<Var<T>> split(const Var<T>& x, const std::vector<Index>& sizes, Index axis) {
  const Index a = detail::normalize_axis("split", axis, x.dim());
  const Index n = x.shape()[static_cast<std::size_t>(a)];
  Index total = 0;
  for (Index s : sizes) {
    if (s < 0)
      throw ValueError(detail::concat("split: sizes ", to_string(sizes), " has a negative entry, expected sizes >= 0"));
    total += s;
  }
  if (total != n)
    throw ValueError(detail::concat("split: sizes ", to_string(sizes), " sum to ", total, ", expected ", n,
                                    ", the size of axis ", axis, " of x ", to_string(x.shape())));
  return detail::split_var("split", x, sizes, a);
}

/// x cut into at most n slices of ceil(size / n) along an axis, the last possibly smaller (torch.chunk: fewer than
/// n slices when they would otherwise be empty; n empty slices for an empty axis).
template <typename T>
std::vector<Var<T>> chunk(const Var<T>& x, Index n, Index axis) {
  if (n < 1) throw ValueError(detail::concat("chunk: n is ", n, ", expected n >= 1"));
  const Index a = detail::normalize_axis("chunk", axis, x.dim());
  const Index size = x.shape()[static_cast<std::size_t>(a)];
  std::vector<Index> sizes;
  if (size == 0) {
    sizes.assign(static_cast<std::size_t>(n), 0);
  } else {
    const Index c = (size + n - 1) / n;
    for (Index start = 0; start < size; start += c) sizes.push_back(std::min(c, size - start));
  }
  return detail::split_var("chunk", x, sizes, a);
}

/// The slices of x at the given positions along an axis, in index order (a gather; repeats allowed). index is
/// rank 1 (or rank 0, read as one entry) with values in [0, size); backward scatter-adds.
template <typename T>
Var<T> index_select(const Var<T>& x, Index axis, const Tensor<std::int64_t>& index) {
  const Index a = detail::normalize_axis("index_select", axis, x.dim());
  if (index.dim() > 1)
    throw ShapeError(detail::concat("index_select: index is ", to_string(index.shape()),
                                    ", expected a rank-1 tensor of positions"));
  const detail::AxisBlocks b = detail::axis_blocks(x.shape(), a);
  const Index m = index.numel();
  const std::int64_t* pi = index.data();
  for (Index j = 0; j < m; ++j)
    if (pi[j] < 0 || pi[j] >= b.n)
      throw ValueError(detail::concat("index_select: index ", pi[j], " at position ", j, " is out of range for axis ",
                                      axis, " of size ", b.n, " (x is ", to_string(x.shape()),
                                      "); expected 0 <= index < ", b.n));
  Shape out_shape = x.shape();
  out_shape[static_cast<std::size_t>(a)] = m;
  Tensor<T> out = Tensor<T>::empty(out_shape);
  const T* px = x.value().data();
  T* po = out.data();
  for (Index o = 0; o < b.outer; ++o)
    for (Index j = 0; j < m; ++j) {
      const T* src = px + (o * b.n + static_cast<Index>(pi[j])) * b.inner;
      std::copy(src, src + b.inner, po + (o * m + j) * b.inner);
    }
  Var<T> y(std::move(out), {x}, "index_select");
  // A private copy of the positions: the caller may reuse its index tensor before backward runs.
  y.on_backward([x, b, idx = index.clone()](const Tensor<T>& dy) {
    const Index m = idx.numel();
    const std::int64_t* pi = idx.data();
    Tensor<T> g = Tensor<T>::zeros(x.shape());
    const T* pdy = dy.data();
    T* pg = g.data();
    for (Index o = 0; o < b.outer; ++o)
      for (Index j = 0; j < m; ++j) {  // += : repeated positions accumulate
        T* dst = pg + (o * b.n + static_cast<Index>(pi[j])) * b.inner;
        const T* src = pdy + (o * m + j) * b.inner;
        for (Index i = 0; i < b.inner; ++i) dst[i] += src[i];
      }
    x.accumulate_grad(std::move(g));
  });
  return y;
}

/// The slice at position i along an axis, with that axis removed (negative i counts from the end). CLS pooling of
/// (B, T, C) hidden states is select(h, 1, 0) -> (B, C).
template <typename T>
Var<T> select(const Var<T>& x, Index axis, Index i) {
  const Index a = detail::normalize_axis("select", axis, x.dim());
  const Index n = x.shape()[static_cast<std::size_t>(a)];
  if (i < -n || i >= n)
    throw ValueError(detail::concat("select: index ", i, " is out of range for axis ", axis, " of size ", n, " (x is ",
                                    to_string(x.shape()), "); expected ", -n, " <= index < ", n));
  Shape out_shape = x.shape();
  out_shape.erase(out_shape.begin() + a);
  return detail::narrow_var("select", x, a, i < 0 ? i + n : i, 1, out_shape);
}

}  // namespace eigenformer
