// BERT (Devlin et al. 2019) with the module names, configuration and arithmetic of Hugging Face transformers'
// modeling_bert: BertModel (embeddings, post-norm encoder layers with separate query / key / value projections,
// the tanh pooler), BertForSequenceClassification and BertForMaskedLM (its decoder tied to the word embeddings).
// State-dict names are transformers' (bert.embeddings.word_embeddings.weight,
// bert.encoder.layer.0.attention.self.query.weight, ..., classifier.weight); nn/bert_pretrained.hpp reads and
// writes Hugging Face model folders.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "eigenformer/core/fields.hpp"
#include "eigenformer/nn/activation.hpp"
#include "eigenformer/nn/dropout.hpp"
#include "eigenformer/nn/embedding.hpp"
#include "eigenformer/nn/layer_norm.hpp"
#include "eigenformer/nn/linear.hpp"
#include "eigenformer/nn/module.hpp"
#include "eigenformer/ops/attention.hpp"
#include "eigenformer/ops/layout.hpp"
#include "eigenformer/runtime/inference.hpp"

namespace eigenformer::nn {

/// BERT's configuration under transformers' BertConfig names and defaults (bert-base-uncased's shape).
struct BertConfig {
  Index vocab_size = 30522;
  Index hidden_size = 768;
  Index num_hidden_layers = 12;
  Index num_attention_heads = 12;
  Index intermediate_size = 3072;
  Activation hidden_act = Activation::gelu;
  double hidden_dropout_prob = 0.1;
  double attention_probs_dropout_prob = 0.1;
  Index max_position_embeddings = 512;
  Index type_vocab_size = 2;
  double initializer_range = 0.02;
  double layer_norm_eps = 1e-12;
  Index pad_token_id = 0;
  double classifier_dropout = -1;  // below 0: hidden_dropout_prob (transformers' None)
  std::vector<std::string> labels = {"LABEL_0", "LABEL_1"};  // id2label, in id order: num_labels is its size
  std::uint64_t seed = 0;  // initialization and dropout streams

  EIGENFORMER_FIELDS(vocab_size, hidden_size, num_hidden_layers, num_attention_heads, intermediate_size, hidden_act,
                     hidden_dropout_prob, attention_probs_dropout_prob, max_position_embeddings, type_vocab_size,
                     initializer_range, layer_norm_eps, pad_token_id, classifier_dropout, labels, seed)

