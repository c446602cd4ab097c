// Tensor<T>: one contiguous row-major buffer plus a shape (rank 0 and up), with Eigen views for kernels.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <iomanip>
#include <limits>
#include <ostream>
#include <random>
#include <sstream>
#include <type_traits>
#include <utility>
#include <vector>

#include "eigenformer/core/config.hpp"
#include "eigenformer/core/error.hpp"
#include "eigenformer/core/shape.hpp"
#include "eigenformer/tensor/storage.hpp"

namespace eigenformer {

/// The random engine every seeded factory takes (explicit and seedable: never a hidden global state).
using Generator = std::mt19937_64;

/// A dense tensor: a shared row-major buffer and a shape.
///
/// Copies are shallow (they share the buffer, like torch.Tensor); clone() makes a deep copy. reshape() returns a
/// view of the same buffer. Element types: float and double for values; std::int64_t for token ids and targets;
/// bool for masks.
template <typename T>
class Tensor {
 public:
  using Scalar = T;
  using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using MatrixMap = Eigen::Map<Matrix>;
  using ConstMatrixMap = Eigen::Map<const Matrix>;
  using Array = Eigen::Array<T, Eigen::Dynamic, 1>;
  using ArrayMap = Eigen::Map<Array>;
  using ConstArrayMap = Eigen::Map<const Array>;

  /// An undefined tensor (no buffer); defined() is false.
  Tensor() = default;

  /// A zero-filled tensor of the given shape.
  explicit Tensor(const Shape& shape) : Tensor(allocate("Tensor", shape)) { fill(T(0)); }

  /// Uninitialized storage of the given shape: for kernels that write every element.
  static Tensor empty(const Shape& shape) { return allocate("Tensor::empty", shape); }
  static Tensor zeros(const Shape& shape) { return filled("Tensor::zeros", shape, T(0)); }
  static Tensor ones(const Shape& shape) { return filled("Tensor::ones", shape, T(1)); }
  static Tensor full(const Shape& shape, T value) { return filled("Tensor::full", shape, value); }
  /// A rank-0 tensor holding one value.
  static Tensor scalar(T value) { return full(Shape{}, value); }

  /// A tensor of the given shape from values in row-major order; throws ShapeError if the counts differ.
  static Tensor from(const std::vector<T>& values, const Shape& shape) {
    Tensor t = allocate("Tensor::from", shape);
    if (static_cast<Index>(values.size()) != t.numel_)
      throw ShapeError(detail::concat("Tensor::from: got ", values.size(), " values for shape ", to_string(shape),
                                      ", expected ", t.numel_));
    std::copy(values.begin(), values.end(), t.data());
    return t;
  }
  static Tensor from(std::initializer_list<T> values, const Shape& shape) {
    return from(std::vector<T>(values), shape);
  }
  /// A rank-1 tensor holding the values.
  static Tensor from(const std::vector<T>& values) { return from(values, Shape{static_cast<Index>(values.size())}); }

