// The bag-of-words baseline of text_classifier: the mean of the token embeddings of a text (torch.nn.EmbeddingBag
// with mode="mean", fastText's architecture, Joulin et al. 2017) followed by one Linear layer. Word order is
// ignored, so it shows what the transformer adds over token counts.
#pragma once

#include <cstdint>
#include <eigenformer/eigenformer.hpp>

namespace text_classifier {

using eigenformer::Index;

/// ids (B, T) -> logits (B, num_classes): Linear(masked mean of Embedding(ids)).
template <typename T = float>
struct BowClassifier : eigenformer::nn::Module<BowClassifier<T>, T> {
  struct Options {
    Index vocab_size = 0;
    Index dim = 64;  // embedding size
    Index num_classes = 2;
    Index padding_idx = 0;  // [PAD]: a zero row that is never trained
    std::uint64_t seed = 0;

    EIGENFORMER_FIELDS(vocab_size, dim, num_classes, padding_idx, seed)
  };

  BowClassifier() = default;
  explicit BowClassifier(const Options& o) : options(o) {
    eigenformer::Generator gen(o.seed);
    embedding = eigenformer::nn::Embedding<T>(
        typename eigenformer::nn::Embedding<T>::Options(o.vocab_size, o.dim, o.padding_idx), gen);
    fc = eigenformer::nn::Linear<T>(typename eigenformer::nn::Linear<T>::Options(o.dim, o.num_classes), gen);
  }

  /// ids (B, T); padding_mask (B, T), true = padding (optional).
  eigenformer::Var<T> forward(const eigenformer::Tensor<std::int64_t>& ids,
                              const eigenformer::Tensor<bool>& padding_mask = {}) {
    const eigenformer::Var<T> e = embedding.forward(ids);  // (B, T, dim)
    return fc.forward(padding_mask.defined() ? eigenformer::masked_mean(e, padding_mask) : eigenformer::mean(e, 1));
  }

  template <class V>
  void visit(V& v) {
    v.module("embedding", embedding);
    v.module("fc", fc);
  }

  Options options;
  eigenformer::nn::Embedding<T> embedding;  // (V, dim)
  eigenformer::nn::Linear<T> fc;            // (num_classes, dim)
};

}  // namespace text_classifier
