// Fused scaled dot-product attention, softmax(Q K^T * scale + mask) V with optional dropout on the
// probabilities (Vaswani et al. 2017; torch.nn.functional.scaled_dot_product_attention with boolean masks where
// true means "ignore", as in torch.nn.MultiheadAttention), plus the head split and merge of multi-head attention.
#pragma once

#include <cmath>
#include <limits>
#include <vector>

#include "eigenformer/autograd/var.hpp"
#include "eigenformer/core/parallel.hpp"

namespace eigenformer {

/// Which (query, key) pairs attention may not use. Every member is optional (undefined = absent).
template <typename T>
struct AttentionMask {
  Tensor<bool> key_padding;  // (B, S): true = this key is padding, ignored by every query
  Tensor<bool> attn_mask;    // (T, S): true = query t may not attend key s
  Tensor<T> attn_bias;       // (T, S): added to the scores (-inf forbids a pair)
  bool causal = false;       // query t may attend keys s <= t only
};

/// Attention options: dropout on the probabilities (training only), a custom scale, probabilities out.
template <typename T>
struct AttentionOptions {
  T dropout = T(0);               // probability of zeroing an attention weight (inverted scaling)
  Generator* gen = nullptr;       // required when dropout > 0
  T scale = T(0);                 // 0 means 1 / sqrt(head size)
  Tensor<T>* probs_out = nullptr; // receives the probabilities (..., T, S) before dropout
};

namespace detail {

/// Checks one mask's shape against what attention expects; throws ShapeError naming the argument.
inline void check_mask_shape(const char* arg, const Shape& got, const Shape& want) {
  if (got != want)
    throw ShapeError(concat("scaled_dot_product_attention: ", arg, " is ", to_string(got), ", expected ",
                            to_string(want)));
}

}  // namespace detail

/// softmax(q k^T * scale + mask) v for q (..., T, D), k (..., S, D), v (..., S, Dv) -> (..., T, Dv), where ... is
/// (B) or (B, H). A query whose keys are all masked gets zeros (value and gradient), not NaN.
template <typename T>
Var<T> scaled_dot_product_attention(const Var<T>& q, const Var<T>& k, const Var<T>& v,
                                    const AttentionMask<T>& mask = {}, const AttentionOptions<T>& opt = {}) {
  const char* fn = "scaled_dot_product_attention";
  const Index rank = q.dim();
  if (rank < 3 || rank > 4 || k.dim() != rank || v.dim() != rank)
    throw ShapeError(detail::concat(fn, ": q, k, v must all be (B, T, D) or (B, H, T, D); got q ", to_string(q.shape()),
                                    ", k ", to_string(k.shape()), ", v ", to_string(v.shape())));
  const Shape& qs = q.shape();
  const Shape& ks = k.shape();
  const Shape& vs = v.shape();
  for (Index i = 0; i + 2 < rank; ++i)
    if (ks[i] != qs[i] || vs[i] != qs[i])
      throw ShapeError(detail::concat(fn, ": batch dimensions differ: q is ", to_string(qs), ", k is ",
                                      to_string(ks), ", v is ", to_string(vs)));
  const Index B = qs[0], H = rank == 4 ? qs[1] : 1, Tq = qs[rank - 2], D = qs[rank - 1];
  const Index S = ks[rank - 2], Dv = vs[rank - 1];
  if (ks[rank - 1] != D)
    throw ShapeError(detail::concat(fn, ": q and k head sizes differ: q is ", to_string(qs), ", k is ", to_string(ks)));
  if (vs[rank - 2] != S)
    throw ShapeError(detail::concat(fn, ": k and v sequence lengths differ: k is ", to_string(ks), ", v is ",
                                    to_string(vs)));
  if (mask.key_padding.defined()) detail::check_mask_shape("key_padding mask", mask.key_padding.shape(), {B, S});
  if (mask.attn_mask.defined()) detail::check_mask_shape("attn_mask", mask.attn_mask.shape(), {Tq, S});
  if (mask.attn_bias.defined()) detail::check_mask_shape("attn_bias", mask.attn_bias.shape(), {Tq, S});
  if (!(opt.dropout >= 0 && opt.dropout <= 1))
    throw ValueError(detail::concat(fn, ": dropout is ", opt.dropout, ", expected 0 <= dropout <= 1"));
  const bool drop = opt.dropout > 0;
  if (drop && !opt.gen) throw ValueError(detail::concat(fn, ": dropout is ", opt.dropout, " but no generator was given"));
  const T scale = opt.scale != T(0) ? opt.scale : T(1) / std::sqrt(static_cast<T>(D));
  const Index BH = B * H;

  using Mat = typename Tensor<T>::Matrix;
  using RowMajorMap = Eigen::Map<Mat>;
  using ConstRowMajorMap = Eigen::Map<const Mat>;

  // probs: (..., T, S) softmax probabilities, cached for backward. keep: the dropout factors (0 or 1 / (1 - p)),
  // only when dropout is on; the weights applied to v are probs * keep.
  Shape ps = qs;
  ps[rank - 1] = S;
  Tensor<T> probs = Tensor<T>::empty(ps);
  Tensor<T> keep;
  if (drop) {
    keep = Tensor<T>::empty(ps);
    // Draw the dropout mask serially (one generator) before the parallel part: reproducible for any thread count.
    const T keep_scale = opt.dropout >= 1 ? T(0) : T(1) / (T(1) - opt.dropout);
    for (Index i = 0; i < keep.numel(); ++i) {
      const double u = static_cast<double>((*opt.gen)() >> 11) * 0x1.0p-53;
      keep[i] = u < static_cast<double>(opt.dropout) ? T(0) : keep_scale;
    }
  }
  Shape os = qs;
  os[rank - 1] = Dv;
  Tensor<T> out = Tensor<T>::empty(os);

  const T neg_inf = -std::numeric_limits<T>::infinity();
  const Tensor<T> qv = q.value(), kv = k.value(), vv = v.value();
  detail::parallel_for(BH, 2.0 * static_cast<double>(Tq * S * (D + Dv)), [&](Index bh) {
    const Index b = bh / H;
    ConstRowMajorMap Q(qv.data() + bh * Tq * D, Tq, D);
    ConstRowMajorMap K(kv.data() + bh * S * D, S, D);
    ConstRowMajorMap V(vv.data() + bh * S * Dv, S, Dv);
    RowMajorMap P(probs.data() + bh * Tq * S, Tq, S);
    P.noalias() = (Q * K.transpose()) * scale;
    for (Index t = 0; t < Tq; ++t) {
      T* row = P.data() + t * S;
      if (mask.attn_bias.defined())
        for (Index s = 0; s < S; ++s) row[s] += mask.attn_bias.data()[t * S + s];
      if (mask.attn_mask.defined())
        for (Index s = 0; s < S; ++s)
          if (mask.attn_mask.data()[t * S + s]) row[s] = neg_inf;
      if (mask.key_padding.defined())
        for (Index s = 0; s < S; ++s)
          if (mask.key_padding.data()[b * S + s]) row[s] = neg_inf;
      if (mask.causal)
        for (Index s = t + 1; s < S; ++s) row[s] = neg_inf;
      // Stable softmax: subtract the row max; a row with every key masked becomes zeros instead of NaN.
      T mx = neg_inf;
      for (Index s = 0; s < S; ++s) mx = row[s] > mx ? row[s] : mx;
      if (mx == neg_inf) {
        for (Index s = 0; s < S; ++s) row[s] = T(0);
        continue;
      }
      T sum = 0;
      for (Index s = 0; s < S; ++s) {
        row[s] = std::exp(row[s] - mx);
        sum += row[s];
      }
      const T inv = T(1) / sum;
      for (Index s = 0; s < S; ++s) row[s] *= inv;
    }
    RowMajorMap O(out.data() + bh * Tq * Dv, Tq, Dv);
    if (drop) {
      const Mat W = P.cwiseProduct(ConstRowMajorMap(keep.data() + bh * Tq * S, Tq, S));
      O.noalias() = W * V;
    } else {
      O.noalias() = P * V;
    }
  });
  if (opt.probs_out) *opt.probs_out = probs;

  Var<T> y(out, {q, k, v}, "scaled_dot_product_attention");
  y.on_backward([q, k, v, probs, keep, scale, BH, Tq, S, D, Dv](const Tensor<T>& dy) {
    const bool dropped = keep.defined();
    Tensor<T> dq = q.requires_grad() ? Tensor<T>::empty(q.shape()) : Tensor<T>();
    Tensor<T> dk = k.requires_grad() ? Tensor<T>::empty(k.shape()) : Tensor<T>();
    Tensor<T> dv = v.requires_grad() ? Tensor<T>::empty(v.shape()) : Tensor<T>();
    const Tensor<T> qv = q.value(), kv = k.value(), vv = v.value();
    detail::parallel_for(BH, 4.0 * static_cast<double>(Tq * S * (D + Dv)), [&](Index bh) {
      ConstRowMajorMap Q(qv.data() + bh * Tq * D, Tq, D);
      ConstRowMajorMap K(kv.data() + bh * S * D, S, D);
      ConstRowMajorMap V(vv.data() + bh * S * Dv, S, Dv);
      ConstRowMajorMap P(probs.data() + bh * Tq * S, Tq, S);
      ConstRowMajorMap dO(dy.data() + bh * Tq * Dv, Tq, Dv);
      // With W = P * keep the weights applied to V: dV = W^T dO, dW = dO V^T, dP = dW * keep, then the
      // softmax backward dS = P * (dP - rowsum(dP * P)), scaled into the scores.
      if (dv.defined()) {
        RowMajorMap dV(dv.data() + bh * S * Dv, S, Dv);
        if (dropped)
          dV.noalias() = P.cwiseProduct(ConstRowMajorMap(keep.data() + bh * Tq * S, Tq, S)).transpose() * dO;
        else
          dV.noalias() = P.transpose() * dO;
      }
      if (!dq.defined() && !dk.defined()) return;
      Mat dS = dO * V.transpose();
      if (dropped) dS.array() *= ConstRowMajorMap(keep.data() + bh * Tq * S, Tq, S).array();
      for (Index t = 0; t < Tq; ++t) {
        T dot = 0;
        for (Index s = 0; s < S; ++s) dot += dS(t, s) * P(t, s);
        for (Index s = 0; s < S; ++s) dS(t, s) = P(t, s) * (dS(t, s) - dot) * scale;
      }
      if (dq.defined()) RowMajorMap(dq.data() + bh * Tq * D, Tq, D).noalias() = dS * K;
      if (dk.defined()) RowMajorMap(dk.data() + bh * S * D, S, D).noalias() = dS.transpose() * Q;
    });
    if (dq.defined()) q.accumulate_grad(std::move(dq));
    if (dk.defined()) k.accumulate_grad(std::move(dk));
    if (dv.defined()) v.accumulate_grad(std::move(dv));
  });
  return y;
}

/// Splits packed projections (B, T, 3 * H * D) into q, k, v of shape (B, H, T, D) each (one pass, no
/// intermediate permute), as torch.nn.MultiheadAttention does with its packed in_proj.
template <typename T>
std::vector<Var<T>> split_qkv_heads(const Var<T>& qkv, Index num_heads) {
  const char* fn = "split_qkv_heads";
  if (qkv.dim() != 3 || num_heads <= 0 || qkv.size(2) % (3 * num_heads) != 0)
    throw ShapeError(detail::concat(fn, ": qkv is ", to_string(qkv.shape()), ", expected (B, T, 3 * C) with C divisible by ",
                                    "num_heads = ", num_heads));
  const Index B = qkv.size(0), Tn = qkv.size(1), C = qkv.size(2) / 3, H = num_heads, D = C / H;
  std::vector<Tensor<T>> parts(3);
  for (auto& p : parts) p = Tensor<T>::empty({B, H, Tn, D});
  const T* src = qkv.value().data();
  for (Index b = 0; b < B; ++b)
    for (Index t = 0; t < Tn; ++t)
      for (Index j = 0; j < 3; ++j)
        for (Index h = 0; h < H; ++h)
          std::copy_n(src + ((b * Tn + t) * 3 + j) * C + h * D, D, parts[j].data() + ((b * H + h) * Tn + t) * D);
  std::vector<Var<T>> out;
  for (Index j = 0; j < 3; ++j) {
    Var<T> y(parts[j], {qkv}, fn);
    y.on_backward([qkv, j, B, Tn, C, H, D](const Tensor<T>& dy) {
      Tensor<T> g = Tensor<T>::zeros(qkv.shape());
      for (Index b = 0; b < B; ++b)
        for (Index t = 0; t < Tn; ++t)
          for (Index h = 0; h < H; ++h)
            std::copy_n(dy.data() + ((b * H + h) * Tn + t) * D, D, g.data() + ((b * Tn + t) * 3 + j) * C + h * D);
      qkv.accumulate_grad(std::move(g));
    });
    out.push_back(y);
  }
  return out;
}

/// (B, T, H * D) -> (B, H, T, D): the head split of one projection.
template <typename T>
Var<T> split_heads(const Var<T>& x, Index num_heads) {
  if (x.dim() != 3 || num_heads <= 0 || x.size(2) % num_heads != 0)
    throw ShapeError(detail::concat("split_heads: x is ", to_string(x.shape()),
                                    ", expected (B, T, C) with C divisible by num_heads = ", num_heads));
  const Index B = x.size(0), Tn = x.size(1), H = num_heads, D = x.size(2) / H;
  Tensor<T> y = Tensor<T>::empty({B, H, Tn, D});
  const T* src = x.value().data();
  for (Index b = 0; b < B; ++b)
    for (Index t = 0; t < Tn; ++t)
      for (Index h = 0; h < H; ++h) std::copy_n(src + (b * Tn + t) * H * D + h * D, D, y.data() + ((b * H + h) * Tn + t) * D);
  Var<T> out(y, {x}, "split_heads");
  out.on_backward([x, B, Tn, H, D](const Tensor<T>& dy) {
    Tensor<T> g = Tensor<T>::empty(x.shape());
    for (Index b = 0; b < B; ++b)
      for (Index t = 0; t < Tn; ++t)
        for (Index h = 0; h < H; ++h)
          std::copy_n(dy.data() + ((b * H + h) * Tn + t) * D, D, g.data() + (b * Tn + t) * H * D + h * D);
    x.accumulate_grad(std::move(g));
  });
  return out;
}

/// (B, H, T, D) -> (B, T, H * D): the inverse of split_heads.
template <typename T>
Var<T> merge_heads(const Var<T>& x) {
  if (x.dim() != 4) throw ShapeError(detail::concat("merge_heads: x is ", to_string(x.shape()), ", expected (B, H, T, D)"));
  const Index B = x.size(0), H = x.size(1), Tn = x.size(2), D = x.size(3);
  Tensor<T> y = Tensor<T>::empty({B, Tn, H * D});
  const T* src = x.value().data();
  for (Index b = 0; b < B; ++b)
    for (Index h = 0; h < H; ++h)
      for (Index t = 0; t < Tn; ++t) std::copy_n(src + ((b * H + h) * Tn + t) * D, D, y.data() + (b * Tn + t) * H * D + h * D);
  Var<T> out(y, {x}, "merge_heads");
  out.on_backward([x, B, Tn, H, D](const Tensor<T>& dy) {
    Tensor<T> g = Tensor<T>::empty(x.shape());
    for (Index b = 0; b < B; ++b)
      for (Index h = 0; h < H; ++h)
        for (Index t = 0; t < Tn; ++t)
          std::copy_n(dy.data() + (b * Tn + t) * H * D + h * D, D, g.data() + ((b * H + h) * Tn + t) * D);
    x.accumulate_grad(std::move(g));
  });
  return out;
}

}  // namespace eigenformer