  /// Values drawn uniformly from [low, high) with the given engine (the same stream on every platform); low ==
  /// high gives low.
  static Tensor uniform(const Shape& shape, T low, T high, Generator& gen) {
    static_assert(std::is_floating_point_v<T>, "Tensor::uniform needs a floating-point tensor");
    if (!(low <= high))
      throw ValueError(detail::concat("Tensor::uniform: low is ", low, ", high is ", high, ", expected low <= high"));
    if (!std::isfinite(high - low))  // also catches an infinite bound
      throw ValueError(detail::concat("Tensor::uniform: low is ", low, ", high is ", high,
                                      ", expected finite bounds whose difference is finite"));
    Tensor t = allocate("Tensor::uniform", shape);
    // Rounding can carry low + (high - low) * u up to high (u < 1 is rounded to T first): the largest value below
    // high keeps the interval half-open.
    const T below_high = low < high ? std::nextafter(high, low) : low;
    for (Index i = 0; i < t.numel_; ++i)
      t.data()[i] = std::min(below_high, low + (high - low) * static_cast<T>(unit_uniform(gen)));
    return t;
  }
  /// Values drawn from N(mean, stddev^2) with the given engine (Box-Muller; the same stream on every platform).
  static Tensor normal(const Shape& shape, T mean, T stddev, Generator& gen) {
    static_assert(std::is_floating_point_v<T>, "Tensor::normal needs a floating-point tensor");
    if (!(stddev >= 0) || !std::isfinite(stddev))
      throw ValueError(detail::concat("Tensor::normal: stddev is ", stddev, ", expected a finite stddev >= 0"));
    if (!std::isfinite(mean))
      throw ValueError(detail::concat("Tensor::normal: mean is ", mean, ", expected a finite mean"));
    Tensor t = allocate("Tensor::normal", shape);
    constexpr double two_pi = 6.283185307179586476925286766559;
    for (Index i = 0; i < t.numel_; i += 2) {
      const double u1 = 1.0 - unit_uniform(gen);  // (0, 1]: log(u1) is finite
      const double u2 = unit_uniform(gen);
      const double r = std::sqrt(-2.0 * std::log(u1));
      t.data()[i] = mean + stddev * static_cast<T>(r * std::cos(two_pi * u2));
      if (i + 1 < t.numel_) t.data()[i + 1] = mean + stddev * static_cast<T>(r * std::sin(two_pi * u2));
    }
    return t;
  }

  bool defined() const { return data_ != nullptr; }
  const Shape& shape() const {
    if (shape_.empty() && numel_ == 0) {  // the default tensor (see shape_)
      static const Shape empty_1d{0};
      return empty_1d;
    }
    return shape_;
  }
  /// Rank (number of dimensions).
  Index dim() const { return static_cast<Index>(shape().size()); }
  /// Size of one axis; negative axes count from the end.
  Index size(Index axis) const { return shape()[detail::normalize_axis("Tensor::size", axis, dim())]; }
  Index numel() const { return numel_; }
  T* data() { return data_.get(); }
  const T* data() const { return data_.get(); }

  /// Unchecked element access by one index per axis (asserted in debug builds).
  template <typename... Is>
  T& operator()(Is... idx) {
    return data()[offset_unchecked({static_cast<Index>(idx)...})];
  }
  template <typename... Is>
  const T& operator()(Is... idx) const {
    return data()[offset_unchecked({static_cast<Index>(idx)...})];
  }
  /// Checked element access: throws ValueError naming the index and the shape.
  T& at(const std::vector<Index>& idx) { return data()[offset_checked(idx)]; }
  const T& at(const std::vector<Index>& idx) const { return data()[offset_checked(idx)]; }
  /// Flat (row-major) element access.
  T& operator[](Index i) { return data()[i]; }
  const T& operator[](Index i) const { return data()[i]; }

  /// The value of a one-element tensor; throws ShapeError otherwise.
  T item() const {
    if (numel_ != 1)
      throw ShapeError(detail::concat("Tensor::item: tensor is ", to_string(shape()), ", expected one element"));
    return data()[0];
  }

  /// A view with another shape over the same buffer; one dimension may be -1 (inferred).
  Tensor reshape(Shape shape) const {
    Index known = 1, infer = -1;
    for (std::size_t i = 0; i < shape.size(); ++i) {
      if (shape[i] == -1 && infer < 0) {
        infer = static_cast<Index>(i);
      } else if (shape[i] < 0) {
        throw ShapeError(detail::concat("reshape: cannot reshape ", to_string(this->shape()), " to ", to_string(shape)));
      } else {
        known *= shape[i];
      }
    }
    if (infer >= 0 && known > 0 && numel_ % known == 0) shape[infer] = numel_ / known;
    if (infer >= 0 && shape[infer] == -1)
      throw ShapeError(detail::concat("reshape: cannot reshape ", to_string(this->shape()), " to ", to_string(shape)));
    if (eigenformer::numel(shape) != numel_)
      throw ShapeError(detail::concat("reshape: cannot reshape ", to_string(this->shape()), " (", numel_,
                                      " elements) to ", to_string(shape), " (", eigenformer::numel(shape),
                                      " elements)"));
    Tensor t = *this;
    t.shape_ = std::move(shape);
    return t;
  }

