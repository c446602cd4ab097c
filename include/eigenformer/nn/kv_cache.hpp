// A decoder's key/value cache (transformers' StaticCache): for every layer, the keys and values of the positions
// seen so far, in buffers preallocated for `capacity` positions. A forward over new tokens writes their keys and
// values into the next free rows and attention reads the buffers where they lie
// (ops/attention.hpp cached_multi_head_attention), so no decoding step copies or concatenates what the cache holds.
// It also keeps, per sequence, which positions are padding (left-padded prompts of different lengths) and the
// position id of its next token.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "eigenformer/ops/attention.hpp"
#include "eigenformer/tensor/tensor.hpp"

namespace eigenformer::nn {

/// Keys and values of num_layers layers for batch sequences of up to capacity positions, width values each.
template <typename T = float>
class KVCache {
 public:
  KVCache() = default;
  /// Allocates every buffer (2 * num_layers * batch * capacity * width values). Throws ValueError unless every
  /// size is >= 1.
  KVCache(Index num_layers, Index batch, Index capacity, Index width)
      : layers_(num_layers), batch_(batch), capacity_(capacity), width_(width) {
    if (num_layers < 1 || batch < 1 || capacity < 1 || width < 1)
      throw ValueError(eigenformer::detail::concat("KVCache: num_layers is ", num_layers, ", batch is ", batch,
                                                   ", capacity is ", capacity, ", width is ", width,
                                                   ", expected every size >= 1"));
    keys_.reserve(static_cast<std::size_t>(num_layers));
    values_.reserve(static_cast<std::size_t>(num_layers));
    for (Index l = 0; l < num_layers; ++l) {
      keys_.push_back(Tensor<T>::zeros({batch, capacity, width}));
      values_.push_back(Tensor<T>::zeros({batch, capacity, width}));
    }
    padding_ = Tensor<bool>::zeros({batch, capacity});
    next_position_.assign(static_cast<std::size_t>(batch), 0);
  }

  Index num_layers() const { return layers_; }
  Index batch() const { return batch_; }
  Index capacity() const { return capacity_; }
  Index width() const { return width_; }
  /// Positions every sequence holds (padding included).
  Index length() const { return length_; }
  /// Positions still free.
  Index remaining() const { return capacity_ - length_; }
  /// The position id of sequence b's next token: how many of its positions are not padding.
  std::int64_t next_position(Index b) const { return next_position_.at(static_cast<std::size_t>(b)); }
  /// Whether any position held so far is padding.
  bool has_padding() const { return has_padding_; }
  /// (B, capacity): true = that position of that sequence is padding (rows from length() on are meaningless).
  const Tensor<bool>& padding() const { return padding_; }
  /// The buffers of layer l, (B, capacity, width) each.
  const Tensor<T>& keys(Index l) const { return keys_.at(static_cast<std::size_t>(l)); }
  const Tensor<T>& values(Index l) const { return values_.at(static_cast<std::size_t>(l)); }

  /// Forgets every position; the buffers are kept for the next sequences.
  void reset() {
    length_ = 0;
    pending_ = 0;
    has_padding_ = false;
    padding_.set_zero();
    std::fill(next_position_.begin(), next_position_.end(), 0);
  }

  // A model's forward over new tokens: begin_step, then append and view for each layer, then end_step. A forward
  // that fails before end_step leaves the cache as it was before begin_step.

