// The bag-of-words baseline of text_classifier: the mean of the token embeddings of a text (torch.nn.EmbeddingBag
// with mode="mean", fastText's architecture, Joulin et al. 2017) followed by one Linear layer. Word order is
// ignored, so it shows what the transformer adds over token counts.
#pragma once

#include <cstdint>
#include <eigenformer/eigenformer.hpp>
#include <nlohmann/json.hpp>

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
  };

  BowClassifier() = default;
  explicit BowClassifier(const Options& o) : options(o) {
    eigenformer::Generator gen(o.seed);
    embedding = eigenformer::nn::Embedding<T>({o.vocab_size, o.dim, o.padding_idx}, gen);
    fc = eigenformer::nn::Linear<T>({o.dim, o.num_classes, true}, gen);
  }

  /// ids (B, T); padding_mask (B, T), true = padding (optional).
  eigenformer::Var<T> forward(const eigenformer::Tensor<std::int64_t>& ids,
                              const eigenformer::Tensor<bool>& padding_mask = {}) {
    const eigenformer::Var<T> e = embedding.forward(ids);  // (B, T, dim)
    return fc.forward(padding_mask.defined() ? eigenformer::masked_mean(e, padding_mask) : eigenformer::mean(e, 1));
  }

  template <typename F>
  void visit_parameters(F&& f) {
    embedding.visit_parameters(eigenformer::nn::detail::prefixed("embedding.", f));
    fc.visit_parameters(eigenformer::nn::detail::prefixed("fc.", f));
  }
  void set_training(bool) {}

  Options options;
  eigenformer::nn::Embedding<T> embedding;  // (V, dim)
  eigenformer::nn::Linear<T> fc;            // (num_classes, dim)
};

/// The options as config.json's "model" object.
inline nlohmann::json bow_config(const BowClassifier<float>::Options& o) {
  return {{"vocab_size", o.vocab_size},
          {"dim", o.dim},
          {"num_classes", o.num_classes},
          {"padding_idx", o.padding_idx},
          {"seed", o.seed}};
}

/// The inverse of bow_config (absent fields keep their defaults); throws eigenformer::ValueError for a field that
/// is not an integer.
inline BowClassifier<float>::Options bow_options(const nlohmann::json& j) {
  BowClassifier<float>::Options o;
  const auto read = [&j](const char* key, auto& out) {
    if (!j.contains(key)) return;
    if (!j.at(key).is_number_integer())
      throw eigenformer::ValueError(
          eigenformer::detail::concat("bow_options: \"", key, "\" is ", j.at(key).dump(), ", expected an integer"));
    out = j.at(key).get<std::decay_t<decltype(out)>>();
  };
  read("vocab_size", o.vocab_size);
  read("dim", o.dim);
  read("num_classes", o.num_classes);
  read("padding_idx", o.padding_idx);
  read("seed", o.seed);
  return o;
}

}  // namespace text_classifier
