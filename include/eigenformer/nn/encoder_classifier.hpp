// A transformer encoder classifier: token embedding, positional encoding, encoder stack and classification head;
// with default options it is the seed demo's MiniTransformerClassifier, under the same state-dict names
// (embedding.weight, pos_embedding.weight, encoder.layers.N.*, encoder.norm.*, classifier.0.*, classifier.1.*).
#pragma once

#include <algorithm>
#include <cstdint>

#include "eigenformer/core/fields.hpp"
#include "eigenformer/nn/classifier_head.hpp"
#include "eigenformer/nn/embedding.hpp"
#include "eigenformer/nn/encoder.hpp"
#include "eigenformer/nn/positional_encoding.hpp"
#include "eigenformer/runtime/inference.hpp"

namespace eigenformer::nn {

/// ids (B, T) -> logits (B, num_classes).
template <typename T = float>
struct EncoderClassifier : Module<EncoderClassifier<T>, T> {
  struct Options {
    Index vocab_size = 50;
    Index max_len = 512;  // longest sequence accepted (the positional table's size)
    PositionalKind positional = PositionalKind::none;
    Index padding_idx = -1;  // an embedding row kept at zero and never trained; -1: none
    /// The encoder stack; by default the seed demo's: d_model 32, 4 heads, feed-forward 64, dropout 0.1, 2
    /// post-norm layers. Its layer seed is derived from seed below.
    typename Encoder<T>::Options encoder = seed_encoder();
    /// The head; its d_model is the encoder's (0 = take it from there).
    typename ClassifierHead<T>::Options head;
    std::uint64_t seed = 0;  // initialization and dropout streams

    EIGENFORMER_FIELDS(vocab_size, max_len, positional, padding_idx, encoder, head, seed)

    /// The width of the model (the encoder's d_model).
    Index d_model() const { return encoder.layer.d_model; }

    static typename Encoder<T>::Options seed_encoder() {
      typename Encoder<T>::Options e;
      e.layer.d_model = 32;
      e.layer.nhead = 4;
      e.layer.dim_feedforward = 64;
      e.num_layers = 2;
      return e;
    }
  };

  EncoderClassifier() = default;
  explicit EncoderClassifier(const Options& o) : options(o) {
    const char* fn = "EncoderClassifier";
    if (o.max_len <= 0) throw ValueError(eigenformer::detail::concat(fn, ": max_len is ", o.max_len, ", expected > 0"));
    if (o.head.d_model != 0 && o.head.d_model != o.d_model())
      throw ValueError(eigenformer::detail::concat(fn, ": head.d_model is ", o.head.d_model,
                                                   ", expected 0 or the encoder's d_model ", o.d_model()));
    if (!o.encoder.layer.batch_first)
      throw ValueError(eigenformer::detail::concat(fn, ": encoder.layer.batch_first is false, expected true (ids are (B, T))"));
    options.head.d_model = o.d_model();
    options.encoder.layer.seed = o.seed + 1;
    Generator gen(o.seed);
    embedding = Embedding<T>(typename Embedding<T>::Options(o.vocab_size, o.d_model(), o.padding_idx), gen);
    typename PositionalEncoding<T>::Options positions;
    positions.kind = o.positional;
    positions.max_len = o.max_len;
    positions.dim = o.d_model();
    pos_embedding = PositionalEncoding<T>(positions, gen);
    encoder = Encoder<T>(options.encoder, gen);
    head = ClassifierHead<T>(options.head, gen);
  }

  /// ids (B, T) in [0, vocab_size); padding_mask (B, T), true = padding (optional). Returns logits (B, classes).
  Var<T> forward(const Tensor<std::int64_t>& ids, const Tensor<bool>& padding_mask = {}) {
    return head.forward(encode(ids, padding_mask), padding_mask);
  }

  /// The encoder output (B, T, d_model).
  Var<T> encode(const Tensor<std::int64_t>& ids, const Tensor<bool>& padding_mask = {}) {
    check_inputs(ids, padding_mask);
    AttentionMask<T> mask;
    mask.key_padding = padding_mask;
    const Var<T>& positions = pos_embedding.positions();
    const Var<T> x = positions.defined() ? embedding.forward_add_positions(ids, positions) : embedding.forward(ids);
    return encoder.forward(x, mask);
  }

  /// The work of a forward over batch sequences of length tokens, for runners (runtime/inference.hpp): per layer
  /// the QKV, output and feed-forward projections and the two attention products.
  ForwardCost forward_cost(Index batch, Index length) const {
    const double C = double(options.d_model()), F = double(options.encoder.layer.dim_feedforward);
    const double tokens = double(batch) * double(length);
    ForwardCost cost;
    cost.flops = 2 * tokens * (4 * C * C + 2 * C * F + 2 * double(length) * C) * double(options.encoder.num_layers);
    cost.largest_weight_bytes = std::max(3 * C * C, C * F) * double(sizeof(T));
    return cost;
  }

  template <class V>
  void visit(V& v) {
    v.module("embedding", embedding);
    v.module("pos_embedding", pos_embedding);
    v.module("encoder", encoder);
    v.module("", head);  // classifier.0.*, classifier.1.*, pooler.dense.*
  }

  Options options;
  Embedding<T> embedding;
  PositionalEncoding<T> pos_embedding;
  Encoder<T> encoder;
  ClassifierHead<T> head;

 private:
  void check_inputs(const Tensor<std::int64_t>& ids, const Tensor<bool>& padding_mask) const {
    const char* fn = "EncoderClassifier::forward";
    if (ids.dim() != 2 || ids.size(0) == 0 || ids.size(1) == 0)
      throw ShapeError(eigenformer::detail::concat(fn, ": ids is ", to_string(ids.shape()),
                                                   ", expected (B, T) with B, T > 0"));
    if (ids.size(1) > options.max_len)
      throw ValueError(eigenformer::detail::concat(fn, ": sequence length ", ids.size(1), " exceeds max_len ",
                                                   options.max_len));
    for (Index b = 0; b < ids.size(0); ++b)
      for (Index t = 0; t < ids.size(1); ++t) {
        const std::int64_t id = ids(b, t);
        if (id < 0 || id >= options.vocab_size)
          throw ValueError(eigenformer::detail::concat(fn, ": token id ", id, " at position (", b, ", ", t,
                                                       ") is out of range, expected 0 <= id < vocab_size = ",
                                                       options.vocab_size));
      }
    if (padding_mask.defined() && padding_mask.shape() != ids.shape())
      throw ShapeError(eigenformer::detail::concat(fn, ": padding_mask is ", to_string(padding_mask.shape()),
                                                   ", expected the shape of ids ", to_string(ids.shape())));
  }
};

}  // namespace eigenformer::nn