  Index num_labels() const { return static_cast<Index>(labels.size()); }
  /// Throws ValueError naming the first field out of range.
  void check(const char* fn) const {
    using eigenformer::detail::concat;
    const auto positive = [fn](const char* name, Index v) {
      if (v <= 0) throw ValueError(concat(fn, ": ", name, " is ", v, ", expected > 0"));
    };
    positive("vocab_size", vocab_size);
    positive("hidden_size", hidden_size);
    positive("num_attention_heads", num_attention_heads);
    positive("intermediate_size", intermediate_size);
    positive("max_position_embeddings", max_position_embeddings);
    positive("type_vocab_size", type_vocab_size);
    positive("num_labels", num_labels());
    if (num_hidden_layers < 0)
      throw ValueError(concat(fn, ": num_hidden_layers is ", num_hidden_layers, ", expected >= 0"));
    if (hidden_size % num_attention_heads != 0)
      throw ValueError(concat(fn, ": hidden_size ", hidden_size, " is not a multiple of num_attention_heads ",
                              num_attention_heads));
    for (const auto& [name, p] : {std::pair<const char*, double>{"hidden_dropout_prob", hidden_dropout_prob},
                                  {"attention_probs_dropout_prob", attention_probs_dropout_prob}})
      if (!(p >= 0 && p <= 1)) throw ValueError(concat(fn, ": ", name, " is ", p, ", expected 0 <= p <= 1"));
    if (!(classifier_dropout <= 1)) throw ValueError(concat(fn, ": classifier_dropout is ", classifier_dropout, ", expected <= 1"));
    if (!(layer_norm_eps > 0)) throw ValueError(concat(fn, ": layer_norm_eps is ", layer_norm_eps, ", expected > 0"));
    if (!(initializer_range >= 0))
      throw ValueError(concat(fn, ": initializer_range is ", initializer_range, ", expected >= 0"));
    if (pad_token_id < -1 || pad_token_id >= vocab_size)
      throw ValueError(concat(fn, ": pad_token_id is ", pad_token_id, ", expected -1 or 0 <= id < vocab_size ",
                              vocab_size));
  }
};

namespace detail {

/// A dropout of probability p seeded from the model's seed and a stream number.
template <typename T>
Dropout<T> bert_dropout(double p, std::uint64_t seed, std::uint64_t stream) {
  return Dropout<T>(typename Dropout<T>::Options(static_cast<T>(p), seed * 1000003 + stream));
}

/// transformers' _init_weights for BERT: every Linear and Embedding weight N(0, initializer_range), biases 0, the
/// padding row of the word embeddings 0, LayerNorms 1 and 0.
template <typename T, class Model>
void bert_init(Model& model, const BertConfig& c, std::uint64_t stream) {
  Generator gen(c.seed * 1000003 + stream);
  const T stddev = static_cast<T>(c.initializer_range);
  model.apply([&](const std::string&, auto& m) {
    using M = std::decay_t<decltype(m)>;
    if constexpr (std::is_same_v<M, Linear<T>>) {
      m.weight.value() = Tensor<T>::normal(m.weight.shape(), T(0), stddev, gen);
      if (m.bias.defined()) m.bias.value().set_zero();
    } else if constexpr (std::is_same_v<M, Embedding<T>>) {
      m.weight.value() = Tensor<T>::normal(m.weight.shape(), T(0), stddev, gen);
      if (m.options.padding_idx >= 0) m.weight.value().matrix().row(m.options.padding_idx).setZero();
    } else if constexpr (std::is_same_v<M, LayerNorm<T>>) {
      m.weight.value().fill(T(1));
      m.bias.value().set_zero();
    }
  });
}

}  // namespace detail

/// Word, position and token-type embeddings, summed, then LayerNorm and dropout (transformers' BertEmbeddings).
template <typename T = float>
struct BertEmbeddings : Module<BertEmbeddings<T>, T> {
  BertEmbeddings() = default;
  BertEmbeddings(const BertConfig& c, Generator& gen) {
    const Index C = c.hidden_size;
    word_embeddings = Embedding<T>(typename Embedding<T>::Options(c.vocab_size, C, c.pad_token_id), gen);
    position_embeddings = Embedding<T>(typename Embedding<T>::Options(c.max_position_embeddings, C), gen);
    token_type_embeddings = Embedding<T>(typename Embedding<T>::Options(c.type_vocab_size, C), gen);
    LayerNorm_ = nn::LayerNorm<T>(typename nn::LayerNorm<T>::Options(C, static_cast<T>(c.layer_norm_eps)));
    dropout = detail::bert_dropout<T>(c.hidden_dropout_prob, c.seed, 1);
    position_ids = Tensor<std::int64_t>::empty({1, c.max_position_embeddings});
    for (Index i = 0; i < c.max_position_embeddings; ++i) position_ids[i] = i;
  }

  /// ids (B, T) and token types (B, T) (undefined: type 0 everywhere) -> (B, T, C).
  Var<T> forward(const Tensor<std::int64_t>& ids, const Tensor<std::int64_t>& token_type_ids = {}) {
    // Word and position vectors in one op; positions 0 .. T - 1.
    Var<T> x = word_embeddings.forward_add_positions(ids, position_embeddings.weight);
    x = token_type_ids.defined() ? add(x, token_type_embeddings.forward(token_type_ids))
                                 : add(x, token_type_embeddings.forward(Tensor<std::int64_t>::zeros({1})));
    return dropout.forward(LayerNorm_.forward(x));
  }

  template <class V>
  void visit(V& v) {
    v.module("word_embeddings", word_embeddings);
    v.module("position_embeddings", position_embeddings);
    v.module("token_type_embeddings", token_type_embeddings);
    v.module("LayerNorm", LayerNorm_);
    v.module("dropout", dropout);
    v.buffer("position_ids", position_ids, Persistence::non_persistent);
  }

