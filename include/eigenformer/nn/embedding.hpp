// Token embedding table, matching torch.nn.Embedding (N(0, 1) init; padding_idx row zeroed and not trained).
#pragma once

#include "eigenformer/nn/module.hpp"
#include "eigenformer/ops/embedding.hpp"

namespace eigenformer::nn {

/// A lookup table from integer ids to vectors.
template <typename T = float>
struct Embedding : Module<Embedding<T>, T> {
  struct Options {
    Index num_embeddings = 0;
    Index embedding_dim = 0;
    Index padding_idx = -1;  // -1: none

    Options() = default;
    Options(Index num, Index dim, Index padding = -1) : num_embeddings(num), embedding_dim(dim), padding_idx(padding) {}

    EIGENFORMER_FIELDS(num_embeddings, embedding_dim, padding_idx)
  };

  Embedding() = default;
  Embedding(const Options& o, Generator& gen) : options(o) {
    if (o.num_embeddings <= 0 || o.embedding_dim <= 0)
      throw ValueError(eigenformer::detail::concat("Embedding: num_embeddings is ", o.num_embeddings,
                                                   ", embedding_dim is ", o.embedding_dim, ", expected both > 0"));
    if (o.padding_idx < -1 || o.padding_idx >= o.num_embeddings)
      throw ValueError(eigenformer::detail::concat("Embedding: padding_idx is ", o.padding_idx, ", expected -1 or 0 <= ",
                                                   "padding_idx < ", o.num_embeddings));
    Tensor<T> w = Tensor<T>::normal({o.num_embeddings, o.embedding_dim}, T(0), T(1), gen);
    if (o.padding_idx >= 0) w.matrix().row(o.padding_idx).setZero();
    weight = Var<T>(w, true);
  }

  /// ids: any shape of ids in [0, num_embeddings) -> (ids.shape..., embedding_dim).
  Var<T> forward(const Tensor<std::int64_t>& ids) const { return embedding(weight, ids, options.padding_idx); }

  /// forward(ids) plus, at each step t of the last axis, row t of positions (L >= steps, embedding_dim), in one op
  /// (embedding_with_positions): the lookup alone is never kept for the backward.
  Var<T> forward_add_positions(const Tensor<std::int64_t>& ids, const Var<T>& positions) const {
    return embedding_with_positions(weight, ids, positions, options.padding_idx);
  }

  template <class V>
  void visit(V& v) {
    v.parameter("weight", weight);
  }

  Options options;
  Var<T> weight;  // (num_embeddings, embedding_dim)
};

}  // namespace eigenformer::nn
