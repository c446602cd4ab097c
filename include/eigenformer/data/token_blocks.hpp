// TokenBlocks: a stream of token ids (a corpus encoded and its texts joined by an end-of-text token) cut into
// blocks of block_size + 1 tokens, each block a training example of a causal language model: ids are its first
// block_size tokens, targets its last block_size (the token after each id). The role of transformers' run_clm
// group_texts and nanoGPT's data loader, as a data source for train::fit (size, num_batches, batch_indices,
// make_batch), shuffled per epoch from a seed.
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

/// A batch of blocks.
struct TokenBlockBatch {
  Tensor<std::int64_t> ids;      // (B, T): the tokens the model reads
  Tensor<std::int64_t> targets;  // (B, T): the token after each of ids
  std::vector<Index> indices;    // (B): the blocks' numbers
  Index tokens = 0;              // B * T: the targets predicted
};

/// Consecutive blocks of a token stream; blocks overlap by one token (the last target of a block is the first id
/// of the next), the tail that fills no block is left out.
class TokenBlocks {
 public:
  struct Options {
    Index block_size = 128;  // T: ids (and targets) per block
    Index batch_size = 16;
    bool shuffle = true;     // a new order every epoch, a function of (seed, epoch) only
    bool drop_last = false;  // leave out the last batch when it is not full
    std::uint64_t seed = 0;
  };

  /// Throws ValueError for a block or batch size below 1, or a stream too short for one block.
  TokenBlocks(std::vector<std::int64_t> tokens, const Options& options)
      : tokens_(std::move(tokens)), options_(options) {
    if (options_.block_size < 1 || options_.batch_size < 1)
      throw ValueError(detail::concat("TokenBlocks: block_size is ", options_.block_size, ", batch_size is ",
                                      options_.batch_size, ", expected both >= 1"));
    if (static_cast<Index>(tokens_.size()) < options_.block_size + 1)
      throw ValueError(detail::concat("TokenBlocks: the stream holds ", tokens_.size(), " tokens, expected at least ",
                                      options_.block_size + 1, " (one block of ", options_.block_size,
                                      " ids and its targets)"));
  }

  const Options& options() const { return options_; }
  const std::vector<std::int64_t>& tokens() const { return tokens_; }

  /// Number of blocks.
  Index size() const { return (static_cast<Index>(tokens_.size()) - 1) / options_.block_size; }

  /// Batches per epoch.
  Index num_batches() const {
    const Index n = size(), b = options_.batch_size;
    return n / b + (!options_.drop_last && n % b != 0 ? 1 : 0);
  }

  /// The blocks of every batch of an epoch, in order; throws ValueError for a negative epoch.
  std::vector<std::vector<Index>> batch_indices(Index epoch) const {
    if (epoch < 0) throw ValueError(detail::concat("TokenBlocks::batch_indices: epoch is ", epoch, ", expected >= 0"));
    std::vector<Index> order;
    if (options_.shuffle) {
      std::mt19937_64 gen(mix_seed(options_.seed, static_cast<std::uint64_t>(epoch)));
      order = permutation(size(), gen);
    } else {
      order.resize(static_cast<std::size_t>(size()));
      for (Index i = 0; i < size(); ++i) order[static_cast<std::size_t>(i)] = i;
    }
    std::vector<std::vector<Index>> batches;
    const Index n = static_cast<Index>(order.size()), b = options_.batch_size;
    for (Index begin = 0; begin < n;) {
      const Index end = begin + std::min(b, n - begin);
      if (end - begin < b && options_.drop_last) break;
      batches.emplace_back(order.begin() + begin, order.begin() + end);
      begin = end;
    }
    return batches;
  }

  /// The batch of the given blocks; throws ValueError for an empty list or a block out of range.
  TokenBlockBatch make_batch(const std::vector<Index>& indices) const {
    if (indices.empty()) throw ValueError("TokenBlocks::make_batch: indices is empty, expected at least one block");
    const Index B = static_cast<Index>(indices.size()), T = options_.block_size;
    TokenBlockBatch batch;
    batch.ids = Tensor<std::int64_t>::empty({B, T});
    batch.targets = Tensor<std::int64_t>::empty({B, T});
    batch.indices = indices;
    for (Index r = 0; r < B; ++r) {
      const Index i = indices[static_cast<std::size_t>(r)];
      if (i < 0 || i >= size())
        throw ValueError(
            detail::concat("TokenBlocks::make_batch: block ", i, " is out of range for ", size(), " blocks"));
      const std::int64_t* first = tokens_.data() + i * T;
      std::copy_n(first, T, batch.ids.data() + r * T);
      std::copy_n(first + 1, T, batch.targets.data() + r * T);
    }
    batch.tokens = B * T;
    return batch;
  }

 private:
  std::vector<std::int64_t> tokens_;
  Options options_;
};

}  // namespace eigenformer::data