  /// Starts a forward over Tq new tokens per sequence, padding (B, Tq) marking those that are padding (undefined:
  /// none). Returns their position ids (B, Tq): each sequence counts its tokens that are not padding, and a padding
  /// token gets 1 (as transformers' generate computes them from the attention mask). Throws ValueError when the
  /// cache has no room for Tq more positions, ShapeError for a padding mask of another shape.
  Tensor<std::int64_t> begin_step(Index Tq, const Tensor<bool>& padding = {}) {
    const char* fn = "KVCache::begin_step";
    if (batch_ == 0)
      throw ValueError(eigenformer::detail::concat(fn, ": the cache has no buffers (default-constructed)"));
    if (Tq < 1 || Tq > remaining())
      throw ValueError(eigenformer::detail::concat(fn, ": ", Tq, " new positions, but the cache holds ", length_,
                                                   " of its capacity ", capacity_,
                                                   ", expected 1 <= new <= ", remaining()));
    if (padding.defined() && padding.shape() != Shape{batch_, Tq})
      throw ShapeError(eigenformer::detail::concat(fn, ": padding is ", to_string(padding.shape()), ", expected (",
                                                   batch_, ", ", Tq, ")"));
    pending_ = Tq;
    Tensor<std::int64_t> positions = Tensor<std::int64_t>::empty({batch_, Tq});
    for (Index b = 0; b < batch_; ++b) {
      std::int64_t next = next_position_[static_cast<std::size_t>(b)];
      for (Index t = 0; t < Tq; ++t) {
        const bool pad = padding.defined() && padding(b, t);
        padding_(b, length_ + t) = pad;
        positions(b, t) = pad ? 1 : next++;
      }
    }
    return positions;
  }

  /// Writes the new positions' keys and values of layer l: rows [k_offset, k_offset + width) and [v_offset,
  /// v_offset + width) of each of the (B, Tq, W) source's rows (a packed qkv projection: C and 2C).
  void append(Index l, const Tensor<T>& source, Index k_offset, Index v_offset) {
    const char* fn = "KVCache::append";
    if (l < 0 || l >= layers_)
      throw ValueError(eigenformer::detail::concat(fn, ": layer ", l, " is out of range for ", layers_, " layers"));
    if (source.dim() != 3 || source.size(0) != batch_ || source.size(1) != pending_ ||
        std::max(k_offset, v_offset) + width_ > source.size(2) || std::min(k_offset, v_offset) < 0)
      throw ShapeError(eigenformer::detail::concat(fn, ": source is ", to_string(source.shape()), " with keys at ",
                                                   k_offset, " and values at ", v_offset, ", expected (", batch_, ", ",
                                                   pending_, ", W) holding both, ", width_, " values each"));
    const Index W = source.size(2);
    T* k = keys_[static_cast<std::size_t>(l)].data();
    T* v = values_[static_cast<std::size_t>(l)].data();
    for (Index b = 0; b < batch_; ++b)
      for (Index t = 0; t < pending_; ++t) {
        const T* row = source.data() + (b * pending_ + t) * W;
        const Index at = (b * capacity_ + length_ + t) * width_;
        std::copy_n(row + k_offset, width_, k + at);
        std::copy_n(row + v_offset, width_, v + at);
      }
  }

  /// What attention reads for layer l during a step: the positions held plus the new ones.
  KeyValueView<T> view(Index l) const {
    KeyValueView<T> v;
    v.k = keys(l).data();
    v.v = values(l).data();
    v.batch = batch_;
    v.width = width_;
    v.ld = width_;
    v.batch_stride = capacity_ * width_;
    v.length = length_ + pending_;
    if (has_padding_ || any_pending_padding()) v.key_padding = padding_;
    return v;
  }

  /// Ends the step: the new positions become part of the cache.
  void end_step() {
    has_padding_ = has_padding_ || any_pending_padding();
    for (Index b = 0; b < batch_; ++b)
      for (Index t = 0; t < pending_; ++t)
        if (!padding_(b, length_ + t)) ++next_position_[static_cast<std::size_t>(b)];
    length_ += pending_;
    pending_ = 0;
  }

 private:
  bool any_pending_padding() const {
    for (Index b = 0; b < batch_; ++b)
      for (Index t = 0; t < pending_; ++t)
        if (padding_(b, length_ + t)) return true;
    return false;
  }

  Index layers_ = 0, batch_ = 0, capacity_ = 0, width_ = 0;
  Index length_ = 0;   // positions held
  Index pending_ = 0;  // new positions of the forward under way
  bool has_padding_ = false;
  std::vector<Tensor<T>> keys_, values_;  // per layer (B, capacity, width)
  Tensor<bool> padding_;                  // (B, capacity)
  std::vector<std::int64_t> next_position_;
};

}  // namespace eigenformer::nn
