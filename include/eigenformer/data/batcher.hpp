// Batcher: token-id sequences and label ids cut into padded batches with a key-padding mask, optionally shuffled
// per epoch and bucketed by length (the roles of torch.utils.data.DataLoader with pad_sequence as collate_fn,
// and of a bucketing sampler such as torchtext's BucketIterator).
#pragma once

#include <algorithm>
#include <cstdint>
#include <random>
#include <utility>
#include <vector>

#include "eigenformer/core/config.hpp"
#include "eigenformer/core/error.hpp"
#include "eigenformer/data/shuffle.hpp"
#include "eigenformer/tensor/tensor.hpp"

namespace eigenformer::data {

/// One padded batch.
struct Batch {
  Tensor<std::int64_t> ids;     // (B, T): token ids, pad_id after each sequence's end; T = longest in the batch
  Tensor<bool> padding_mask;    // (B, T): true = padding (PyTorch's key_padding_mask convention)
  Tensor<std::int64_t> labels;  // (B)
  std::vector<Index> indices;   // (B): positions of the rows in the Batcher's sequences
  Index tokens = 0;             // non-pad positions: the sum of the rows' lengths
};

/// Cuts encoded sequences and their labels into padded batches, one epoch at a time.
class Batcher {
 public:
  struct Options {
    Index batch_size = 32;
    /// Shuffle every epoch; the order is a function of (seed, epoch) only, so a resumed run replays it.
    bool shuffle = false;
    /// Leave out the last n % batch_size examples of the epoch's order, so every batch is full.
    bool drop_last = false;
    std::int64_t pad_id = 0;
    std::uint64_t seed = 0;
    /// 0: no bucketing. k > 0: the epoch's order is cut into chunks of k batches, each chunk is sorted by length
    /// (stable) and cut into batches, and the batch order is shuffled (when shuffle is on): batches hold
    /// sequences of similar length, so less padding, while every epoch still mixes the data.
    Index bucket_batches = 0;
  };

  /// Throws ShapeError if the counts differ, ValueError for an empty sequence or a bad option.
  Batcher(std::vector<std::vector<std::int64_t>> sequences, std::vector<std::int64_t> labels, Options options)
      : sequences_(std::move(sequences)), labels_(std::move(labels)), options_(options) {
    if (sequences_.size() != labels_.size())
      throw ShapeError(detail::concat("Batcher: got ", sequences_.size(), " sequences and ", labels_.size(),
                                      " labels, expected as many labels as sequences"));
    if (options_.batch_size < 1)
      throw ValueError(detail::concat("Batcher: batch_size is ", options_.batch_size, ", expected at least 1"));
    if (options_.bucket_batches < 0)
      throw ValueError(detail::concat("Batcher: bucket_batches is ", options_.bucket_batches,
                                      ", expected 0 (no bucketing) or more"));
    for (std::size_t i = 0; i < sequences_.size(); ++i)
      if (sequences_[i].empty())  // an all-padding row leaves attention nothing to attend to (NaN softmax)
        throw ValueError(detail::concat("Batcher: sequences[", i, "] (example ", i + 1,
                                        ") is empty, expected at least one token"));
  }

  /// Number of sequences.
  Index size() const { return static_cast<Index>(sequences_.size()); }
  const Options& options() const { return options_; }
  const std::vector<std::vector<std::int64_t>>& sequences() const { return sequences_; }
  const std::vector<std::int64_t>& labels() const { return labels_; }

  /// Batches per epoch: n / batch_size rounded down with drop_last, up without. A batch size beyond the data
  /// makes one batch of everything (no sum here can overflow, whatever the batch size).
  Index num_batches() const {
    const Index n = size(), b = options_.batch_size;
    return n / b + (!options_.drop_last && n % b != 0 ? 1 : 0);
  }

