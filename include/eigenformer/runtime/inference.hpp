// Inference runners: a model's forward without a graph, with the batch split across threads when that pays. Any
// module whose forward maps a batch of sequences (inputs whose first axis is the batch) to a batch of outputs can
// run through infer(); the model says what to compute, the runner decides how.
//
// The batch split: on more than one thread, instead of running the batch's ops one after another, each split
// across the threads, each thread runs the whole forward of its own consecutive rows of the batch, its products
// whole problems on that thread alone (ExecutionContext::whole_part) and its tensor buffers from a set of its own
// (detail::PartBuffers), so that the steady state allocates nothing whatever the threads' interleaving.
#pragma once

#include <algorithm>
#include <cstdint>
#include <exception>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "eigenformer/autograd/grad_mode.hpp"
#include "eigenformer/autograd/var.hpp"
#include "eigenformer/core/execution.hpp"
#include "eigenformer/core/fields.hpp"
#include "eigenformer/core/parallel.hpp"
#include "eigenformer/core/small_object_pool.hpp"
#include "eigenformer/ops/gemm.hpp"
#include "eigenformer/tensor/storage.hpp"
#include "eigenformer/tensor/tensor.hpp"

namespace eigenformer {

/// Whether infer() runs parts of the batch on threads of their own.
enum class BatchSplit {
  automatic,  // when each part is worth a fork and its products run well on one thread (see batch_parts)
  never,
  always,     // whenever there are two threads and two sequences (eval mode, outside a parallel region)
};

inline constexpr EnumNames<BatchSplit, 3> enum_names(BatchSplit) {
  return {{{BatchSplit::automatic, "automatic"}, {BatchSplit::never, "never"}, {BatchSplit::always, "always"}}};
}

/// What a runner weighs before splitting a batch: the flops of a model's forward over the batch and the bytes of
/// its largest weight matrix. A model offers it as `ForwardCost forward_cost(Index batch, Index length) const`.
struct ForwardCost {
  double flops = 0;
  double largest_weight_bytes = 0;
};

/// A part must hold this much work to pay for a fork.
constexpr double kMinSplitPartFlops = 5e7;
/// Where a part's products run on the packed kernel (which packs all of a weight into a buffer per thread), only
/// models whose weight matrices are at most this large are split: larger ones would cost each thread a copy.
constexpr double kMaxPackedSplitWeightBytes = 4 << 20;

namespace detail {

template <class Model, class = void>
struct HasForwardCost : std::false_type {};
template <class Model>
struct HasForwardCost<Model, std::void_t<decltype(std::declval<const Model&>().forward_cost(Index(), Index()))>>
    : std::true_type {};

/// The batch size and sequence length of the first input: (B, ...) tensors, the first of them defined.
inline void batch_shape(Index&, Index&) {}
template <class U, class... Rest>
void batch_shape(Index& batch, Index& length, const Tensor<U>& first, const Rest&... rest) {
  if (batch < 0 && first.defined() && first.dim() >= 1) {
    batch = first.size(0);
    length = first.dim() >= 2 ? first.size(1) : 1;
  }
  batch_shape(batch, length, rest...);
}

/// Rows [begin, begin + rows) of a (B, ...) tensor as a tensor of its own (undefined stays undefined).
template <class U>
Tensor<U> slice_rows(const Tensor<U>& t, Index begin, Index rows) {
  if (!t.defined()) return t;
  Shape s = t.shape();
  const Index row = s[0] > 0 ? t.numel() / s[0] : 0;
  s[0] = rows;
  Tensor<U> out = Tensor<U>::empty(s);
  std::copy_n(t.data() + begin * row, rows * row, out.data());
  return out;
}

/// The part buffers of the calling thread's splits (one set per calling thread, so that concurrent inferences
/// from several threads never share one).
inline std::vector<PartBuffers>& calling_thread_part_buffers() {
  thread_local std::vector<PartBuffers> sets;
  return sets;
}

}  // namespace detail

/// Into how many parts infer() splits a batch of these inputs (1: not split). Never when the model is in training
/// mode (dropout masks are those of the whole batch), under a recorded graph, inside a parallel region, or with
/// fewer than two threads or sequences. automatic: when each part holds at least kMinSplitPartFlops and, unless
/// each part's products are one-thread BLAS calls, the largest weight matrix is at most
/// kMaxPackedSplitWeightBytes; a model without forward_cost is not split automatically.
template <class Model, class... Inputs>
Index batch_parts(const Model& model, BatchSplit split, const Inputs&... inputs) {
  Index batch = -1, length = 0;
  detail::batch_shape(batch, length, inputs...);
  const Index threads = std::min<Index>(num_threads(), batch);
  if (threads < 2 || split == BatchSplit::never || detail::in_parallel_region() || is_grad_enabled() ||
      model.is_training())
    return 1;
  if (split == BatchSplit::always) return threads;
  if constexpr (detail::HasForwardCost<Model>::value) {
    using T = typename Model::Scalar;
    const ForwardCost cost = model.forward_cost(batch / threads, length);
    const bool weights_fit = detail::whole_part_products_on_blas<T>() ||
                             cost.largest_weight_bytes <= kMaxPackedSplitWeightBytes;
    return cost.flops >= kMinSplitPartFlops && weights_fit ? threads : 1;
  } else {
    return 1;
  }
}

/// model.forward(inputs...) without recording a graph (the output is a leaf), the batch split across threads as
/// batch_parts says: each part gets rows of every input (tensors whose first axis is the batch; undefined ones
/// stay undefined) and the parts' outputs are stacked in order. Equal to the unsplit forward up to rounding.
/// Exceptions of a part are rethrown here.
template <class Model, class... Inputs>
auto infer(Model& model, BatchSplit split, const Inputs&... inputs) {
  NoGradGuard no_grad;
  using Output = std::decay_t<decltype(model.forward(inputs...))>;
  using T = typename Output::Scalar;
  const Index parts = batch_parts(model, split, inputs...);
  if (parts <= 1) return Output(model.forward(inputs...));
  Index batch = -1, length = 0;
  detail::batch_shape(batch, length, inputs...);

  using Slots = std::vector<Output, detail::PoolAllocator<Output>>;
  Slots outputs(static_cast<std::size_t>(parts));
  std::vector<detail::PartBuffers>& sets = detail::calling_thread_part_buffers();
  if (sets.size() < static_cast<std::size_t>(parts)) sets.resize(static_cast<std::size_t>(parts));
  struct ReleaseParts {  // after the parts, even when one throws: every buffer back to the shared cache
    std::vector<detail::PartBuffers>& sets;
    ~ReleaseParts() {
      for (auto& set : sets) set.release();
    }
  } release_parts{sets};
  for (Index p = 0; p < parts; ++p) sets[static_cast<std::size_t>(p)].reserve();

  const auto part_context = [&](Index p) {
    ExecutionContext c;
    c.whole_part = true;
    c.buffers = &sets[static_cast<std::size_t>(p)];
    return c;
  };
  // First the parts' forwards; then the calling thread (the team's master) makes the output; then each part copies
  // its rows and drops its tensors, on the thread that made them, into its own buffers.
  detail::FirstException error;
  Tensor<T> y;
#ifdef _OPENMP
#pragma omp parallel num_threads(static_cast<int>(parts))
#endif
  {
#ifdef _OPENMP
    const Index team = omp_get_num_threads(), me = omp_get_thread_num();
#else
    const Index team = 1, me = 0;
#endif
    for (Index p = me; p < parts; p += team) {
      ExecutionScope scope(part_context(p));
      error.run([&] {
        const Index b0 = p * batch / parts, rows = (p + 1) * batch / parts - b0;
        NoGradGuard part_no_grad;  // the mode is per thread
        outputs[static_cast<std::size_t>(p)] = model.forward(detail::slice_rows(inputs, b0, rows)...);
      });
    }
#ifdef _OPENMP
#pragma omp barrier
#pragma omp master
#endif
    error.run([&] {
      Shape s = outputs[0].shape();
      s[0] = batch;
      y = Tensor<T>::empty(s);
    });
#ifdef _OPENMP
#pragma omp barrier
#endif
    for (Index p = me; p < parts; p += team) {
      ExecutionScope scope(part_context(p));
      Output& out = outputs[static_cast<std::size_t>(p)];
      error.run([&] {
        if (!y.defined() || !out.defined()) return;
        const Index b0 = p * batch / parts, rows = (p + 1) * batch / parts - b0, row = y.numel() / batch;
        if (out.dim() != y.dim() || out.size(0) != rows || out.numel() != rows * row)
          throw ShapeError(detail::concat("infer: part ", p, " of the batch gave ", to_string(out.shape()),
                                          ", expected ", rows, " rows of the shape the first part gave, ",
                                          to_string(y.shape())));
        std::copy_n(out.value().data(), out.numel(), y.data() + b0 * row);
      });
      out = Output();
    }
  }
  error.rethrow();
  return Output(std::move(y));
}

/// infer() with the automatic split.
template <class Model, class... Inputs>
auto infer(Model& model, const Inputs&... inputs) {
  return infer(model, BatchSplit::automatic, inputs...);
}

}  // namespace eigenformer
