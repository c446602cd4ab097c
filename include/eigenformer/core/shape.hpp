// Shape type and helpers: element counts, printing, axis normalization and NumPy broadcasting rules.
#pragma once

#include <initializer_list>
#include <limits>
#include <string>
#include <vector>

#include "eigenformer/core/config.hpp"
#include "eigenformer/core/error.hpp"
#include "eigenformer/core/small_object_pool.hpp"

namespace eigenformer {

/// A tensor shape, outermost dimension first (row-major). A std::vector whose storage comes from the small-object
/// pool: every op makes and drops shapes, and a training step's steady state takes no memory from the system.
/// std::vector<Index> converts explicitly: Shape(v.begin(), v.end()).
using Shape = std::vector<Index, detail::PoolAllocator<Index>>;

/// Formats a shape (or any list of indices, e.g. a permutation) as "(2, 3)"; a scalar (rank 0) prints as "()".
template <typename Alloc>
std::string to_string(const std::vector<Index, Alloc>& s) {
  std::string out = "(";
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(s[i]);
  }
  return out + ")";
}
/// The same for a Shape or a braced list: to_string({2, 3}).
inline std::string to_string(const Shape& s) { return to_string<detail::PoolAllocator<Index>>(s); }

/// Number of elements of a shape (1 for a scalar).
inline Index numel(const Shape& s) {
  Index n = 1;
  for (Index d : s) n *= d;
  return n;
}

namespace detail {

/// Throws ValueError unless every dimension is non-negative and the element count fits in Index.
inline void check_valid_shape(const char* fn, const Shape& s) {
  bool empty = false;
  for (Index d : s) {
    if (d < 0) throw ValueError(concat(fn, ": shape ", to_string(s), " has a negative dimension"));
    empty = empty || d == 0;
  }
  if (empty) return;
  Index n = 1;
  for (Index d : s) {
    if (n > std::numeric_limits<Index>::max() / d)  // numel() would overflow (undefined behaviour)
      throw ValueError(concat(fn, ": shape ", to_string(s), " has too many elements (more than ",
                              std::numeric_limits<Index>::max(), ")"));
    n *= d;
  }
}

/// Maps a possibly negative axis into [0, rank); throws ValueError naming the function when out of range.
inline Index normalize_axis(const char* fn, Index axis, Index rank) {
  const Index a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank)
    throw ValueError(concat(fn, ": axis ", axis, " is out of range for a tensor of rank ", rank,
                            " (expected -", rank, " <= axis < ", rank, ")"));
  return a;
}

/// The broadcast shape of a and b under NumPy's rules; throws ShapeError naming fn and both shapes.
inline Shape broadcast_shapes(const char* fn, const Shape& a, const Shape& b) {
  const std::size_t r = a.size() > b.size() ? a.size() : b.size();
  Shape out(r);
  for (std::size_t i = 0; i < r; ++i) {
    const Index da = i < r - a.size() ? 1 : a[i - (r - a.size())];
    const Index db = i < r - b.size() ? 1 : b[i - (r - b.size())];
    if (da != db && da != 1 && db != 1)
      throw ShapeError(concat(fn, ": shapes cannot be broadcast together: a is ", to_string(a), ", b is ",
                              to_string(b)));
    out[i] = da == 1 ? db : da;
  }
  return out;
}

/// Row-major strides of a shape, in elements.
inline Shape strides_of(const Shape& s) {
  Shape st(s.size());
  Index acc = 1;
  for (std::size_t i = s.size(); i-- > 0;) {
    st[i] = acc;
    acc *= s[i];
  }
  return st;
}

}  // namespace detail
}  // namespace eigenformer
