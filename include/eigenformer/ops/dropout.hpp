// Inverted dropout with an explicit random engine (Srivastava et al. 2014; torch.nn.functional.dropout).
//
// Masks are drawn per example: a call takes one 64-bit key from the generator (under its lock: threads running
// one module at once share it), and each example (row of the first axis) draws its elements from a stream of its
// own keyed by that call key and the example's key: its global index when the trainer set one
// (ExecutionContext::example_keys), else its row. An example thus gets the same mask in a batch of any size, in
// any position, on any data-parallel rank, and rows are drawn in parallel.
#pragma once

#include <cstdint>
#include <mutex>
#include <utility>

#include "eigenformer/autograd/var.hpp"
#include "eigenformer/core/address_lock.hpp"
#include "eigenformer/core/execution.hpp"
#include "eigenformer/core/parallel.hpp"

namespace eigenformer {
namespace detail {

/// SplitMix64's finalizer (Steele, Lea and Flood 2014): a bijection of 64-bit words whose outputs for consecutive
/// inputs pass BigCrush, used here as a counter-based generator.
inline std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/// The stream of one example in one call, and its uniform draw in [0, 1) for the example's element `element`
/// (counted over all of the example's elements, row-major).
inline std::uint64_t keyed_stream(std::uint64_t call, std::int64_t example) {
  return mix64(call ^ (static_cast<std::uint64_t>(example) * 0xD1B54A32D192ED03ull));
}
inline double keyed_uniform(std::uint64_t stream, Index element) {
  constexpr std::uint64_t kGamma = 0x9E3779B97F4A7C15ull;
  return static_cast<double>(mix64(stream + static_cast<std::uint64_t>(element + 1) * kGamma) >> 11) * 0x1.0p-53;
}

/// Writes the dropout factors (0 with probability p, else 1 / (1 - p)) of a tensor of `rows` rows of `row_size`
/// elements into out, per example as the header says: when the trainer's keys divide the rows, consecutive rows
/// belong to one example (a (batch * time, channels) tensor draws as its (batch, time, channels) form). Draws one
/// key from gen, none when p is 0 or 1.
template <typename T>
void dropout_factors(T* out, Index rows, Index row_size, T p, Generator& gen) {
  const Index n = rows * row_size;
  if (p >= T(1) || p <= T(0)) {
    const T v = p >= T(1) ? T(0) : T(1);
    for (Index i = 0; i < n; ++i) out[i] = v;
    return;
  }
  std::uint64_t call;
  {
    std::lock_guard<std::mutex> lock(address_lock(&gen));
    call = gen();
  }
  const ExecutionContext& context = execution_context();
  // Rows per example: the trainer's keys when the first axis is a whole number of rows per example.
  const bool keyed = context.example_keys && context.example_count > 0 && rows % context.example_count == 0;
  const Index per_example = keyed ? rows / context.example_count : 1;
  const T keep_scale = T(1) / (T(1) - p);
  const double drop_below = static_cast<double>(p);
  parallel_chunks(rows, 6.0 * static_cast<double>(row_size), [&](Index begin, Index end) {
    for (Index r = begin; r < end; ++r) {
      const std::int64_t example = keyed ? context.example_keys[r / per_example] : static_cast<std::int64_t>(r);
      const std::uint64_t stream = keyed_stream(call, example);
      const Index first = (r % per_example) * row_size;  // the row's place among its example's elements
      T* row = out + r * row_size;
      for (Index i = 0; i < row_size; ++i)
        row[i] = keyed_uniform(stream, first + i) < drop_below ? T(0) : keep_scale;
    }
  });
}

}  // namespace detail

/// Zeroes each element with probability p and scales the rest by 1 / (1 - p) when training; returns x itself
/// in eval mode or when p == 0. p == 1 gives zeros and draws nothing from gen. The first axis is the batch (a
/// tensor of rank 0 is one example).
template <typename T>
Var<T> dropout(const Var<T>& x, T p, bool training, Generator& gen) {
  if (!(p >= T(0) && p <= T(1)))  // also rejects NaN
    throw ValueError(detail::concat("dropout: p is ", p, ", expected 0 <= p <= 1"));
  if (!training || p == T(0)) return x;

  // mask = 0 for a dropped element, 1 / (1 - p) for a kept one; saved for the backward (dx = dy * mask).
  Tensor<T> mask = Tensor<T>::empty(x.shape());
  const Index rows = x.dim() == 0 ? 1 : x.size(0);
  detail::dropout_factors(mask.data(), rows, rows == 0 ? 0 : mask.numel() / rows, p, gen);
  Tensor<T> y = Tensor<T>::empty(x.shape());
  y.array() = x.value().array() * mask.array();

  Var<T> out(std::move(y), {x}, "dropout");
  out.on_backward([x, mask](const Tensor<T>& dy) {
    Tensor<T> dx = Tensor<T>::empty(dy.shape());
    dx.array() = dy.array() * mask.array();
    x.accumulate_grad(std::move(dx));
  });
  return out;
}

}  // namespace eigenformer
