// What fit() needs from the processes of a data-parallel run (PyTorch's ProcessGroup): ranks, sums across them,
// broadcasts from rank 0, and a gradient synchronizer that all-reduces gradients during backward. The interface
// knows nothing of MPI: eigenformer/dist/ implements it with MPI, and fit() runs on any implementation.
//
// The rules of a data-parallel run (train/fit.hpp): every rank sees the same shuffled order of each epoch and takes
// its share of every global batch (DataShard); each rank scales its mean loss by its share of the global batch's
// loss units (examples, or the tokens the loss is averaged over), so the summed gradients are those of the whole
// batch; metric sums are added up across ranks before they become metrics; rank 0 alone writes files and reports.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "eigenformer/autograd/var.hpp"
#include "eigenformer/core/config.hpp"
#include "eigenformer/core/error.hpp"

namespace eigenformer::train {

/// Sums the gradients of a model's trainable parameters across the ranks during the backward pass it observes
/// (install it with GradientReadyScope around a step's last backward), then hands every rank the sums.
template <typename T>
class GradientSynchronizer : public GradientReadyObserver<T> {
 public:
  /// Before the last backward of an optimizer step: gradients reported from now on are final.
  virtual void begin_step() = 0;
  /// After that backward: sums what was not reported yet (parameters the pass did not reach), waits for every sum,
  /// and leaves each parameter's gradient the sum over the ranks (undefined where no rank had one).
  virtual void finish_step() = 0;
  /// Seconds spent waiting for sums in finish_step since the synchronizer was made (communication not hidden).
  virtual double wait_seconds() const = 0;
};

/// The processes a data-parallel fit() runs on.
class ProcessGroup {
 public:
  virtual ~ProcessGroup() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  /// values[i] = the sum of values[i] over the ranks, on every rank (blocking; the same order on every rank).
  virtual void all_reduce_sum(double* values, std::size_t count) = 0;
  /// Every rank's data = rank root's (count elements; the same count on every rank).
  virtual void broadcast(float* data, std::size_t count, int root) = 0;
  virtual void broadcast(double* data, std::size_t count, int root) = 0;
  virtual void broadcast(std::int64_t* data, std::size_t count, int root) = 0;
  /// A synchronizer for these parameters (the trainable ones; a frozen parameter is skipped).
  virtual std::unique_ptr<GradientSynchronizer<float>> gradient_synchronizer(const NamedParameters<float>& params) = 0;
  virtual std::unique_ptr<GradientSynchronizer<double>> gradient_synchronizer(
      const NamedParameters<double>& params) = 0;

  void all_reduce_sum(std::vector<double>& values) { all_reduce_sum(values.data(), values.size()); }
  /// Every rank's text = rank root's.
  void broadcast(std::string& text, int root) {
    std::int64_t n = static_cast<std::int64_t>(text.size());
    broadcast(&n, 1, root);
    std::vector<std::int64_t> words(static_cast<std::size_t>((n + 7) / 8));
    if (rank() == root) std::copy(text.begin(), text.end(), reinterpret_cast<char*>(words.data()));
    broadcast(words.data(), words.size(), root);
    text.assign(reinterpret_cast<const char*>(words.data()), static_cast<std::size_t>(n));
  }
  /// Every rank's tensor = rank root's, shape included (undefined on root: undefined everywhere).
  template <typename T>
  void broadcast(Tensor<T>& t, int root) {
    std::vector<std::int64_t> head = {t.defined() ? 1 : 0, t.defined() ? t.dim() : 0};
    broadcast(head.data(), 2, root);
    if (head[0] == 0) {
      t = Tensor<T>();
      return;
    }
    std::vector<std::int64_t> dims(static_cast<std::size_t>(head[1]));
    if (rank() == root)
      for (Index a = 0; a < t.dim(); ++a) dims[static_cast<std::size_t>(a)] = t.size(a);
    broadcast(dims.data(), dims.size(), root);
    const Shape shape(dims.begin(), dims.end());
    if (!t.defined() || t.shape() != shape) t = Tensor<T>::empty(shape);
    broadcast(t.data(), static_cast<std::size_t>(t.numel()), root);
  }
  /// broadcast() of a tensor of any element type (other types than float, double and int64 travel as int64).
  template <typename U>
  void broadcast_any(Tensor<U>& t, int root) {
    if constexpr (std::is_same_v<U, float> || std::is_same_v<U, double> || std::is_same_v<U, std::int64_t>) {
      broadcast(t, root);
    } else {
      Tensor<std::int64_t> wide;
      if (t.defined()) {
        wide = Tensor<std::int64_t>::empty(t.shape());
        for (Index i = 0; i < t.numel(); ++i) wide[i] = static_cast<std::int64_t>(t[i]);
      }
      broadcast(wide, root);
      if (!wide.defined()) {
        t = Tensor<U>();
        return;
      }
      if (!t.defined() || t.shape() != wide.shape()) t = Tensor<U>::empty(wide.shape());
      for (Index i = 0; i < t.numel(); ++i) t[i] = static_cast<U>(wide[i]);
    }
  }
};

/// The ranks' shares of a batch of n examples: rank r takes the contiguous rows [begin, begin + count), the first
/// n % size ranks one more than the rest, so rank 0 is never empty when n > 0.
struct Share {
  Index begin = 0, count = 0;
};
inline Share share_of(Index n, int rank, int size) {
  const Index base = n / size, extra = n % size, r = rank;
  return {r * base + std::min(r, extra), base + (r < extra ? 1 : 0)};
}

/// A data source seen by one rank (the sampler of a data-parallel run): the same batches per epoch as the whole
/// source, each cut down to this rank's share of its rows (possibly none in a short last batch). Examples keep
/// their global indices, which key their random draws (dropout, masking).
template <class Data>
class DataShard {
 public:
  DataShard(const Data& data, int rank, int size) : data_(data), rank_(rank), size_(size) {
    if (size < 1 || rank < 0 || rank >= size)
      throw ValueError(eigenformer::detail::concat("DataShard: rank ", rank, " of ", size,
                                                   " ranks, expected 0 <= rank < size"));
  }
  Index size() const { return data_.size(); }
  Index num_batches() const { return data_.num_batches(); }
  std::vector<std::vector<Index>> batch_indices(Index epoch) const {
    std::vector<std::vector<Index>> batches = data_.batch_indices(epoch);
    for (auto& rows : batches) {
      const Share s = share_of(static_cast<Index>(rows.size()), rank_, size_);
      rows = std::vector<Index>(rows.begin() + s.begin, rows.begin() + s.begin + s.count);
    }
    return batches;
  }
  template <class Rows>
  auto make_batch(const Rows& rows) const {
    return data_.make_batch(rows);
  }

 private:
  const Data& data_;
  int rank_, size_;
};

}  // namespace eigenformer::train