  Embedding<T> word_embeddings, position_embeddings, token_type_embeddings;
  nn::LayerNorm<T> LayerNorm_;
  Dropout<T> dropout;
  Tensor<std::int64_t> position_ids;  // (1, max_position_embeddings): 0, 1, ...
};

/// Multi-head self-attention with separate query, key and value projections (transformers' BertSelfAttention).
template <typename T = float>
struct BertSelfAttention : Module<BertSelfAttention<T>, T> {
  BertSelfAttention() = default;
  BertSelfAttention(const BertConfig& c, Generator& gen, std::uint64_t stream)
      : heads(c.num_attention_heads), probs_dropout(static_cast<T>(c.attention_probs_dropout_prob)),
        dropout_gen(c.seed * 1000003 + stream) {
    const typename Linear<T>::Options proj(c.hidden_size, c.hidden_size);
    query = Linear<T>(proj, gen);
    key = Linear<T>(proj, gen);
    value = Linear<T>(proj, gen);
  }

  /// x (B, T, C) -> the heads' context (B, T, C).
  Var<T> forward(const Var<T>& x, const AttentionMask<T>& mask) {
    AttentionOptions<T> opt;
    opt.dropout = this->is_training() ? probs_dropout : T(0);
    opt.gen = &dropout_gen;
    return multi_head_attention(query.forward(x), key.forward(x), value.forward(x), heads, mask, opt);
  }

  template <class V>
  void visit(V& v) {
    v.module("query", query);
    v.module("key", key);
    v.module("value", value);
    v.generator("", dropout_gen);
  }

  Linear<T> query, key, value;
  Index heads = 1;
  T probs_dropout = T(0);  // on the attention probabilities, in training
  Generator dropout_gen;
};

/// A sublayer's output: LayerNorm(dropout(dense(h)) + input) (transformers' BertSelfOutput and BertOutput).
template <typename T = float>
struct BertResidualOutput : Module<BertResidualOutput<T>, T> {
  BertResidualOutput() = default;
  BertResidualOutput(const BertConfig& c, Index in_features, Generator& gen, std::uint64_t stream) {
    dense = Linear<T>(typename Linear<T>::Options(in_features, c.hidden_size), gen);
    LayerNorm_ = nn::LayerNorm<T>(typename nn::LayerNorm<T>::Options(c.hidden_size, static_cast<T>(c.layer_norm_eps)));
    dropout = detail::bert_dropout<T>(c.hidden_dropout_prob, c.seed, stream);
  }

  Var<T> forward(const Var<T>& h, const Var<T>& input) {
    // Without dropout the residual is added by dense's own GEMM.
    if (!dropout.active()) return LayerNorm_.forward(dense.forward_add(h, input));
    return LayerNorm_.forward(add(dropout.forward(dense.forward(h)), input));
  }

  template <class V>
  void visit(V& v) {
    v.module("dense", dense);
    v.module("LayerNorm", LayerNorm_);
    v.module("dropout", dropout);
  }

  Linear<T> dense;
  nn::LayerNorm<T> LayerNorm_;
  Dropout<T> dropout;
};

/// attention.self then attention.output (transformers' BertAttention).
template <typename T = float>
struct BertAttention : Module<BertAttention<T>, T> {
  BertAttention() = default;
  BertAttention(const BertConfig& c, Generator& gen, std::uint64_t stream)
      : self(c, gen, stream), output(c, c.hidden_size, gen, stream + 1) {}

  Var<T> forward(const Var<T>& x, const AttentionMask<T>& mask) { return output.forward(self.forward(x, mask), x); }

  template <class V>
  void visit(V& v) {
    v.module("self", self);
    v.module("output", output);
  }

  BertSelfAttention<T> self;
  BertResidualOutput<T> output;
};

/// dense to intermediate_size, then the activation (transformers' BertIntermediate).
template <typename T = float>
struct BertIntermediate : Module<BertIntermediate<T>, T> {
  BertIntermediate() = default;
  BertIntermediate(const BertConfig& c, Generator& gen) : act(c.hidden_act) {
    dense = Linear<T>(typename Linear<T>::Options(c.hidden_size, c.intermediate_size), gen);
  }
  Var<T> forward(const Var<T>& x) { return dense.forward_activation(x, act); }

  template <class V>
  void visit(V& v) {
    v.module("dense", dense);
  }

