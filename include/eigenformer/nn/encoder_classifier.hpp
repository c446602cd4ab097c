// A transformer encoder classifier: token embedding, positional encoding, encoder stack and classification head;
// with default options it is the seed demo's MiniTransformerClassifier, under the same state-dict names
// (embedding.weight, pos_embedding.weight, encoder.layers.N.*, encoder.norm.*, classifier.0.*, classifier.1.*).
#pragma once

#include <cstdint>

#include "eigenformer/nn/classifier_head.hpp"
#include "eigenformer/nn/embedding.hpp"
#include "eigenformer/nn/encoder.hpp"
#include "eigenformer/nn/positional_encoding.hpp"

namespace eigenformer::nn {

/// ids (B, T) -> logits (B, num_classes).
template <typename T = float>
struct EncoderClassifier : Module<EncoderClassifier<T>, T> {
  struct Options {
    Index vocab_size = 50;
    Index max_len = 512;  // longest sequence accepted (the positional table's size)
    Index d_model = 32;
    Index nhead = 4;
    Index num_layers = 2;
    Index dim_feedforward = 64;
    T dropout = T(0.1);
    Activation activation = Activation::relu;
    T layer_norm_eps = T(1e-5);
    bool norm_first = false;
    bool final_norm = false;
    PositionalKind positional = PositionalKind::none;
    Pooling pooling = Pooling::cls;
    bool pooler = false;
    Index num_classes = 2;
    Index padding_idx = -1;  // an embedding row kept at zero and never trained; -1: none
    std::uint64_t seed = 0;  // initialization and dropout streams
  };

  EncoderClassifier() = default;
  explicit EncoderClassifier(const Options& o) : options(o) {
    if (o.max_len <= 0)
      throw ValueError(eigenformer::detail::concat("EncoderClassifier: max_len is ", o.max_len, ", expected > 0"));
    Generator gen(o.seed);
    embedding = Embedding<T>({o.vocab_size, o.d_model, o.padding_idx}, gen);
    pos_embedding = PositionalEncoding<T>({o.positional, o.max_len, o.d_model}, gen);
    typename Encoder<T>::Options eo;
    eo.layer = {o.d_model, o.nhead, o.dim_feedforward, o.dropout, o.activation, o.layer_norm_eps, true, o.norm_first,
                o.seed + 1};
    eo.num_layers = o.num_layers;
    eo.final_norm = o.final_norm;
    encoder = Encoder<T>(eo, gen);
    head = ClassifierHead<T>({o.d_model, o.num_classes, o.pooling, o.pooler, o.layer_norm_eps}, gen);
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
    // Token and position embeddings in one op (the same values as pos_embedding.forward(embedding.forward(ids))):
    // the lookup alone is not kept until backward.
    const Var<T>& positions = pos_embedding.positions();
    Var<T> x = positions.defined()
                   ? embedding_with_positions(embedding.weight, ids, positions, embedding.options.padding_idx)
                   : embedding.forward(ids);
    return encoder.forward(x, mask);
  }

  template <typename F>
  void visit_parameters(F&& f) {
    embedding.visit_parameters(detail::prefixed("embedding.", f));
    pos_embedding.visit_parameters(detail::prefixed("pos_embedding.", f));
    encoder.visit_parameters(detail::prefixed("encoder.", f));
    head.visit_parameters(f);
  }
  void set_training(bool on) {
    encoder.train(on);
    head.train(on);
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
      throw ShapeError(eigenformer::detail::concat(fn, ": ids is ", to_string(ids.shape()), ", expected (B, T) with B, T > 0"));
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
