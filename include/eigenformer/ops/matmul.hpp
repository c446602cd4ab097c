// Matrix product of 2-D and batched operands with optional transposes folded into the GEMM (torch.matmul on
// (..., M, K) x (..., K, N) with equal batch dimensions, or a batched a times a shared 2-D b).
#pragma once

#include <algorithm>
#include <string>
#include <type_traits>
#include <utility>

#include "eigenformer/autograd/var.hpp"
#include "eigenformer/ops/gemm.hpp"

namespace eigenformer {
namespace detail {

/// dst = op(x) op(y), or += when accumulate, for row-major matrices (Eigen maps) with contiguous rows; op
/// transposes its operand when the flag is set (folded into the packing: no operand is copied).
template <typename Dst, typename X, typename Y>
void matrix_product(Dst&& dst, const X& x, bool transpose_x, const Y& y, bool transpose_y, bool accumulate) {
  using T = typename std::decay_t<Dst>::Scalar;
  GemmProduct<T> p = GemmProduct<T>::sizes(dst.rows(), dst.cols(), transpose_x ? x.rows() : x.cols());
  p.a = x.data();
  p.lda = x.cols();
  p.transpose_a = transpose_x;
  p.b = y.data();
  p.ldb = y.cols();
  p.transpose_b = transpose_y;
  gemm(accumulate ? p.add_to(dst.data(), dst.cols()) : p.out(dst.data(), dst.cols()));
}

/// "a is (2, 3)", or "a is (3, 2) (transposed: (2, 3))" when the operand is used transposed.
inline std::string describe_operand(const char* name, const Shape& s, bool transposed) {
  std::string out = concat(name, " is ", to_string(s));
  if (transposed) {
    Shape t = s;
    std::swap(t[t.size() - 2], t[t.size() - 1]);
    out += concat(" (transposed: ", to_string(t), ")");
  }
  return out;
}

}  // namespace detail

/// op(a) op(b) where op transposes the last two axes when its flag is set: (M, K) x (K, N), batched
/// (..., M, K) x (..., K, N) with equal batch dimensions, or batched a x a shared 2-D b -> (..., M, N).
template <typename T>
Var<T> matmul(const Var<T>& a, const Var<T>& b, bool transpose_a = false, bool transpose_b = false) {
  const Shape& sa = a.shape();
  const Shape& sb = b.shape();
  if (sa.size() < 2 || sb.size() < 2)
    throw ShapeError(detail::concat("matmul: a is ", to_string(sa), ", b is ", to_string(sb),
                                    ", expected both of rank >= 2"));
  const bool shared_b = sb.size() == 2;  // one weight matrix for every batch entry of a
  if (!shared_b && (sa.size() != sb.size() || !std::equal(sa.begin(), sa.end() - 2, sb.begin())))
    throw ShapeError(detail::concat("matmul: batch dimensions differ: a is ", to_string(sa), ", b is ",
                                    to_string(sb), ", expected equal batch dimensions or a 2-D b"));
  const std::size_t ra = sa.size(), rb = sb.size();
  const Index m = transpose_a ? sa[ra - 1] : sa[ra - 2];
  const Index ka = transpose_a ? sa[ra - 2] : sa[ra - 1];
  const Index kb = transpose_b ? sb[rb - 1] : sb[rb - 2];
  const Index n = transpose_b ? sb[rb - 2] : sb[rb - 1];
  if (ka != kb)
    throw ShapeError(detail::concat("matmul: inner dimensions differ: ",
                                    detail::describe_operand("a", sa, transpose_a), ", ",
                                    detail::describe_operand("b", sb, transpose_b)));

  Shape out_shape(sa.begin(), sa.end() - 2);
  out_shape.push_back(m);
  out_shape.push_back(n);
  const Index batch = numel(Shape(sa.begin(), sa.end() - 2));
  const Tensor<T>& av = a.value();
  const Tensor<T>& bv = b.value();
  Tensor<T> y = Tensor<T>::empty(out_shape);  // (..., M, N)
  // A zero-sized operand makes every product empty or a sum over an empty inner dimension: zeros.
  const bool degenerate = y.numel() == 0 || av.numel() == 0 || bv.numel() == 0;
  if (degenerate) {
    y.set_zero();
  } else if (shared_b && !transpose_a) {
    // (batch*M, K) x op(B): one GEMM over every batch entry.
    detail::matrix_product(y.matrix(), av.matrix(), false, bv.matrix(), transpose_b, false);
  } else {
    for (Index i = 0; i < batch; ++i)
      detail::matrix_product(y.matrix(i), av.matrix(i), transpose_a, bv.matrix(shared_b ? 0 : i), transpose_b, false);
  }

  Var<T> out(std::move(y), {a, b}, "matmul");
  out.on_backward([a, b, transpose_a, transpose_b, shared_b, batch, degenerate](const Tensor<T>& dy) {
    // Y = op(A) op(B):  d op(A) = dY op(B)^T,  d op(B) = op(A)^T dY; a transposed operand takes the transpose
    // of that, written as the transposed product so nothing is copied.
    const Tensor<T>& av = a.value();
    const Tensor<T>& bv = b.value();
    if (degenerate) {
      if (a.requires_grad()) a.accumulate_grad(Tensor<T>::zeros(av.shape()));
      if (b.requires_grad()) b.accumulate_grad(Tensor<T>::zeros(bv.shape()));
      return;
    }
    if (a.requires_grad()) {
      Tensor<T> da = Tensor<T>::empty(av.shape());
      if (shared_b && !transpose_a) {
        detail::matrix_product(da.matrix(), dy.matrix(), false, bv.matrix(), !transpose_b, false);
      } else {
        for (Index i = 0; i < batch; ++i) {
          const Index ib = shared_b ? 0 : i;
          if (!transpose_a)
            detail::matrix_product(da.matrix(i), dy.matrix(i), false, bv.matrix(ib), !transpose_b, false);
          else  // dA = op(B) dY^T
            detail::matrix_product(da.matrix(i), bv.matrix(ib), transpose_b, dy.matrix(i), true, false);
        }
      }
      a.accumulate_grad(std::move(da));
    }
    if (b.requires_grad()) {
      Tensor<T> db = Tensor<T>::empty(bv.shape());
      if (shared_b && !transpose_a) {
        // The (batch*M, K) and (batch*M, N) views sum the batch inside one GEMM.
        if (!transpose_b)
          detail::matrix_product(db.matrix(), av.matrix(), true, dy.matrix(), false, false);
        else
          detail::matrix_product(db.matrix(), dy.matrix(), true, av.matrix(), false, false);
      } else {
        if (shared_b) db.set_zero();
        for (Index i = 0; i < batch; ++i) {
          const Index ib = shared_b ? 0 : i;
          if (!transpose_b)  // dB = op(A)^T dY
            detail::matrix_product(db.matrix(ib), av.matrix(i), !transpose_a, dy.matrix(i), false, shared_b);
          else  // dB = dY^T op(A)
            detail::matrix_product(db.matrix(ib), dy.matrix(i), true, av.matrix(i), transpose_a, shared_b);
        }
      }
      b.accumulate_grad(std::move(db));
    }
  });
  return out;
}

}  // namespace eigenformer