  Linear<T> dense;
  Activation act = Activation::gelu;
};

/// One encoder layer: attention, then the feed-forward sublayer (transformers' BertLayer).
template <typename T = float>
struct BertLayer : Module<BertLayer<T>, T> {
  BertLayer() = default;
  BertLayer(const BertConfig& c, Generator& gen, std::uint64_t stream)
      : attention(c, gen, stream), intermediate(c, gen), output(c, c.intermediate_size, gen, stream + 2) {}

  Var<T> forward(const Var<T>& x, const AttentionMask<T>& mask) {
    const Var<T> a = attention.forward(x, mask);
    return output.forward(intermediate.forward(a), a);
  }

  template <class V>
  void visit(V& v) {
    v.module("attention", attention);
    v.module("intermediate", intermediate);
    v.module("output", output);
  }

  BertAttention<T> attention;
  BertIntermediate<T> intermediate;
  BertResidualOutput<T> output;
};

/// What BertModel::forward returns.
template <typename T>
struct BertModelOutput {
  Var<T> last_hidden_state;           // (B, T, C)
  Var<T> pooler_output;               // (B, C): tanh(dense(CLS)); undefined without a pooler
  std::vector<Var<T>> hidden_states;  // with output_hidden_states: the embeddings' output, then each layer's
};

/// The padding mask (true = padding) of a transformers attention_mask (1 = attend, 0 = padding).
inline Tensor<bool> padding_mask_from_attention_mask(const Tensor<std::int64_t>& attention_mask) {
  if (!attention_mask.defined()) return {};
  Tensor<bool> pad = Tensor<bool>::empty(attention_mask.shape());
  for (Index i = 0; i < pad.numel(); ++i) {
    const std::int64_t m = attention_mask[i];
    if (m != 0 && m != 1)
      throw ValueError(eigenformer::detail::concat("padding_mask_from_attention_mask: element ", i, " is ", m,
                                                   ", expected 0 (padding) or 1"));
    pad[i] = m == 0;
  }
  return pad;
}

/// The bare encoder (transformers' BertModel): embeddings, the encoder layers, and the pooler when asked for.
template <typename T = float>
struct BertModel : Module<BertModel<T>, T> {
  using Config = BertConfig;

  BertModel() = default;
  explicit BertModel(const BertConfig& c, bool add_pooling_layer = true) : config(c) {
    c.check("BertModel");
    Generator gen(c.seed);
    embeddings = BertEmbeddings<T>(c, gen);
    for (Index i = 0; i < c.num_hidden_layers; ++i)
      layers.emplace_back(c, gen, 10 + 10 * static_cast<std::uint64_t>(i));
    if (add_pooling_layer) pooler = Linear<T>(typename Linear<T>::Options(c.hidden_size, c.hidden_size), gen);
    has_pooler = add_pooling_layer;
    detail::bert_init<T>(*this, c, 1);
  }

  /// ids (B, T) in [0, vocab_size); padding_mask (B, T), true = padding (optional; see
  /// padding_mask_from_attention_mask); token_type_ids (B, T) in [0, type_vocab_size) (optional: all 0).
  BertModelOutput<T> forward(const Tensor<std::int64_t>& ids, const Tensor<bool>& padding_mask = {},
                             const Tensor<std::int64_t>& token_type_ids = {}, bool output_hidden_states = false) {
    check_inputs(ids, padding_mask, token_type_ids);
    BertModelOutput<T> out;
    AttentionMask<T> mask;
    mask.key_padding = padding_mask;
    Var<T> h = embeddings.forward(ids, token_type_ids);
    if (output_hidden_states) out.hidden_states.push_back(h);
    for (auto& layer : layers) {
      h = layer.forward(h, mask);
      if (output_hidden_states) out.hidden_states.push_back(h);
    }
    out.last_hidden_state = h;
    if (has_pooler) out.pooler_output = tanh(pooler.forward(select(h, 1, 0)));
    return out;
  }

  /// The work of a forward over batch sequences of length tokens: per layer the four projections, the
  /// feed-forward and the two attention products.
  ForwardCost forward_cost(Index batch, Index length) const {
    const double C = double(config.hidden_size), F = double(config.intermediate_size);
    const double tokens = double(batch) * double(length);
    ForwardCost cost;
    cost.flops = 2 * tokens * (4 * C * C + 2 * C * F + 2 * double(length) * C) * double(config.num_hidden_layers);
    cost.largest_weight_bytes = C * F * double(sizeof(T));
    return cost;
  }