  /// The rows of every batch of an epoch, in order; throws ValueError for a negative epoch.
  std::vector<std::vector<Index>> batch_indices(Index epoch_number) const {
    if (epoch_number < 0)
      throw ValueError(detail::concat("Batcher::batch_indices: epoch_number is ", epoch_number, ", expected >= 0"));
    const Index b = options_.batch_size;
    std::mt19937_64 gen(mix_seed(options_.seed, static_cast<std::uint64_t>(epoch_number)));
    std::vector<Index> order;
    if (options_.shuffle) {
      order = permutation(size(), gen);
    } else {
      order.resize(sequences_.size());
      for (Index i = 0; i < size(); ++i) order[static_cast<std::size_t>(i)] = i;
    }
    if (options_.drop_last) order.resize(static_cast<std::size_t>(size() / b * b));

    if (options_.bucket_batches > 0) {
      // bucket_batches * b items per chunk; a product past the data (or past Index) is one chunk of everything.
      const Index items = options_.bucket_batches > size() / b ? size() : options_.bucket_batches * b;
      const auto chunk = static_cast<std::ptrdiff_t>(std::max<Index>(1, items));
      const auto shorter = [this](Index x, Index y) { return length(x) < length(y); };
      for (auto it = order.begin(); it != order.end();) {
        const auto end = order.end() - it > chunk ? it + chunk : order.end();
        std::stable_sort(it, end, shorter);  // stable: ties keep the epoch's order, so the result is portable
        it = end;
      }
    }

    std::vector<std::vector<Index>> batches;
    batches.reserve(static_cast<std::size_t>(num_batches()));
    const auto n = static_cast<Index>(order.size());
    for (Index begin = 0; begin < n;) {
      const Index end = begin + std::min(b, n - begin);  // never begin + b: it overflows for a huge batch size
      batches.emplace_back(order.begin() + begin, order.begin() + end);
      begin = end;
    }
    // Sorted chunks alone would give every epoch short batches first and long ones last.
    if (options_.bucket_batches > 0 && options_.shuffle) data::shuffle(batches, gen);
    return batches;
  }

  /// One padded batch of the given rows; throws ValueError for an empty list or an index out of range.
  Batch make_batch(const std::vector<Index>& indices) const {
    if (indices.empty()) throw ValueError("Batcher::make_batch: indices is empty, expected at least one row");
    Index t_max = 0;
    for (Index i : indices) {
      if (i < 0 || i >= size())
        throw ValueError(detail::concat("Batcher::make_batch: index ", i, " is out of range for ", size(),
                                        " sequences"));
      t_max = std::max(t_max, length(i));
    }
    const auto rows = static_cast<Index>(indices.size());
    Batch batch;
    batch.ids = Tensor<std::int64_t>::full({rows, t_max}, options_.pad_id);
    batch.padding_mask = Tensor<bool>::full({rows, t_max}, true);
    batch.labels = Tensor<std::int64_t>::empty({rows});
    batch.indices = indices;
    for (Index r = 0; r < rows; ++r) {
      const std::vector<std::int64_t>& seq = sequences_[static_cast<std::size_t>(indices[static_cast<std::size_t>(r)])];
      std::copy(seq.begin(), seq.end(), batch.ids.data() + r * t_max);
      std::fill_n(batch.padding_mask.data() + r * t_max, seq.size(), false);
      batch.labels[r] = labels_[static_cast<std::size_t>(indices[static_cast<std::size_t>(r)])];
      batch.tokens += static_cast<Index>(seq.size());
    }
    return batch;
  }

  /// Every batch of an epoch (batch_indices then make_batch); for a large epoch call those two one batch at a
  /// time instead.
  std::vector<Batch> epoch(Index epoch_number) const {
    std::vector<Batch> out;
    for (const std::vector<Index>& idx : batch_indices(epoch_number)) out.push_back(make_batch(idx));
    return out;
  }

 private:
  Index length(Index i) const { return static_cast<Index>(sequences_[static_cast<std::size_t>(i)].size()); }

  std::vector<std::vector<std::int64_t>> sequences_;
  std::vector<std::int64_t> labels_;
  Options options_;
};

}  // namespace eigenformer::data