  /// A deep copy with its own buffer.
  Tensor clone() const {
    if (!defined()) return Tensor();
    Tensor t = empty(shape());
    std::copy(data(), data() + numel_, t.data());
    return t;
  }
  /// A copy with another element type.
  template <typename U>
  Tensor<U> cast() const {
    if (!defined()) return Tensor<U>();
    Tensor<U> t = Tensor<U>::empty(shape());
    for (Index i = 0; i < numel_; ++i) t.data()[i] = static_cast<U>(data()[i]);
    return t;
  }
  /// True when no other tensor shares this buffer (so a kernel may reuse it in place).
  bool is_unique() const { return data_.use_count() == 1; }
  bool shares_buffer_with(const Tensor& other) const { return data_ == other.data_; }

  /// The whole buffer as a (product of the leading dims, last) row-major matrix; a rank-0 or rank-1 tensor is one
  /// row.
  MatrixMap matrix() { return MatrixMap(data(), rows(), cols()); }
  ConstMatrixMap matrix() const { return ConstMatrixMap(data(), rows(), cols()); }
  /// Matrix b of the last two dimensions, leading dimensions flattened into b (rank >= 2; unchecked like
  /// operator(), asserted in debug builds).
  MatrixMap matrix(Index b) {
    EIGENFORMER_ASSERT(dim() >= 2);
    const Index r = shape()[dim() - 2], c = shape()[dim() - 1];
    EIGENFORMER_ASSERT(b >= 0 && (b + 1) * r * c <= numel_);
    return MatrixMap(data() + b * r * c, r, c);
  }
  ConstMatrixMap matrix(Index b) const {
    EIGENFORMER_ASSERT(dim() >= 2);
    const Index r = shape()[dim() - 2], c = shape()[dim() - 1];
    EIGENFORMER_ASSERT(b >= 0 && (b + 1) * r * c <= numel_);
    return ConstMatrixMap(data() + b * r * c, r, c);
  }
  /// The buffer as a flat Eigen array for coefficient-wise kernels.
  ArrayMap array() { return ArrayMap(data(), numel_); }
  ConstArrayMap array() const { return ConstArrayMap(data(), numel_); }

  Tensor& fill(T value) {
    std::fill(data(), data() + numel_, value);
    return *this;
  }
  Tensor& set_zero() { return fill(T(0)); }

  /// In-place accumulation; shapes must match exactly (broadcasting lives in the ops).
  Tensor& operator+=(const Tensor& o) {
    check_same("Tensor::operator+=", o);
    array() += o.array();
    return *this;
  }
  Tensor& operator-=(const Tensor& o) {
    check_same("Tensor::operator-=", o);
    array() -= o.array();
    return *this;
  }
  Tensor& operator*=(T s) {
    array() *= s;
    return *this;
  }

  /// True when shapes match and every element is equal.
  bool equal(const Tensor& o) const {
    return shape() == o.shape() && std::equal(data(), data() + numel_, o.data());
  }
  /// True when shapes match and, elementwise, a == b or |a - b| <= atol + rtol * |b| with |a - b| finite
  /// (torch.allclose: equal infinities match, opposite infinities and NaNs never do).
  bool allclose(const Tensor& o, double rtol = 1e-5, double atol = 1e-8) const {
    if (shape() != o.shape()) return false;
    for (Index i = 0; i < numel_; ++i) {
      const double a = static_cast<double>(data()[i]), b = static_cast<double>(o.data()[i]);
      const double err = std::abs(a - b);
      if (!(a == b || (std::isfinite(err) && err <= atol + rtol * std::abs(b)))) return false;
    }
    return true;
  }

 private:
  Index cols() const { return shape().empty() ? 1 : shape().back(); }
  /// Product of the leading dimensions (not numel / cols, which loses them when the last dimension is 0).
  Index rows() const {
    Index r = 1;
    for (std::size_t i = 0; i + 1 < shape().size(); ++i) r *= shape()[i];
    return r;
  }