  template <class V>
  void visit(V& v) {
    v.module("embeddings", embeddings);
    v.modules("encoder.layer", layers);
    if (has_pooler) v.module("pooler.dense", pooler);
  }

  BertConfig config;
  BertEmbeddings<T> embeddings;
  std::vector<BertLayer<T>> layers;  // encoder.layer.N
  Linear<T> pooler;                  // pooler.dense, when has_pooler
  bool has_pooler = true;

 private:
  void check_inputs(const Tensor<std::int64_t>& ids, const Tensor<bool>& padding_mask,
                    const Tensor<std::int64_t>& token_type_ids) const {
    using eigenformer::detail::concat;
    const char* fn = "BertModel::forward";
    if (ids.dim() != 2 || ids.size(0) == 0 || ids.size(1) == 0)
      throw ShapeError(concat(fn, ": input_ids is ", to_string(ids.shape()), ", expected (B, T) with B, T > 0"));
    if (ids.size(1) > config.max_position_embeddings)
      throw ValueError(concat(fn, ": sequence length ", ids.size(1), " exceeds max_position_embeddings ",
                              config.max_position_embeddings));
    for (Index i = 0; i < ids.numel(); ++i)
      if (ids[i] < 0 || ids[i] >= config.vocab_size)
        throw ValueError(concat(fn, ": token id ", ids[i], " at position (", i / ids.size(1), ", ", i % ids.size(1),
                                ") is out of range, expected 0 <= id < vocab_size = ", config.vocab_size));
    if (padding_mask.defined() && padding_mask.shape() != ids.shape())
      throw ShapeError(concat(fn, ": padding_mask is ", to_string(padding_mask.shape()), ", expected ",
                              to_string(ids.shape())));
    if (token_type_ids.defined()) {
      if (token_type_ids.shape() != ids.shape())
        throw ShapeError(concat(fn, ": token_type_ids is ", to_string(token_type_ids.shape()), ", expected ",
                                to_string(ids.shape())));
      for (Index i = 0; i < token_type_ids.numel(); ++i)
        if (token_type_ids[i] < 0 || token_type_ids[i] >= config.type_vocab_size)
          throw ValueError(concat(fn, ": token type ", token_type_ids[i], " at position (", i / ids.size(1), ", ",
                                  i % ids.size(1), ") is out of range, expected 0 <= type < type_vocab_size = ",
                                  config.type_vocab_size));
    }
  }
};

/// BERT with a classifier on the pooled [CLS] vector (transformers' BertForSequenceClassification): ids (B, T) ->
/// logits (B, num_labels).
template <typename T = float>
struct BertForSequenceClassification : Module<BertForSequenceClassification<T>, T> {
  using Config = BertConfig;

  BertForSequenceClassification() = default;
  explicit BertForSequenceClassification(const BertConfig& c) : bert(c, true) {
    Generator gen(c.seed * 1000003 + 7);
    const double p = c.classifier_dropout >= 0 ? c.classifier_dropout : c.hidden_dropout_prob;
    dropout = detail::bert_dropout<T>(p, c.seed, 2);
    classifier = Linear<T>(typename Linear<T>::Options(c.hidden_size, c.num_labels()), gen);
    detail::bert_init<T>(classifier, c, 3);
  }

  Var<T> forward(const Tensor<std::int64_t>& ids, const Tensor<bool>& padding_mask = {},
                 const Tensor<std::int64_t>& token_type_ids = {}) {
    return classifier.forward(dropout.forward(bert.forward(ids, padding_mask, token_type_ids).pooler_output));
  }
  ForwardCost forward_cost(Index batch, Index length) const { return bert.forward_cost(batch, length); }
  const BertConfig& config() const { return bert.config; }

  template <class V>
  void visit(V& v) {
    v.module("bert", bert);
    v.module("dropout", dropout);
    v.module("classifier", classifier);
  }

