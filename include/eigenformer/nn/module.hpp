// Module utilities shared by every layer: named parameters, counting, train/eval, freezing by name prefix.
//
// A module is a struct with `template <class F> void visit_parameters(F&& f)` calling f(name, Var<T>&) for each
// parameter under PyTorch's state-dict names, and `void set_training(bool)` that calls train(on) on its child
// modules (a leaf module's is empty). Deriving from Module<Derived, T> adds the rest; optimizers, checkpoints and
// freezing all go through visit_parameters.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "eigenformer/autograd/var.hpp"

namespace eigenformer::nn {

using eigenformer::NamedParameters;

namespace detail {

/// Wraps a parameter visitor so that the names it sees are prefixed (the path of a child module).
template <typename F>
auto prefixed(const std::string& prefix, F& f) {
  return [prefix, &f](const std::string& name, auto& param) { f(prefix + name, param); };
}

inline bool starts_with(const std::string& s, const std::string& prefix) {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

/// Checks the residual a sublayer's forward_add adds to its output: defined, with the input's shape.
template <typename T>
void check_residual(const char* fn, const Var<T>& x, const Var<T>& residual) {
  if (!residual.defined())
    throw ValueError(eigenformer::detail::concat(fn, ": residual is undefined, expected a tensor"));
  if (residual.shape() != x.shape())
    throw ShapeError(eigenformer::detail::concat(fn, ": residual is ", to_string(residual.shape()),
                                                 ", expected x's shape ", to_string(x.shape())));
}

}  // namespace detail

/// CRTP base adding the common module API to Derived (which defines visit_parameters and set_training).
template <typename Derived, typename T>
class Module {
 public:
  /// Every parameter with its dotted name (handles: the Vars share the module's tensors).
  NamedParameters<T> named_parameters() {
    NamedParameters<T> out;
    self().visit_parameters([&out](const std::string& name, Var<T>& p) { out.emplace_back(name, p); });
    return out;
  }
  /// Number of scalar parameters (trainable or not).
  Index parameter_count() {
    Index n = 0;
    self().visit_parameters([&n](const std::string&, Var<T>& p) { n += p.numel(); });
    return n;
  }
  /// Number of scalar parameters that require grad.
  Index trainable_parameter_count() {
    Index n = 0;
    self().visit_parameters([&n](const std::string&, Var<T>& p) { n += p.requires_grad() ? p.numel() : 0; });
    return n;
  }
  /// Training mode (dropout active) or evaluation mode; returns *this for chaining.
  Derived& train(bool on = true) {
    training_ = on;
    self().set_training(on);
    return self();
  }
  Derived& eval() { return train(false); }
  bool is_training() const { return training_; }
  /// Stops gradients for every parameter whose name starts with prefix ("" = all); returns how many.
  /// Throws ValueError when no parameter matches (a typo would otherwise freeze nothing silently).
  Index freeze(const std::string& prefix = "") { return set_requires_grad(prefix, false, "freeze"); }
  /// The inverse of freeze.
  Index unfreeze(const std::string& prefix = "") { return set_requires_grad(prefix, true, "unfreeze"); }
  /// Drops (or zeroes) every parameter's gradient.
  void zero_grad(bool set_to_none = true) {
    self().visit_parameters([set_to_none](const std::string&, Var<T>& p) { p.zero_grad(set_to_none); });
  }

 protected:
  bool training_ = true;

 private:
  Derived& self() { return static_cast<Derived&>(*this); }
  Index set_requires_grad(const std::string& prefix, bool on, const char* fn) {
    Index n = 0;
    self().visit_parameters([&](const std::string& name, Var<T>& p) {
      if (detail::starts_with(name, prefix)) {
        p.set_requires_grad(on);
        ++n;
      }
    });
    if (n == 0)
      throw ValueError(eigenformer::detail::concat(fn, ": no parameter name starts with \"", prefix, "\""));
    return n;
  }
};

}  // namespace eigenformer::nn
