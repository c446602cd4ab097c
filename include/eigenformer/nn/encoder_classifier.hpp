// A transformer encoder classifier: token embedding, positional encoding, encoder stack and classification head;
// with default options it is the seed demo's MiniTransformerClassifier, under the same state-dict names
// (embedding.weight, pos_embedding.weight, encoder.layers.N.*, encoder.norm.*, classifier.0.*, classifier.1.*).
#pragma once

#include <algorithm>
#include <cstdint>
#include <exception>
#include <vector>

#include "eigenformer/core/parallel.hpp"
#include "eigenformer/core/small_object_pool.hpp"
#include "eigenformer/nn/classifier_head.hpp"
#include "eigenformer/nn/embedding.hpp"
#include "eigenformer/nn/encoder.hpp"
#include "eigenformer/nn/positional_encoding.hpp"
#include "eigenformer/ops/gemm.hpp"

namespace eigenformer::nn {

/// Whether EncoderClassifier::forward runs parts of the batch on threads of their own (see Options::batch_split).
enum class BatchSplit { automatic, never, always };

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
    /// On more than one thread, a forward without a graph (under NoGradGuard: inference) may give each thread
    /// whole sequences of the batch, the forward of its part running on that thread alone, instead of running the
    /// batch's ops one after another, each split across the threads. Never while dropout is active (the masks
    /// stay those of the unsplit batch) or inside a parallel region. automatic: when each part is large enough to
    /// pay for a fork (5e7 flops) and, unless each part's products run on a one-thread BLAS (the default build
    /// after set_num_threads), the largest weight matrix is at most 4 MiB: the packed kernel packs all of a
    /// weight into a buffer per thread (model_bench's base-layer, 9 MiB weights, split: inference at two threads
    /// 5-10% faster on the packed kernel, but peak RSS 16 MiB higher; 5-7% faster on OpenBLAS, RSS unchanged).
    /// The logits equal the unsplit forward's up to rounding.
    BatchSplit batch_split = BatchSplit::automatic;
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
    check_inputs(ids, padding_mask);
    const Index parts = batch_parts(ids);
    if (parts > 1) return forward_split(ids, padding_mask, parts);
    return head.forward(encode_checked(ids, padding_mask), padding_mask);
  }

  /// The encoder output (B, T, d_model).
  Var<T> encode(const Tensor<std::int64_t>& ids, const Tensor<bool>& padding_mask = {}) {
    check_inputs(ids, padding_mask);
    return encode_checked(ids, padding_mask);
  }

  /// Into how many parts forward splits a batch of these ids (B, T) (1: not split); see Options::batch_split.
  Index batch_parts(const Tensor<std::int64_t>& ids) const {
    if (ids.dim() != 2)
      throw ShapeError(eigenformer::detail::concat("EncoderClassifier::batch_parts: ids is ", to_string(ids.shape()),
                                                   ", expected (B, T)"));
    const Index threads = std::min<Index>(num_threads(), ids.size(0));
    if (threads < 2 || options.batch_split == BatchSplit::never || eigenformer::detail::in_parallel_region() ||
        is_grad_enabled())
      return 1;
    if (this->is_training() && options.dropout > T(0)) return 1;
    if (options.batch_split == BatchSplit::always) return threads;
    const double C = double(options.d_model), F = double(options.dim_feedforward);
    const double tokens = double(ids.size(0) / threads) * double(ids.size(1));
    const double flops = 2 * tokens * (4 * C * C + 2 * C * F + 2 * double(ids.size(1)) * C) * double(options.num_layers);
    const double largest_weight = std::max(3 * C * C, C * F) * double(sizeof(T));
    const bool weights_fit = eigenformer::detail::whole_part_products_on_blas<T>() || largest_weight <= double(4 << 20);
    return flops >= 5e7 && weights_fit ? threads : 1;
  }

 private:
  /// encode() after check_inputs.
  Var<T> encode_checked(const Tensor<std::int64_t>& ids, const Tensor<bool>& padding_mask) {
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

  /// The PartBuffers of forward_split's parts, one set per thread that calls forward (so that concurrent
  /// forwards from several threads never share one).
  static std::vector<eigenformer::detail::PartBuffers>& calling_thread_part_buffers() {
    thread_local std::vector<eigenformer::detail::PartBuffers> sets;
    return sets;
  }

  /// forward without a graph on `parts` threads, each running the encoder and head on consecutive whole sequences
  /// of the batch and writing its rows of the logits. Every tensor a part makes is freed on the thread that made
  /// it, so the per-thread pools of small blocks stay balanced, and its buffers come from that part's own
  /// PartBuffers (one set per calling thread), so the parts' interleaving does not decide which buffers each gets:
  /// no allocation in the steady state.
  Var<T> forward_split(const Tensor<std::int64_t>& ids, const Tensor<bool>& padding_mask, Index parts) {
    using ErrorList = std::vector<std::exception_ptr, eigenformer::detail::PoolAllocator<std::exception_ptr>>;
    const Index B = ids.size(0), L = ids.size(1), classes = options.num_classes;
    Tensor<T> y = Tensor<T>::empty({B, classes});
    ErrorList errors(static_cast<std::size_t>(parts));
    // The calling thread's set, named through a reference: the parts' lambda must not name the thread_local
    // itself, which on a worker thread would be that thread's own (empty) set.
    std::vector<eigenformer::detail::PartBuffers>& part_buffers = calling_thread_part_buffers();
    if (part_buffers.size() < static_cast<std::size_t>(parts)) part_buffers.resize(static_cast<std::size_t>(parts));
    struct ReleaseParts {  // after the parts, even when one throws: every buffer back to the shared cache
      std::vector<eigenformer::detail::PartBuffers>& parts;
      ~ReleaseParts() {
        for (auto& part : parts) part.release();
      }
    } release_parts{part_buffers};
    for (Index p = 0; p < parts; ++p) part_buffers[static_cast<std::size_t>(p)].reserve();
    auto run_part = [&](Index p) {
      // First: every tensor of the part, its inputs included, comes from and returns to the part's own buffers.
      eigenformer::detail::PartBuffersScope buffers(part_buffers[static_cast<std::size_t>(p)]);
      const Index b0 = p * B / parts, rows = (p + 1) * B / parts - b0;
      Tensor<std::int64_t> part_ids = Tensor<std::int64_t>::empty({rows, L});
      std::copy_n(ids.data() + b0 * L, rows * L, part_ids.data());
      Tensor<bool> part_mask;
      if (padding_mask.defined()) {
        part_mask = Tensor<bool>::empty({rows, L});
        std::copy_n(padding_mask.data() + b0 * L, rows * L, part_mask.data());
      }
      NoGradGuard no_grad;  // the mode is per thread: the caller's (off) for every part
      eigenformer::detail::WholePartGuard whole_part;
      const Var<T> logits = head.forward(encode_checked(part_ids, part_mask), part_mask);
      std::copy_n(logits.value().data(), rows * classes, y.data() + b0 * classes);
    };
#ifdef _OPENMP
#pragma omp parallel for num_threads(static_cast<int>(parts)) schedule(static, 1)
#endif
    for (Index p = 0; p < parts; ++p) {
      try {
        run_part(p);
      } catch (...) {
        errors[static_cast<std::size_t>(p)] = std::current_exception();
      }
    }
    for (const auto& e : errors)
      if (e) std::rethrow_exception(e);
    return Var<T>(std::move(y));
  }

 public:
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
