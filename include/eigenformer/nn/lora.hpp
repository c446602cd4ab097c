// LoRA (Hu et al. 2021): a frozen Linear W gets a trainable low-rank update, y = x W^T + b + (alpha / r) B A x with
// A (r, in) and B (out, r), B starting at zero so that training starts from the pretrained model. Adapters attach
// to any Linear by name (PEFT's target_modules: query and value by default); every module calls its Linears'
// forward, so an adapter applies wherever its Linear is used. Adapters save to a small folder in PEFT's format
// (adapter_model.safetensors + adapter_config.json) and merge into the base weights for inference.
#pragma once

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "eigenformer/core/fields.hpp"
#include "eigenformer/nn/dropout.hpp"
#include "eigenformer/nn/init.hpp"
#include "eigenformer/nn/module.hpp"
#include "eigenformer/ops/elementwise.hpp"
#include "eigenformer/ops/linear.hpp"

namespace eigenformer::nn {

template <typename T>
struct Linear;

/// What add_lora attaches and where (PEFT's LoraConfig).
struct LoraOptions {
  Index rank = 8;       // r
  double alpha = 16;    // lora_alpha: the update is scaled by alpha / r
  double dropout = 0;   // lora_dropout, on the adapter's input
  /// Linears whose path is one of these or ends with "." and one of these (PEFT's target_modules).
  std::vector<std::string> targets = {"query", "value"};
  /// Modules trained in full beside the adapters (PEFT's modules_to_save), e.g. a new classifier head.
  std::vector<std::string> trainable = {"classifier"};
  std::uint64_t seed = 0;

  EIGENFORMER_FIELDS(rank, alpha, dropout, targets, trainable, seed)
};

/// The low-rank update of one Linear: delta(x) = (alpha / r) * dropout(x) A^T B^T.
template <typename T = float>
struct LoraAdapter : Module<LoraAdapter<T>, T> {
  LoraAdapter() = default;
  /// A like a Linear's default initialization (PEFT's kaiming_uniform_ with a = sqrt(5)), B zero.
  LoraAdapter(Index in_features, Index out_features, const LoraOptions& o, std::uint64_t seed)
      : scaling(static_cast<T>(o.alpha / static_cast<double>(o.rank))) {
    Generator gen(seed);
    A = Var<T>(init::linear_default<T>({o.rank, in_features}, in_features, gen), true);
    B = Var<T>(Tensor<T>::zeros({out_features, o.rank}), true);
    dropout = Dropout<T>(typename Dropout<T>::Options(static_cast<T>(o.dropout), seed + 1));
  }

  /// x (..., in) -> the update (..., out).
  Var<T> delta(const Var<T>& x) { return scale(linear(linear(dropout.forward(x), A), B), scaling); }

  template <class V>
  void visit(V& v) {
    v.parameter("lora_A.weight", A);
    v.parameter("lora_B.weight", B);
    v.module("lora_dropout", dropout);
  }

  Var<T> A;  // (r, in)
  Var<T> B;  // (out, r)
  Dropout<T> dropout;
  T scaling = T(1);
};

namespace detail {

inline bool lora_target(const std::string& path, const std::vector<std::string>& targets) {
  for (const std::string& t : targets)
    if (path == t || (path.size() > t.size() && path.compare(path.size() - t.size(), t.size(), t) == 0 &&
                      path[path.size() - t.size() - 1] == '.'))
      return true;
  return false;
}

template <class M>
struct IsLinear : std::false_type {};
template <typename T>
struct IsLinear<Linear<T>> : std::true_type {};

}  // namespace detail

/// Attaches an adapter to every Linear that options.targets names, then freezes every parameter but the adapters'
/// and those of the modules options.trainable names. Returns how many Linears got an adapter; throws ValueError
/// when none matches, for a rank < 1 or a Linear that already has one.
template <class Model>
Index add_lora(Model& model, const LoraOptions& options) {
  using eigenformer::detail::concat;
  if (options.rank < 1) throw ValueError(concat("add_lora: rank is ", options.rank, ", expected >= 1"));
  if (!(options.dropout >= 0 && options.dropout <= 1))
    throw ValueError(concat("add_lora: dropout is ", options.dropout, ", expected 0 <= dropout <= 1"));
  Index count = 0;
  model.apply([&](const std::string& path, auto& m) {
    using M = std::decay_t<decltype(m)>;
    if constexpr (detail::IsLinear<M>::value) {
      if (!detail::lora_target(path, options.targets)) return;
      if (m.adapter) throw ValueError(concat("add_lora: '", path, "' already has an adapter"));
      using T = typename M::Scalar;
      m.adapter = std::make_shared<LoraAdapter<T>>(m.options.in_features, m.options.out_features, options,
                                                   options.seed * 1000003 + static_cast<std::uint64_t>(count));
      ++count;
    }
  });
  if (count == 0) {
    std::string names;
    for (const std::string& t : options.targets) names += (names.empty() ? "\"" : ", \"") + t + "\"";
    throw ValueError(concat("add_lora: no Linear of the model is called ", names));
  }
  model.visit_parameters([&](const std::string& name, auto& p) {
    const bool adapter = name.find("lora_A.") != std::string::npos || name.find("lora_B.") != std::string::npos;
    bool kept = false;
    for (const std::string& t : options.trainable)
      kept = kept || name.rfind(t + ".", 0) == 0 || name.find("." + t + ".") != std::string::npos;
    p.set_requires_grad(adapter || kept);
  });
  return count;
}

/// Folds every adapter into its Linear's weight (W += (alpha / r) B A) and removes it: the same outputs (up to
/// rounding) at a plain Linear's cost. Returns how many were merged.
template <class Model>
Index merge_lora(Model& model) {
  Index count = 0;
  model.apply([&](const std::string&, auto& m) {
    using M = std::decay_t<decltype(m)>;
    if constexpr (detail::IsLinear<M>::value) {
      if (!m.adapter) return;
      using T = typename M::Scalar;
      const auto& a = *m.adapter;
      typename Tensor<T>::Matrix update = a.B.value().matrix() * a.A.value().matrix();  // (out, in)
      m.weight.value().matrix() += update * a.scaling;
      m.adapter.reset();
      ++count;
    }
  });
  return count;
}

}  // namespace eigenformer::nn
