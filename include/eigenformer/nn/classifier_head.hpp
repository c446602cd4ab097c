// Sequence classification head: pool the encoder output (the CLS position as in BERT and the seed demo, or the
// mean over valid tokens), an optional BERT-style tanh pooler, then LayerNorm and Linear to class logits.
#pragma once

#include "eigenformer/core/fields.hpp"
#include "eigenformer/nn/layer_norm.hpp"
#include "eigenformer/nn/linear.hpp"
#include "eigenformer/nn/module.hpp"
#include "eigenformer/ops/activation.hpp"
#include "eigenformer/ops/layout.hpp"
#include "eigenformer/ops/pooling.hpp"
#include "eigenformer/ops/reduction.hpp"

namespace eigenformer::nn {

/// How a sequence of vectors becomes one: position 0 (CLS) or the mean over non-padding positions.
enum class Pooling { cls, mean };

inline constexpr EnumNames<Pooling, 2> enum_names(Pooling) {
  return {{{Pooling::cls, "cls"}, {Pooling::mean, "mean"}}};
}

/// pool -> [tanh(dense)] -> LayerNorm -> Linear. Parameter names follow the seed demo's
/// nn.Sequential(nn.LayerNorm, nn.Linear): classifier.0.*, classifier.1.*; the pooler is pooler.dense.* (BERT).
template <typename T = float>
struct ClassifierHead : Module<ClassifierHead<T>, T> {
  struct Options {
    Index d_model = 0;
    Index num_classes = 2;
    Pooling pooling = Pooling::cls;
    bool pooler = false;
    T layer_norm_eps = T(1e-5);

    EIGENFORMER_FIELDS(d_model, num_classes, pooling, pooler, layer_norm_eps)
  };

  ClassifierHead() = default;
  ClassifierHead(const Options& o, Generator& gen) : options(o) {
    if (o.d_model <= 0 || o.num_classes <= 0)
      throw ValueError(eigenformer::detail::concat("ClassifierHead: d_model is ", o.d_model, ", num_classes is ",
                                                   o.num_classes, ", expected both > 0"));
    if (o.pooler) pooler = Linear<T>(typename Linear<T>::Options(o.d_model, o.d_model), gen);
    norm = LayerNorm<T>(typename LayerNorm<T>::Options(o.d_model, o.layer_norm_eps));
    fc = Linear<T>(typename Linear<T>::Options(o.d_model, o.num_classes), gen);
  }

  /// h: (B, T, C) encoder output; padding_mask (B, T), true = padding (used by mean pooling; may be undefined).
  Var<T> forward(const Var<T>& h, const Tensor<bool>& padding_mask = {}) {
    return classify(pool(h, padding_mask));
  }

  /// The pooled representation (B, C), before the pooler.
  Var<T> pool(const Var<T>& h, const Tensor<bool>& padding_mask = {}) const {
    if (h.dim() != 3 || h.size(2) != options.d_model)
      throw ShapeError(eigenformer::detail::concat("ClassifierHead: h is ", to_string(h.shape()), ", expected (B, T, ",
                                                   options.d_model, ")"));
    if (options.pooling == Pooling::cls) return select(h, 1, 0);
    if (padding_mask.defined()) return masked_mean(h, padding_mask);
    return mean(h, 1);
  }

  /// (B, C) pooled vectors -> (B, num_classes) logits.
  Var<T> classify(const Var<T>& pooled) const {
    const Var<T> p = options.pooler ? tanh(pooler.forward(pooled)) : pooled;
    return fc.forward(norm.forward(p));
  }

  template <class V>
  void visit(V& v) {
    if (options.pooler) v.module("pooler.dense", pooler);
    v.module("classifier.0", norm);
    v.module("classifier.1", fc);
  }

  Options options;
  Linear<T> pooler;  // (C, C), when options.pooler
  LayerNorm<T> norm;
  Linear<T> fc;  // (num_classes, C)
};

}  // namespace eigenformer::nn
