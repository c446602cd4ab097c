// Positional information added to token embeddings: none, a learned table (BERT, GPT-2), or the fixed sinusoids
// of "Attention Is All You Need" (Vaswani et al. 2017, section 3.5).
#pragma once

#include <cmath>

#include "eigenformer/core/fields.hpp"
#include "eigenformer/nn/module.hpp"
#include "eigenformer/ops/elementwise.hpp"
#include "eigenformer/ops/layout.hpp"

namespace eigenformer::nn {

enum class PositionalKind { none, learned, sinusoidal };

inline constexpr EnumNames<PositionalKind, 3> enum_names(PositionalKind) {
  return {{{PositionalKind::none, "none"}, {PositionalKind::learned, "learned"}, {PositionalKind::sinusoidal, "sinusoidal"}}};
}

/// Adds a position vector to each step of x (B, T, C); T must not exceed max_len.
template <typename T = float>
struct PositionalEncoding : Module<PositionalEncoding<T>, T> {
  struct Options {
    PositionalKind kind = PositionalKind::learned;
    Index max_len = 512;
    Index dim = 0;

    EIGENFORMER_FIELDS(kind, max_len, dim)
  };

  PositionalEncoding() = default;
  PositionalEncoding(const Options& o, Generator& gen) : options(o) {
    if (o.kind == PositionalKind::none) return;
    if (o.max_len <= 0 || o.dim <= 0)
      throw ValueError(eigenformer::detail::concat("PositionalEncoding: max_len is ", o.max_len, ", dim is ", o.dim,
                                                   ", expected both > 0"));
    if (o.kind == PositionalKind::learned) {
      weight = Var<T>(Tensor<T>::normal({o.max_len, o.dim}, T(0), T(1), gen), true);  // torch.nn.Embedding init
    } else {
      // PE(pos, 2i) = sin(pos / 10000^(2i / C)), PE(pos, 2i + 1) = cos(pos / 10000^(2i / C)), computed in double.
      Tensor<T> pe = Tensor<T>::empty({o.max_len, o.dim});
      for (Index pos = 0; pos < o.max_len; ++pos)
        for (Index i = 0; i < o.dim; ++i) {
          const double freq = std::pow(10000.0, -static_cast<double>(i - i % 2) / static_cast<double>(o.dim));
          const double a = static_cast<double>(pos) * freq;
          pe(pos, i) = static_cast<T>(i % 2 == 0 ? std::sin(a) : std::cos(a));
        }
      table = Var<T>(pe, false);
    }
  }

  /// x: (B, T, C) -> x + PE[:T]; throws ValueError when T > max_len.
  Var<T> forward(const Var<T>& x) const {
    if (options.kind == PositionalKind::none) return x;
    if (x.dim() != 3 || x.size(2) != options.dim)
      throw ShapeError(eigenformer::detail::concat("PositionalEncoding: x is ", to_string(x.shape()),
                                                   ", expected (B, T, ", options.dim, ")"));
    const Index Tn = x.size(1);
    if (Tn > options.max_len)
      throw ValueError(eigenformer::detail::concat("PositionalEncoding: sequence length ", Tn,
                                                   " exceeds the positional table's max_len ", options.max_len));
    const Var<T>& src = positions();
    Var<T> rows = Tn == options.max_len ? src : split(src, {Tn, options.max_len - Tn}, 0)[0];
    return add(x, rows);  // (B, T, C) + (T, C) broadcasts over the batch
  }

  /// The (max_len, dim) table whose rows forward() adds: the learned weight or the sinusoids; undefined for none.
  const Var<T>& positions() const { return options.kind == PositionalKind::learned ? weight : table; }

  template <class V>
  void visit(V& v) {
    v.parameter("weight", weight);
    if (table.defined()) v.buffer("table", table.value(), Persistence::non_persistent);
  }

  Options options;
  Var<T> weight;  // learned: (max_len, dim), a parameter
  Var<T> table;   // sinusoidal: (max_len, dim), a constant buffer
};

}  // namespace eigenformer::nn