  static Tensor allocate(const char* fn, const Shape& shape) {
    detail::check_valid_shape(fn, shape);
    Tensor t;
    t.shape_ = shape;
    t.numel_ = eigenformer::numel(shape);
    t.data_ = detail::allocate_buffer<T>(t.numel_);
    return t;
  }
  static Tensor filled(const char* fn, const Shape& shape, T value) {
    Tensor t = allocate(fn, shape);
    t.fill(value);
    return t;
  }

  void check_same(const char* fn, const Tensor& o) const {
    if (shape() != o.shape())
      throw ShapeError(
          detail::concat(fn, ": shapes differ: a is ", to_string(shape()), ", b is ", to_string(o.shape())));
  }
  Index offset_unchecked(std::initializer_list<Index> idx) const {
    EIGENFORMER_ASSERT(static_cast<Index>(idx.size()) == dim());
    Index off = 0, k = 0;
    for (Index i : idx) off = off * shape()[k++] + i;
    return off;
  }
  Index offset_checked(const std::vector<Index>& idx) const {
    if (static_cast<Index>(idx.size()) != dim())
      throw ValueError(detail::concat("Tensor::at: got ", idx.size(), " indices for a tensor of shape ",
                                      to_string(shape()), ", expected ", dim()));
    Index off = 0;
    for (std::size_t k = 0; k < idx.size(); ++k) {
      if (idx[k] < 0 || idx[k] >= shape()[k])
        throw ValueError(detail::concat("Tensor::at: index ", to_string(idx), " is out of range for shape ",
                                        to_string(shape())));
      off = off * shape()[k] + idx[k];
    }
    return off;
  }
  /// A double in [0, 1) from the top 53 bits of one draw: identical across standard libraries, unlike
  /// std::uniform_real_distribution.
  static double unit_uniform(Generator& gen) { return static_cast<double>(gen() >> 11) * 0x1.0p-53; }

  std::shared_ptr<T> data_;
  // A default tensor is 1-D with 0 elements. It stores an empty vector (a std::vector of one element would be a heap
  // allocation for every default-constructed tensor, e.g. each graph node's gradient) and shape() reports {0};
  // an empty shape_ with numel_ == 1 is a 0-D scalar. Read the shape through shape(), never shape_ directly.
  Shape shape_;
  Index numel_ = 0;
};

namespace detail {

template <typename T>
void print_value(std::ostream& os, T v) {
  if constexpr (std::is_same_v<T, bool>)
    os << (v ? "true" : "false");
  else if constexpr (std::is_floating_point_v<T>)
    os << v;
  else
    os << static_cast<long long>(v);
}

template <typename T>
void print_values(std::ostream& os, const Tensor<T>& t, Index axis, Index offset, Index indent) {
  constexpr Index kEdge = 3;  // long axes print their first and last three entries
  const Index n = t.shape()[axis];
  const Index stride = numel(Shape(t.shape().begin() + axis + 1, t.shape().end()));
  os << '[';
  for (Index i = 0; i < n; ++i) {
    if (n > 2 * kEdge + 1 && i == kEdge) {
      os << (axis + 1 == t.dim() ? "..., " : "...,\n" + std::string(static_cast<std::size_t>(indent + 1), ' '));
      i = n - kEdge;
    }
    if (axis + 1 == t.dim()) {
      print_value(os, t.data()[offset + i]);
    } else {
      print_values(os, t, axis + 1, offset + i * stride, indent + 1);
    }
    if (i + 1 < n) os << (axis + 1 == t.dim() ? ", " : ",\n" + std::string(static_cast<std::size_t>(indent + 1), ' '));
  }
  os << ']';
}

}  // namespace detail

/// Prints "Tensor(shape=(2, 2)) [[1, 2],\n [3, 4]]"; long axes are elided with "...".
template <typename T>
std::ostream& operator<<(std::ostream& os, const Tensor<T>& t) {
  if (!t.defined()) return os << "Tensor(undefined)";
  os << "Tensor(shape=" << to_string(t.shape()) << ") ";
  if (t.numel() == 0) return os << "[]";
  const std::streamsize prec = os.precision();
  os << std::setprecision(6);
  if (t.dim() == 0)
    detail::print_value(os, t.data()[0]);
  else
    detail::print_values(os, t, 0, 0, 0);
  os.precision(prec);
  return os;
}

}  // namespace eigenformer
