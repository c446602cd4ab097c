// Fused scaled dot-product attention, softmax(Q K^T * scale + mask) V with optional dropout on the
// probabilities (Vaswani et al. 2017; torch.nn.functional.scaled_dot_product_attention with boolean masks where
// true means "ignore", as in torch.nn.MultiheadAttention), its multi-head form on packed (B, T, 3C) projections,
// the head split and merge of multi-head attention, and the forward-only attention of decoding steps over a
// key/value cache read in place.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>
#include <vector>

#include "eigenformer/autograd/var.hpp"
#include "eigenformer/core/address_lock.hpp"
#include "eigenformer/core/parallel.hpp"
#include "eigenformer/ops/dropout.hpp"
#include "eigenformer/ops/gemm.hpp"

namespace eigenformer {

/// Which (query, key) pairs attention may not use. Every member is optional (undefined = absent). The backward
/// reads the masks again (it recomputes the probabilities): do not change a mask's values in place between a
/// forward and its backward.
template <typename T>
struct AttentionMask {
  Tensor<bool> key_padding;  // (B, S): true = this key is padding, ignored by every query
  Tensor<bool> attn_mask;    // (T, S): true = query t may not attend key s
  Tensor<T> attn_bias;       // (T, S): added to the scores (-inf forbids a pair)
  bool causal = false;       // query t may attend keys s <= t + query_offset only (torch's is_causal when 0)
  Index query_offset = 0;    // the position of the first query among the keys: the length of a key/value cache
  Index key_padding_stride = 0;  // values between key_padding's rows when it is wider than S (a cache's); 0 = S
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

/// Checks one mask's shape against what attention expects; throws ShapeError naming the function and argument.
inline void check_mask_shape(const char* fn, const char* arg, const Shape& got, const Shape& want) {
  if (got != want) throw ShapeError(concat(fn, ": ", arg, " is ", to_string(got), ", expected ", to_string(want)));
}

/// One head's operands: row-major (rows, head size) blocks with row strides, so that heads can be read from and
/// written to packed (B, T, 3C) projections and (B, T, C) outputs in place.
template <typename T>
struct HeadOperands {
  const T* q;
  const T* k;
  const T* v;
  Index ldq, ldk, ldv;
};

/// Sizes and the score scale shared by every head of one attention call.
template <typename T>
struct AttentionProblem {
  Index B, H, Tq, S, D, Dv;
  T scale;
};

/// The probabilities of head bh (batch b = bh / H): probs (Tq, S) = softmax(Q K^T * scale + mask). The backward
/// calls it again instead of keeping (B, H, T, S) probabilities from the forward: same calls, same values.
template <typename T>
void attention_head_probs(const AttentionProblem<T>& pr, const AttentionMask<T>& mask, Index bh,
                          const HeadOperands<T>& h, T* probs) {
  using Row = Eigen::Map<Eigen::Array<T, 1, Eigen::Dynamic>>;
  const Index Tq = pr.Tq, S = pr.S, b = bh / pr.H;
  const T neg_inf = -std::numeric_limits<T>::infinity();
  gemm(GemmProduct<T>::sizes(Tq, S, pr.D).lhs(h.q, h.ldq).rhs_transposed(h.k, h.ldk).out(probs, S));  // Q K^T
  const bool masked = mask.attn_bias.defined() || mask.attn_mask.defined() || mask.key_padding.defined() || mask.causal;
  const bool scale_first = masked || !(pr.scale > T(0));
  for (Index t = 0; t < Tq; ++t) {
    Row row(probs + t * S, S);
    if (scale_first) {
      row *= pr.scale;
      if (mask.attn_bias.defined())
        row += Eigen::Map<const Eigen::Array<T, 1, Eigen::Dynamic>>(mask.attn_bias.data() + t * S, S);
      if (mask.attn_mask.defined())
        for (Index s = 0; s < S; ++s)
          if (mask.attn_mask.data()[t * S + s]) row[s] = neg_inf;
      if (mask.key_padding.defined()) {
        const bool* pad = mask.key_padding.data() + b * (mask.key_padding_stride > 0 ? mask.key_padding_stride : S);
        for (Index s = 0; s < S; ++s)
          if (pad[s]) row[s] = neg_inf;
      }
      if (mask.causal)  // query t is at position t + query_offset among the keys
        for (Index s = std::max<Index>(0, t + 1 + mask.query_offset); s < S; ++s) row[s] = neg_inf;
    }
    // Stable softmax: subtract the row max before exp; a row with every key masked becomes zeros instead of NaN.
    // Unmasked rows take the scale inside the exp (scale > 0 keeps the max where it was). Masked scores are set
    // to exactly 0 afterwards: the vectorized exp clamps its argument and would turn -inf into a denormal.
    const T mx = row.maxCoeff();
    if (mx == neg_inf) {
      row.setZero();
      continue;
    }
    if (masked)
      row = (row == neg_inf).select(T(0), (row - mx).exp());
    else if (scale_first)
      row = (row - mx).exp();
    else
      row = ((row - mx) * pr.scale).exp();
    row *= T(1) / row.sum();
  }
}

/// Forward of head bh: probs (Tq, S) as attention_head_probs, out (Tq, Dv, row stride ldo) = (probs * keep) V;
/// keep is null without dropout, scratch holds Tq * S values.
template <typename T>
void attention_head_forward(const AttentionProblem<T>& pr, const AttentionMask<T>& mask, Index bh,
                            const HeadOperands<T>& h, T* probs, const T* keep, T* out, Index ldo, T* scratch) {
  const Index Tq = pr.Tq, S = pr.S;
  attention_head_probs(pr, mask, bh, h, probs);
  const T* weights = probs;
  if (keep) {  // dropout on the probabilities: the weights applied to V are probs * keep
    Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>(scratch, Tq * S) =
        Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>(probs, Tq * S) *
        Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>(keep, Tq * S);
    weights = scratch;
  }
  gemm(GemmProduct<T>::sizes(Tq, pr.Dv, S).lhs(weights, S).rhs(h.v, h.ldv).out(out, ldo));
}

/// Backward of head bh given dO (Tq, Dv, row stride lddo): dQ, dK, dV (each null when not wanted) with their row
/// strides. With W = P * keep the weights applied to V: dV = W^T dO, dW = dO V^T, dP = dW * keep, then the softmax
/// backward dS = P * (dP - rowsum(dP * P)), scaled into the scores: dQ = dS K, dK = dS^T Q.
template <typename T>
void attention_head_backward(const AttentionProblem<T>& pr, const HeadOperands<T>& h, const T* probs, const T* keep,
                             const T* dout, Index lddo, T* dq, Index lddq, T* dk, Index lddk, T* dv, Index lddv,
                             T* scratch) {
  using Array = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;
  using ConstArray = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;
  const Index Tq = pr.Tq, S = pr.S;
  if (dv) {
    const T* weights = probs;
    if (keep) {
      Array(scratch, Tq * S) = ConstArray(probs, Tq * S) * ConstArray(keep, Tq * S);
      weights = scratch;
    }
    gemm(GemmProduct<T>::sizes(S, pr.Dv, Tq).lhs_transposed(weights, S).rhs(dout, lddo).out(dv, lddv));
  }
  if (!dq && !dk) return;
  T* ds = scratch;  // (Tq, S)
  gemm(GemmProduct<T>::sizes(Tq, S, pr.Dv).lhs(dout, lddo).rhs_transposed(h.v, h.ldv).out(ds, S));
  if (keep) Array(ds, Tq * S) *= ConstArray(keep, Tq * S);
  for (Index t = 0; t < Tq; ++t) {
    Eigen::Map<Eigen::Array<T, 1, Eigen::Dynamic>> d(ds + t * S, S);
    const Eigen::Map<const Eigen::Array<T, 1, Eigen::Dynamic>> p(probs + t * S, S);
    const T dot = (d * p).sum();
    d = p * (d - dot) * pr.scale;
  }
  if (dq) gemm(GemmProduct<T>::sizes(Tq, pr.D, S).lhs(ds, S).rhs(h.k, h.ldk).out(dq, lddq));
  if (dk) gemm(GemmProduct<T>::sizes(S, pr.D, Tq).lhs_transposed(ds, S).rhs(h.q, h.ldq).out(dk, lddk));
}

/// Per-thread scratch of at least n values (grows, never shrinks).
template <typename T>
T* attention_scratch(Index n) {
  thread_local std::vector<T> buffer;
  if (static_cast<Index>(buffer.size()) < n) buffer.resize(static_cast<std::size_t>(n));
  return buffer.data();
}

/// The probabilities of head bh for the backward: the forward's when it kept them (probs defined: the caller asked
/// for them), else recomputed into `into` (Tq * S values).
template <typename T>
const T* attention_backward_probs(const Tensor<T>& probs, const AttentionProblem<T>& pr, const AttentionMask<T>& mask,
                                  Index bh, const HeadOperands<T>& h, T* into) {
  if (probs.defined()) return probs.data() + bh * pr.Tq * pr.S;
  attention_head_probs(pr, mask, bh, h, into);
  return into;
}

/// Checks the masks and options of an attention call; throws ShapeError or ValueError naming the function.
template <typename T>
void check_attention_mask_and_options(const char* fn, Index B, Index Tq, Index S, const AttentionMask<T>& mask,
                                      const AttentionOptions<T>& opt) {
  if (mask.key_padding.defined()) check_mask_shape(fn, "key_padding mask", mask.key_padding.shape(), {B, S});
  if (mask.attn_mask.defined()) check_mask_shape(fn, "attn_mask", mask.attn_mask.shape(), {Tq, S});
  if (mask.attn_bias.defined()) check_mask_shape(fn, "attn_bias", mask.attn_bias.shape(), {Tq, S});
  if (!(opt.dropout >= 0 && opt.dropout <= 1))
    throw ValueError(concat(fn, ": dropout is ", opt.dropout, ", expected 0 <= dropout <= 1"));
  if (opt.dropout > 0 && !opt.gen)
    throw ValueError(concat(fn, ": dropout is ", opt.dropout, " but no generator was given"));
}

/// The dropout factors (0 or 1 / (1 - p)) for probabilities of shape ps, undefined when dropout is off. Drawn per
/// example as ops/dropout.hpp draws them (one key from the generator per call, under its lock; streams keyed by the
/// trainer's example keys, else by batch row), with one stream per query row (head h, query t) so that a weight's
/// draw depends on its (example, h, t, s) alone: not on the thread count, the batch's other examples, its padded
/// lengths or the rank that runs it. ps is (T, S) or (B, ..., T, S).
template <typename T>
Tensor<T> attention_dropout_keep(const Shape& ps, const AttentionOptions<T>& opt) {
  if (!(opt.dropout > 0)) return Tensor<T>();
  Tensor<T> keep = Tensor<T>::empty(ps);
  const Index rank = static_cast<Index>(ps.size());
  const Index S = ps[rank - 1], Tq = ps[rank - 2], B = rank >= 3 ? ps[0] : 1;
  const Index H = B * Tq * S == 0 ? 0 : keep.numel() / (B * Tq * S);  // every axis between batch and queries
  if (opt.dropout >= T(1)) {
    keep.set_zero();
    return keep;
  }
  std::uint64_t call;
  {
    std::lock_guard<std::mutex> lock(address_lock(opt.gen));
    call = (*opt.gen)();
  }
  const ExecutionContext& context = execution_context();
  const bool keyed = context.example_keys && context.example_count == B;
  const T keep_scale = T(1) / (T(1) - opt.dropout);
  const double drop_below = static_cast<double>(opt.dropout);
  parallel_for(B * H, 6.0 * static_cast<double>(Tq * S), [&](Index bh) {
    const Index b = bh / H, h = bh % H;
    const std::uint64_t example = keyed_stream(call, keyed ? context.example_keys[b] : static_cast<std::int64_t>(b));
    for (Index t = 0; t < Tq; ++t) {
      const std::uint64_t stream = mix64(example + (static_cast<std::uint64_t>(h) << 32) + static_cast<std::uint64_t>(t));
      T* row = keep.data() + (bh * Tq + t) * S;
      for (Index s = 0; s < S; ++s) row[s] = keyed_uniform(stream, s) < drop_below ? T(0) : keep_scale;
    }
  });
  return keep;
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
  detail::check_attention_mask_and_options(fn, B, Tq, S, mask, opt);
  const T scale = opt.scale != T(0) ? opt.scale : T(1) / std::sqrt(static_cast<T>(D));
  const Index BH = B * H;

  // probs: (..., T, S) softmax probabilities, only when the caller asks for them (the backward recomputes them
  // head by head, which costs one Q K^T product per head and saves B H T S values per call). keep: the dropout
  // factors, only with dropout.
  Shape ps = qs;
  ps[rank - 1] = S;
  Tensor<T> probs = opt.probs_out ? Tensor<T>::empty(ps) : Tensor<T>();
  const Tensor<T> keep = detail::attention_dropout_keep(ps, opt);
  Shape os = qs;
  os[rank - 1] = Dv;
  Tensor<T> out = Tensor<T>::empty(os);

  const detail::AttentionProblem<T> pr{B, H, Tq, S, D, Dv, scale};
  const Tensor<T> qv = q.value(), kv = k.value(), vv = v.value();
  auto operands = [qv, kv, vv, Tq, S, D, Dv](Index bh) {
    return detail::HeadOperands<T>{qv.data() + bh * Tq * D, kv.data() + bh * S * D, vv.data() + bh * S * Dv, D, D, Dv};
  };
  detail::parallel_for(BH, 2.0 * static_cast<double>(Tq * S * (D + Dv)), [&](Index bh) {
    T* scratch = detail::attention_scratch<T>(2 * Tq * S);  // (Tq, S) work, then (Tq, S) probabilities
    detail::attention_head_forward(pr, mask, bh, operands(bh),
                                   probs.defined() ? probs.data() + bh * Tq * S : scratch + Tq * S,
                                   keep.defined() ? keep.data() + bh * Tq * S : nullptr, out.data() + bh * Tq * Dv,
                                   Dv, scratch);
  });
  if (opt.probs_out) *opt.probs_out = probs;

  Var<T> y(out, {q, k, v}, "scaled_dot_product_attention");
  y.on_backward([q, k, v, probs, keep, mask, pr, operands](const Tensor<T>& dy) {
    const Index Tq = pr.Tq, S = pr.S, D = pr.D, Dv = pr.Dv;
    Tensor<T> dq = q.requires_grad() ? Tensor<T>::empty(q.shape()) : Tensor<T>();
    Tensor<T> dk = k.requires_grad() ? Tensor<T>::empty(k.shape()) : Tensor<T>();
    Tensor<T> dv = v.requires_grad() ? Tensor<T>::empty(v.shape()) : Tensor<T>();
    detail::parallel_for(pr.B * pr.H, 5.0 * static_cast<double>(Tq * S * (D + Dv)), [&](Index bh) {
      T* scratch = detail::attention_scratch<T>(2 * Tq * S);
      const detail::HeadOperands<T> h = operands(bh);
      detail::attention_head_backward(pr, h, detail::attention_backward_probs(probs, pr, mask, bh, h, scratch + Tq * S),
                                      keep.defined() ? keep.data() + bh * Tq * S : nullptr, dy.data() + bh * Tq * Dv,
                                      Dv, dq.defined() ? dq.data() + bh * Tq * D : nullptr, D,
                                      dk.defined() ? dk.data() + bh * S * D : nullptr, D,
                                      dv.defined() ? dv.data() + bh * S * Dv : nullptr, Dv, scratch);
    });
    if (dq.defined()) q.accumulate_grad(std::move(dq));
    if (dk.defined()) k.accumulate_grad(std::move(dk));
    if (dv.defined()) v.accumulate_grad(std::move(dv));
  });
  return y;
}

namespace detail {

/// One of the three operands of multi-head attention inside a (B, L, ld) tensor: its heads are the columns
/// [offset, offset + H * D) of every row, D columns each.
template <typename T>
struct HeadsInput {
  Var<T> var;
  Index offset = 0;
};

/// Multi-head attention reading q (B, Tq, .), k and v (B, S, .) heads in place from their tensors and writing the
/// merged heads (B, Tq, H * D): no split, merge or gradient scatter copies. In the backward, inputs that are one
/// tensor at disjoint columns (packed projections) get one gradient tensor; others each get their own.
template <typename T>
Var<T> heads_attention(const char* fn, const HeadsInput<T>& q, const HeadsInput<T>& k, const HeadsInput<T>& v,
                       Index H, Index D, const AttentionMask<T>& mask, const AttentionOptions<T>& opt) {
  const Index B = q.var.size(0), Tq = q.var.size(1), S = k.var.size(1), C = H * D;
  const Index ldq = q.var.size(2), ldk = k.var.size(2), ldv = v.var.size(2);
  check_attention_mask_and_options(fn, B, Tq, S, mask, opt);
  const T scale = opt.scale != T(0) ? opt.scale : T(1) / std::sqrt(static_cast<T>(D));

  const Shape ps{B, H, Tq, S};
  Tensor<T> probs = opt.probs_out ? Tensor<T>::empty(ps) : Tensor<T>();  // only when asked: the backward recomputes
  const Tensor<T> keep = attention_dropout_keep(ps, opt);
  Tensor<T> out = Tensor<T>::empty({B, Tq, C});

  const AttentionProblem<T> pr{B, H, Tq, S, D, D, scale};
  const Tensor<T> qv = q.var.value(), kv = k.var.value(), vv = v.var.value();
  const Index oq = q.offset, ok = k.offset, ov = v.offset;
  // Head h of batch b: rows b * L .. of each tensor, columns offset + h D ..
  auto operands = [qv, kv, vv, oq, ok, ov, Tq, S, H, D, ldq, ldk, ldv](Index bh) {
    const Index b = bh / H, h = bh % H;
    return HeadOperands<T>{qv.data() + b * Tq * ldq + oq + h * D, kv.data() + b * S * ldk + ok + h * D,
                           vv.data() + b * S * ldv + ov + h * D, ldq, ldk, ldv};
  };
  parallel_for(B * H, 4.0 * static_cast<double>(Tq * S * D), [&](Index bh) {
    T* scratch = attention_scratch<T>(2 * Tq * S);  // (Tq, S) work, then (Tq, S) probabilities
    attention_head_forward(pr, mask, bh, operands(bh), probs.defined() ? probs.data() + bh * Tq * S : scratch + Tq * S,
                           keep.defined() ? keep.data() + bh * Tq * S : nullptr,
                           out.data() + (bh / H) * Tq * C + (bh % H) * D, C, scratch);
  });
  if (opt.probs_out) *opt.probs_out = probs;

  const bool packed = q.var.node_ptr() == k.var.node_ptr() && k.var.node_ptr() == v.var.node_ptr() &&
                      oq + C <= ok && ok + C <= ov && ov + C <= ldq && oq == 0 && ldq == 3 * C;
  Var<T> y = packed ? Var<T>(out, {q.var}, fn) : Var<T>(out, {q.var, k.var, v.var}, fn);
  y.on_backward([q, k, v, probs, keep, mask, pr, operands, packed](const Tensor<T>& dy) {
    const Index Tq = pr.Tq, S = pr.S, H = pr.H, D = pr.D, C = H * D;
    const auto need = [&](const HeadsInput<T>& in) { return packed || in.var.requires_grad(); };
    // Packed: one tensor, every element written once (its q, k and v blocks); else one per input.
    Tensor<T> dq = need(q) ? Tensor<T>::empty(q.var.shape()) : Tensor<T>();
    Tensor<T> dk = packed ? dq : need(k) ? Tensor<T>::empty(k.var.shape()) : Tensor<T>();
    Tensor<T> dv = packed ? dq : need(v) ? Tensor<T>::empty(v.var.shape()) : Tensor<T>();
    const Index ldq = q.var.size(2), ldk = k.var.size(2), ldv = v.var.size(2);
    if (!packed) {  // columns outside the heads (another input's block of a shared tensor) get zeros
      for (Tensor<T>* g : {&dq, &dk, &dv})
        if (g->defined() && g->size(2) != C) g->set_zero();
    }
    parallel_for(pr.B * H, 10.0 * static_cast<double>(Tq * S * D), [&](Index bh) {
      const Index b = bh / H, h = bh % H;
      T* scratch = attention_scratch<T>(2 * Tq * S);
      const HeadOperands<T> ops = operands(bh);
      attention_head_backward(pr, ops, attention_backward_probs(probs, pr, mask, bh, ops, scratch + Tq * S),
                              keep.defined() ? keep.data() + bh * Tq * S : nullptr, dy.data() + b * Tq * C + h * D, C,
                              dq.defined() ? dq.data() + b * Tq * ldq + q.offset + h * D : nullptr, ldq,
                              dk.defined() ? dk.data() + b * S * ldk + k.offset + h * D : nullptr, ldk,
                              dv.defined() ? dv.data() + b * S * ldv + v.offset + h * D : nullptr, ldv, scratch);
    });
    if (packed) {
      q.var.accumulate_grad(std::move(dq));
      return;
    }
    if (dq.defined()) q.var.accumulate_grad(std::move(dq));
    if (dk.defined()) k.var.accumulate_grad(std::move(dk));
    if (dv.defined()) v.var.accumulate_grad(std::move(dv));
  });
  return y;
}

}  // namespace detail

/// Multi-head self-attention on packed projections: qkv (B, T, 3C), laid out as torch.nn.MultiheadAttention's
/// in_proj output (q, k, v blocks of C = H * D each), -> (B, T, C) with the heads merged. Equals
/// merge_heads(scaled_dot_product_attention(q, k, v)) with {q, k, v} = split_qkv_heads(qkv, H), but reads the
/// heads from qkv and writes them into the output in place (no split, merge or gradient scatter copies).
/// probs_out (in opt) receives (B, H, T, T).
template <typename T>
Var<T> scaled_dot_product_attention_packed(const Var<T>& qkv, Index num_heads, const AttentionMask<T>& mask = {},
                                           const AttentionOptions<T>& opt = {}) {
  const char* fn = "scaled_dot_product_attention_packed";
  if (qkv.dim() != 3 || num_heads <= 0 || qkv.size(2) % (3 * num_heads) != 0)
    throw ShapeError(detail::concat(fn, ": qkv is ", to_string(qkv.shape()),
                                    ", expected (B, T, 3 * C) with C divisible by num_heads = ", num_heads));
  const Index C = qkv.size(2) / 3;
  return detail::heads_attention<T>(fn, {qkv, 0}, {qkv, C}, {qkv, 2 * C}, num_heads, C / num_heads, mask, opt);
}

/// Multi-head attention on separate projections: q (B, T, C), k and v (B, S, C) with the heads side by side in
/// their last axis (C = H * D, as a Linear's output) -> (B, T, C) with the heads merged, read and written in place.
/// probs_out (in opt) receives (B, H, T, S).
template <typename T>
Var<T> multi_head_attention(const Var<T>& q, const Var<T>& k, const Var<T>& v, Index num_heads,
                            const AttentionMask<T>& mask = {}, const AttentionOptions<T>& opt = {}) {
  const char* fn = "multi_head_attention";
  const bool ok = q.dim() == 3 && k.dim() == 3 && v.dim() == 3 && num_heads > 0 && q.size(2) % num_heads == 0 &&
                  k.size(2) == q.size(2) && v.size(2) == q.size(2) && k.size(0) == q.size(0) &&
                  v.size(0) == q.size(0) && v.size(1) == k.size(1);
  if (!ok)
    throw ShapeError(detail::concat(fn, ": q is ", to_string(q.shape()), ", k is ", to_string(k.shape()), ", v is ",
                                    to_string(v.shape()), ", expected q (B, T, C), k and v (B, S, C) with C ",
                                    "divisible by num_heads = ", num_heads));
  return detail::heads_attention<T>(fn, {q, 0}, {k, 0}, {v, 0}, num_heads, q.size(2) / num_heads, mask, opt);
}

namespace detail {

/// Copies the D-wide head rows between a token-major buffer, where head h of token (b, t) starts at
/// (b * Tn + t) * ld + offset + h * D, and a head-major (B, H, Tn, D) buffer; to_heads copies token-major to
/// head-major, otherwise the other way.
template <typename T>
void copy_head_rows(const T* src, T* dst, Index B, Index Tn, Index H, Index D, Index ld, Index offset,
                    bool to_heads) {
  for (Index b = 0; b < B; ++b)
    for (Index h = 0; h < H; ++h)
      for (Index t = 0; t < Tn; ++t) {
        const Index token = (b * Tn + t) * ld + offset + h * D, head = ((b * H + h) * Tn + t) * D;
        if (to_heads)
          std::copy_n(src + token, D, dst + head);
        else
          std::copy_n(src + head, D, dst + token);
      }
}

}  // namespace detail

/// Splits packed projections (B, T, 3 * H * D) into q, k, v of shape (B, H, T, D) each (one copy per part, no
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
  for (Index j = 0; j < 3; ++j)
    detail::copy_head_rows(qkv.value().data(), parts[j].data(), B, Tn, H, D, 3 * C, j * C, true);
  std::vector<Var<T>> out;
  for (Index j = 0; j < 3; ++j) {
    Var<T> y(parts[j], {qkv}, fn);
    y.on_backward([qkv, j, B, Tn, C, H, D](const Tensor<T>& dy) {
      Tensor<T> g = Tensor<T>::zeros(qkv.shape());
      detail::copy_head_rows(dy.data(), g.data(), B, Tn, H, D, 3 * C, j * C, false);
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
  detail::copy_head_rows(x.value().data(), y.data(), B, Tn, H, D, H * D, 0, true);
  Var<T> out(y, {x}, "split_heads");
  out.on_backward([x, B, Tn, H, D](const Tensor<T>& dy) {
    Tensor<T> g = Tensor<T>::empty(x.shape());
    detail::copy_head_rows(dy.data(), g.data(), B, Tn, H, D, H * D, 0, false);
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
  detail::copy_head_rows(x.value().data(), y.data(), B, Tn, H, D, H * D, 0, false);
  Var<T> out(y, {x}, "merge_heads");
  out.on_backward([x, B, Tn, H, D](const Tensor<T>& dy) {
    Tensor<T> g = Tensor<T>::empty(x.shape());
    detail::copy_head_rows(dy.data(), g.data(), B, Tn, H, D, H * D, 0, true);
    x.accumulate_grad(std::move(g));
  });
  return out;
}

/// The keys and values of a decoder's earlier positions, read in place by cached_multi_head_attention: position s
/// of batch entry b is the row k + b * batch_stride + s * ld (the heads side by side, width / H values each), and
/// likewise for v.
template <typename T>
struct KeyValueView {
  const T* k = nullptr;
  const T* v = nullptr;
  Index batch = 0;         // B
  Index width = 0;         // C = H * D values per position
  Index ld = 0;            // values between consecutive positions (>= width)
  Index batch_stride = 0;  // values between batch entries (a cache's capacity * ld)
  Index length = 0;        // positions held, the new queries' own included
  Tensor<bool> key_padding;  // (B, P) with P >= length: true = that position is padding; undefined = none
};

/// Multi-head attention of Tq new queries over the keys and values of a cache, forward only (decoding: no graph).
/// q (B, Tq, W) holds the queries in its first C = cache.width columns (a packed (B, Tq, 3C) projection as is);
/// query t is at position cache.length - Tq + t and attends the keys up to that position that are not padding
/// (a query with none, a padding position of a left-padded prompt, gets zeros). scale 0 means 1 / sqrt(D).
/// Returns (B, Tq, C), the heads merged; the cache is read where it lies, never copied.
template <typename T>
Tensor<T> cached_multi_head_attention(const Tensor<T>& q, Index num_heads, const KeyValueView<T>& cache,
                                      T scale = T(0)) {
  const char* fn = "cached_multi_head_attention";
  const Index C = cache.width;
  if (num_heads <= 0 || C <= 0 || C % num_heads != 0)
    throw ValueError(detail::concat(fn, ": num_heads is ", num_heads, ", cache width is ", C,
                                    ", expected a width > 0 divisible by num_heads"));
  if (q.dim() != 3 || q.size(0) != cache.batch || q.size(2) < C)
    throw ShapeError(detail::concat(fn, ": q is ", to_string(q.shape()), ", expected (", cache.batch,
                                    ", Tq, W) with W >= the cache width ", C));
  const Index B = q.size(0), Tq = q.size(1), ldq = q.size(2), H = num_heads, D = C / H, S = cache.length;
  if (Tq > S)
    throw ValueError(detail::concat(fn, ": ", Tq, " queries but the cache holds ", S,
                                    " positions, expected the new positions to be in the cache"));
  if (!cache.k || !cache.v || cache.ld < C || cache.batch_stride < S * cache.ld)
    throw ValueError(detail::concat(fn, ": the cache view has ld ", cache.ld, " and batch stride ",
                                    cache.batch_stride, ", expected buffers with ld >= ", C,
                                    " and batch stride >= length * ld = ", S * cache.ld));
  AttentionMask<T> mask;
  mask.causal = true;
  mask.query_offset = S - Tq;
  if (cache.key_padding.defined()) {
    if (cache.key_padding.dim() != 2 || cache.key_padding.size(0) != B || cache.key_padding.size(1) < S)
      throw ShapeError(detail::concat(fn, ": key_padding is ", to_string(cache.key_padding.shape()), ", expected (",
                                      B, ", P) with P >= ", S));
    mask.key_padding = cache.key_padding;
    mask.key_padding_stride = cache.key_padding.size(1);
  }
  const detail::AttentionProblem<T> pr{B, H, Tq, S, D, D,
                                       scale != T(0) ? scale : T(1) / std::sqrt(static_cast<T>(D))};
  Tensor<T> out = Tensor<T>::empty({B, Tq, C});
  const T* pq = q.data();
  detail::parallel_for(B * H, 4.0 * static_cast<double>(Tq * S * D), [&](Index bh) {
    const Index b = bh / H, h = bh % H;
    const detail::HeadOperands<T> ops{pq + b * Tq * ldq + h * D, cache.k + b * cache.batch_stride + h * D,
                                      cache.v + b * cache.batch_stride + h * D, ldq, cache.ld, cache.ld};
    T* probs = detail::attention_scratch<T>(Tq * S);  // (Tq, S)
    detail::attention_head_forward(pr, mask, bh, ops, probs, static_cast<const T*>(nullptr),
                                   out.data() + b * Tq * C + h * D, C, static_cast<T*>(nullptr));
  });
  return out;
}

}  // namespace eigenformer
