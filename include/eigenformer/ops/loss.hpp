// Cross-entropy loss fused with log-softmax over class logits, with ignore_index and label smoothing
// (torch.nn.functional.cross_entropy, reduction='mean', no class weights).
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <utility>

#include "eigenformer/autograd/var.hpp"

namespace eigenformer {

/// Options of cross_entropy, with PyTorch's defaults.
struct CrossEntropyOptions {
  std::int64_t ignore_index = -100;  // targets equal to it add nothing to the loss or to the mean's count
  double label_smoothing = 0.0;      // in [0, 1]: the target is (1 - s) one-hot + s / C uniform
};

/// Mean over non-ignored rows of -sum_c q_c log softmax(logits)_c, q the (smoothed) target distribution:
/// logits (N, C), targets (N) -> a scalar. When every target is ignored the loss is NaN (0 / 0, as in torch) and
/// the gradient is zero.
template <typename T>
Var<T> cross_entropy(const Var<T>& logits, const Tensor<std::int64_t>& targets,
                     const CrossEntropyOptions& options = {}) {
  if (logits.dim() != 2)
    throw ShapeError(detail::concat("cross_entropy: logits is ", to_string(logits.shape()), ", expected (N, C)"));
  const Index n = logits.shape()[0], c = logits.shape()[1];
  if (targets.shape() != Shape{n})
    throw ShapeError(detail::concat("cross_entropy: targets is ", to_string(targets.shape()), ", logits is ",
                                    to_string(logits.shape()), ", expected targets (", n, ")"));
  const double s = options.label_smoothing;
  if (!(s >= 0.0 && s <= 1.0))
    throw ValueError(detail::concat("cross_entropy: label_smoothing is ", s, ", expected 0 <= label_smoothing <= 1"));
  const std::int64_t ignore = options.ignore_index;
  const std::int64_t* pt = targets.data();
  Index count = 0;
  for (Index i = 0; i < n; ++i) {
    if (pt[i] == ignore) continue;
    if (pt[i] < 0 || pt[i] >= c)
      throw ValueError(detail::concat("cross_entropy: target ", pt[i], " at position ", i,
                                      " is out of range for C = ", c, " classes (expected 0 <= target < ", c,
                                      " or ignore_index ", ignore, ")"));
    ++count;
  }

  // Per row, with m the row max and lse = m + log(sum(exp(z - m))):
  //   loss = (1 - s) (lse - z_t) + s/C sum_c (lse - z_c)
  //        = log(sum(exp(z - m))) - (1 - s) (z_t - m) - s/C sum_c (z_c - m).
  // Every term is formed from z - m, so logits of 1e4 stay finite and precise.
  using ConstArrayMap = typename Tensor<T>::ConstArrayMap;
  const T on_target = T(1 - s), uniform = c > 0 ? T(s / static_cast<double>(c)) : T(0);
  // Row max and log(sum(exp(z - m))), cached: the backward recomputes softmax = exp((z - m) - log_sum) from them.
  Tensor<T> row_max = Tensor<T>::empty({n}), log_sum = Tensor<T>::empty({n});
  const T* pz = logits.value().data();
  double total = 0;  // summed in double: the mean runs over up to millions of tokens
  for (Index i = 0; i < n; ++i) {
    if (pt[i] == ignore) continue;
    ConstArrayMap zr(pz + i * c, c);
    const T m = zr.maxCoeff();
    const T ls = std::log((zr - m).exp().sum());
    row_max[i] = m;
    log_sum[i] = ls;
    T loss = ls - on_target * (zr[pt[i]] - m);
    if (s != 0.0) loss -= uniform * (zr - m).sum();
    total += static_cast<double>(loss);
  }
  // Every target ignored: NaN, the 0 / 0 of torch's mean.
  const double mean = count > 0 ? total / static_cast<double>(count) : std::numeric_limits<double>::quiet_NaN();
  Tensor<T> value = Tensor<T>::scalar(static_cast<T>(mean));

  Var<T> out(std::move(value), {logits}, "cross_entropy");
  // Targets are copied (N integers): the backward indexes with them, so later edits to the caller's buffer
  // must not reach it.
  out.on_backward([logits, targets = targets.clone(), row_max, log_sum, on_target, uniform, ignore,
                   count](const Tensor<T>& dy) {
    // d loss_i / d z_ij = softmax(z_i)_j - (1 - s) [j == t_i] - s/C, scaled by dy / count; ignored rows get 0.
    using ConstArrayMap = typename Tensor<T>::ConstArrayMap;
    using ArrayMap = typename Tensor<T>::ArrayMap;
    const Index n = logits.shape()[0], c = logits.shape()[1];
    const T scale = count > 0 ? dy[0] / static_cast<T>(count) : T(0);
    Tensor<T> dz = Tensor<T>::empty(logits.shape());
    const std::int64_t* pt = targets.data();
    for (Index i = 0; i < n; ++i) {
      ArrayMap dr(dz.data() + i * c, c);
      if (pt[i] == ignore) {
        dr.setZero();
        continue;
      }
      dr = (((ConstArrayMap(logits.value().data() + i * c, c) - row_max[i]) - log_sum[i]).exp() - uniform) * scale;
      dr[pt[i]] -= on_target * scale;
    }
    logits.accumulate_grad(std::move(dz));
  });
  return out;
}

}  // namespace eigenformer
