// Dropout layer (Srivastava et al. 2014) with inverted scaling, matching torch.nn.Dropout; seeded, active only in
// training mode.
#pragma once

#include <cstdint>

#include "eigenformer/nn/module.hpp"
#include "eigenformer/ops/dropout.hpp"

namespace eigenformer::nn {

/// Zeroes elements with probability p in training and scales the rest by 1 / (1 - p); identity in eval.
template <typename T = float>
struct Dropout : Module<Dropout<T>, T> {
  struct Options {
    T p = T(0.5);
    std::uint64_t seed = 0;  // seeds this layer's own generator

    Options() = default;
    Options(T probability, std::uint64_t generator_seed = 0) : p(probability), seed(generator_seed) {}
    EIGENFORMER_FIELDS(p, seed)
  };

  Dropout() = default;
  explicit Dropout(const Options& o) : options(o), gen(o.seed) {
    if (!(o.p >= 0 && o.p <= 1))
      throw ValueError(eigenformer::detail::concat("Dropout: p is ", o.p, ", expected 0 <= p <= 1"));
  }

  Var<T> forward(const Var<T>& x) { return dropout(x, options.p, this->is_training(), gen); }
  /// Whether forward changes its input (training mode and p > 0).
  bool active() const { return this->is_training() && options.p > T(0); }

  template <class V>
  void visit(V& v) {
    v.generator("", gen);
  }

  Options options;
  Generator gen;
};

}  // namespace eigenformer::nn