  BertModel<T> bert;
  Dropout<T> dropout;
  Linear<T> classifier;  // (num_labels, C)
};

/// The masked-LM head: transform (dense, activation, LayerNorm) then the decoder, whose weight is the word
/// embeddings' and whose bias is this head's (transformers' BertLMPredictionHead, under cls.predictions).
template <typename T = float>
struct BertLMPredictionHead : Module<BertLMPredictionHead<T>, T> {
  BertLMPredictionHead() = default;
  BertLMPredictionHead(const BertConfig& c, const Var<T>& word_embeddings, Generator& gen) : act(c.hidden_act) {
    dense = Linear<T>(typename Linear<T>::Options(c.hidden_size, c.hidden_size), gen);
    LayerNorm_ = nn::LayerNorm<T>(typename nn::LayerNorm<T>::Options(c.hidden_size, static_cast<T>(c.layer_norm_eps)));
    bias = Var<T>(Tensor<T>::zeros({c.vocab_size}), true);
    decoder.weight = word_embeddings;  // tied: the same parameter
    decoder.bias = bias;
    decoder.options = typename Linear<T>::Options(c.hidden_size, c.vocab_size);
  }

  /// h (..., C) -> logits (..., vocab_size).
  Var<T> forward(const Var<T>& h) { return decoder.forward(LayerNorm_.forward(dense.forward_activation(h, act))); }

  template <class V>
  void visit(V& v) {
    v.module("transform.dense", dense);
    v.module("transform.LayerNorm", LayerNorm_);
    v.parameter("bias", bias);      // before the decoder, whose bias it is: the parameter keeps this name
    v.module("decoder", decoder);
  }

  Linear<T> dense;
  nn::LayerNorm<T> LayerNorm_;
  Var<T> bias;      // (vocab_size)
  Linear<T> decoder;  // weight = bert.embeddings.word_embeddings.weight, bias = bias
  Activation act = Activation::gelu;
};

/// BERT with the masked-LM head (transformers' BertForMaskedLM; no pooler): ids (B, T) -> logits (B, T, vocab).
template <typename T = float>
struct BertForMaskedLM : Module<BertForMaskedLM<T>, T> {
  using Config = BertConfig;

  BertForMaskedLM() = default;
  explicit BertForMaskedLM(const BertConfig& c) : bert(c, false) {
    Generator gen(c.seed * 1000003 + 11);
    head = BertLMPredictionHead<T>(c, bert.embeddings.word_embeddings.weight, gen);
    detail::bert_init<T>(head, c, 5);
  }

  /// Logits at every position (B, T, vocab_size).
  Var<T> forward(const Tensor<std::int64_t>& ids, const Tensor<bool>& padding_mask = {},
                 const Tensor<std::int64_t>& token_type_ids = {}) {
    return head.forward(bert.forward(ids, padding_mask, token_type_ids).last_hidden_state);
  }

  /// Logits (N, vocab_size) at N positions of the batch, given as flat indices b * T + t: the head runs on those
  /// rows only (masked-LM training predicts about 15% of the positions; the decoder is the largest product).
  Var<T> forward_at(const Tensor<std::int64_t>& ids, const Tensor<bool>& padding_mask,
                    const Tensor<std::int64_t>& token_type_ids, const Tensor<std::int64_t>& positions) {
    const Var<T> h = bert.forward(ids, padding_mask, token_type_ids).last_hidden_state;  // (B, T, C)
    return head.forward(index_select(reshape(h, {-1, bert.config.hidden_size}), 0, positions));
  }

  ForwardCost forward_cost(Index batch, Index length) const {
    ForwardCost cost = bert.forward_cost(batch, length);
    cost.flops += 2 * double(batch) * double(length) * double(bert.config.hidden_size) *
                  (double(bert.config.vocab_size) + double(bert.config.hidden_size));
    cost.largest_weight_bytes = std::max(cost.largest_weight_bytes, double(bert.config.vocab_size) *
                                                                        double(bert.config.hidden_size) * sizeof(T));
    return cost;
  }
  const BertConfig& config() const { return bert.config; }

  template <class V>
  void visit(V& v) {
    v.module("bert", bert);
    v.module("cls.predictions", head);
  }

  BertModel<T> bert;
  BertLMPredictionHead<T> head;
};

}  // namespace eigenformer::nn
