// A stack of encoder blocks with an optional final LayerNorm, matching torch.nn.TransformerEncoder (parameter
// names layers.N.* and norm.*).
#pragma once

#include <string>
#include <vector>

#include "eigenformer/nn/encoder_block.hpp"

namespace eigenformer::nn {

/// N encoder blocks applied in turn, then the optional final norm.
template <typename T = float>
struct Encoder : Module<Encoder<T>, T> {
  struct Options {
    typename EncoderBlock<T>::Options layer;
    Index num_layers = 6;
    bool final_norm = false;  // TransformerEncoder's norm argument (usual with norm_first)

    EIGENFORMER_FIELDS(layer, num_layers, final_norm)
  };

  Encoder() = default;
  Encoder(const Options& o, Generator& gen) : options(o) {
    if (o.num_layers < 0)
      throw ValueError(eigenformer::detail::concat("Encoder: num_layers is ", o.num_layers, ", expected >= 0"));
    for (Index i = 0; i < o.num_layers; ++i) {
      typename EncoderBlock<T>::Options lo = o.layer;
      lo.seed = o.layer.seed * 1000 + static_cast<std::uint64_t>(i);  // distinct dropout streams per layer
      layers.emplace_back(lo, gen);
    }
    if (o.final_norm) norm = LayerNorm<T>(typename LayerNorm<T>::Options(o.layer.d_model, o.layer.layer_norm_eps));
  }

  Var<T> forward(const Var<T>& x, const AttentionMask<T>& mask = {}) {
    Var<T> h = x;
    for (auto& layer : layers) h = layer.forward(h, mask);
    return options.final_norm ? norm.forward(h) : h;
  }

  template <class V>
  void visit(V& v) {
    v.modules("layers", layers);
    if (options.final_norm) v.module("norm", norm);
  }

  Options options;
  std::vector<EncoderBlock<T>> layers;
  LayerNorm<T> norm;
};

}  // namespace eigenformer::nn
