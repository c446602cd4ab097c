// The bookkeeping every optimizer shares (torch.optim.Optimizer with one parameter group): the trainable
// parameters, their state tensors, the step count, lr, zero_grad, and the all-or-nothing check before an update.
#pragma once

#include <atomic>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "eigenformer/autograd/var.hpp"
#include "eigenformer/core/parallel.hpp"
#include "eigenformer/core/error.hpp"
#include "eigenformer/tensor/tensor.hpp"

namespace eigenformer::optim {

using eigenformer::NamedParameters;

namespace detail {

/// Throws ValueError unless value is finite and >= 0 (PyTorch: "Invalid learning rate", ...).
template <typename V>
void check_non_negative(const char* fn, const char* what, V value) {
  if (!(value >= 0) || !std::isfinite(static_cast<double>(value)))
    throw ValueError(eigenformer::detail::concat(fn, ": ", what, " is ", value, ", expected a finite value >= 0"));
}

/// The shared part of SGD and Adam: Options must have a `T lr` field; slot_names name the per-parameter state
/// tensors ("exp_avg", ...), each allocated with its parameter's shape, zero-filled, at construction.
///
/// State, as visit_state presents it: "step" (one element holding the number of completed steps), then
/// "<param name>.<slot>" for every trainable parameter and slot. The step count lives only in that tensor, so
/// writing saved values into the state tensors and calling step() continues exactly where the saved run was.
/// The count is global, not per parameter as in PyTorch: a parameter that had no gradient on some steps is
/// treated as if it had taken part in them (bias correction, SGD's first momentum step). Identical to PyTorch
/// whenever every parameter receives a gradient on every step. A float "step" tensor counts exactly up to 2^24
/// steps; step() throws ValueError past that rather than stall (use double for longer runs).
template <typename T, typename Options>
class OptimizerBase {
 public:
  OptimizerBase(const OptimizerBase&) = delete;  // a copy would share the state buffers (Tensor is a handle)
  OptimizerBase& operator=(const OptimizerBase&) = delete;
  OptimizerBase(OptimizerBase&&) = default;
  OptimizerBase& operator=(OptimizerBase&&) = default;

  /// Clears the gradient of every parameter: drops it (set_to_none, PyTorch's default) or fills it with zeros.
  void zero_grad(bool set_to_none = true) {
    for (auto& p : params_) p.second.zero_grad(set_to_none);
  }

  /// The learning rate the next step() uses.
  T lr() const { return options_.lr; }
  /// Sets the learning rate; with a schedule, call opt.set_lr(schedule(opt.step_count())) before each step().
  void set_lr(T lr) {
    check_non_negative(name_, "lr", lr);
    options_.lr = lr;
  }

  /// Number of completed steps, read from the "step" state tensor (throws ValueError if it holds no count).
  Index step_count() const { return checked_step_count(); }

  /// The options, with lr as last set.
  const Options& options() const { return options_; }

  /// The parameters this optimizer updates: those that required grad at construction, in the given order (a
  /// parameter unfrozen later needs a new optimizer; one frozen later is skipped).
  const NamedParameters<T>& parameters() const { return params_; }

  /// Calls f(name, tensor) for every state tensor ("step", then "<param name>.<slot>"); f may write into the
  /// tensors (loading a checkpoint); a replaced tensor must keep its shape.
  template <class F>
  void visit_state(F&& f) {
    f(std::string("step"), step_);
    for (std::size_t i = 0; i < params_.size(); ++i)
      for (std::size_t k = 0; k < slots_.size(); ++k) f(state_name(i, k), state(i, k));
  }
  /// Calls f(name, const tensor) for every state tensor (saving a checkpoint).
  template <class F>
  void visit_state(F&& f) const {
    f(std::string("step"), static_cast<const Tensor<T>&>(step_));
    for (std::size_t i = 0; i < params_.size(); ++i)
      for (std::size_t k = 0; k < slots_.size(); ++k) f(state_name(i, k), state(i, k));
  }

 protected:
  OptimizerBase(const char* name, const NamedParameters<T>& params, const Options& options,
                std::vector<const char*> slot_names)
      : name_(name), options_(options), slots_(std::move(slot_names)), step_(Tensor<T>::zeros({1})) {
    using eigenformer::detail::concat;
    check_non_negative(name_, "lr", options_.lr);
    if (params.empty()) throw ValueError(concat(name_, ": got an empty parameter list"));
    std::set<std::string> names;
    std::map<const void*, std::string> nodes;
    for (const auto& [n, p] : params) {
      if (!p.defined()) throw ValueError(concat(name_, ": parameter '", n, "' is an undefined Var"));
      if (!names.insert(n).second) throw ValueError(concat(name_, ": parameter name '", n, "' appears twice"));
      const auto [it, fresh] = nodes.emplace(p.node_ptr().get(), n);
      if (!fresh)
        throw ValueError(concat(name_, ": parameters '", it->second, "' and '", n,
                                "' are the same Var (it would be updated twice per step)"));
      if (!p.requires_grad()) continue;  // frozen: no state, never updated
      params_.emplace_back(n, p);
      for (std::size_t k = 0; k < slots_.size(); ++k) state_.push_back(Tensor<T>::zeros(p.shape()));
    }
  }
  ~OptimizerBase() = default;

  /// Validates everything an update reads (the step count, every gradient's shape and values, every state
  /// tensor's shape) before anything is written, so that a throwing step() leaves parameters and state as they
  /// were; returns the number of completed steps.
  Index begin_step() const {
    using eigenformer::detail::concat;
    const Index t = checked_step_count();
    // A float "step" tensor counts exactly up to 2^24; past it, t + 1 would round back to t.
    if (static_cast<double>(t) + 1 > std::ldexp(1.0, std::numeric_limits<T>::digits))
      throw ValueError(concat(name_, "::step: step count ", t, " is the largest the 'step' tensor holds exactly"));
    for (std::size_t i = 0; i < params_.size(); ++i) {
      if (!updates(i)) continue;
      const Var<T>& p = params_[i].second;
      const Tensor<T>& g = p.grad();
      if (g.shape() != p.shape())
        throw ShapeError(concat(name_, "::step: gradient of '", params_[i].first, "' is ", to_string(g.shape()),
                                ", parameter is ", to_string(p.shape())));
      // Finite sums of the elements (one vectorized pass, split across threads) prove them all finite; only when
      // one is not (a NaN or Inf, or finite values whose sum overflows) does the exact check run.
      if (!sums_are_finite(g) && !g.array().allFinite()) {
        Index e = 0;
        while (std::isfinite(static_cast<double>(g[e]))) ++e;
        throw ValueError(concat(name_, "::step: gradient of '", params_[i].first, "' is not finite (element ", e,
                                " is ", g[e], "); no parameter or state was changed"));
      }
      for (std::size_t k = 0; k < slots_.size(); ++k)
        if (!state(i, k).defined() || state(i, k).shape() != p.shape())
          throw ShapeError(concat(name_, "::step: state tensor '", state_name(i, k), "' is ",
                                  to_string(state(i, k).shape()), ", expected ", to_string(p.shape()),
                                  " like its parameter"));
    }
    return t;
  }
  /// Whether the sums of consecutive ranges of g's elements are all finite (then every element is).
  static bool sums_are_finite(const Tensor<T>& g) {
    std::atomic<bool> finite{true};
    const T* data = g.data();
    eigenformer::detail::parallel_chunks(g.numel(), 1.0, [&](Index begin, Index end) {
      const T sum = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>(data + begin, end - begin).sum();
      if (!std::isfinite(static_cast<double>(sum))) finite.store(false, std::memory_order_relaxed);
    });
    return finite.load(std::memory_order_relaxed);
  }

  /// Records that step t + 1 is complete.
  void end_step(Index t) { step_[0] = static_cast<T>(t + 1); }

  /// True when parameter i takes part in this step (PyTorch skips p.grad is None).
  bool updates(std::size_t i) const { return params_[i].second.requires_grad() && params_[i].second.has_grad(); }
  Var<T>& param(std::size_t i) { return params_[i].second; }
  Tensor<T>& state(std::size_t i, std::size_t k) { return state_[i * slots_.size() + k]; }
  const Tensor<T>& state(std::size_t i, std::size_t k) const { return state_[i * slots_.size() + k]; }
  std::size_t size() const { return params_.size(); }

  const char* name_;  // "SGD", "Adam", "AdamW": prefixes every message
  Options options_;

 private:
  std::string state_name(std::size_t i, std::size_t k) const { return params_[i].first + "." + slots_[k]; }

  Index checked_step_count() const {
    using eigenformer::detail::concat;
    if (!step_.defined() || step_.numel() != 1)
      throw ValueError(concat(name_, ": state tensor 'step' is ", to_string(step_.shape()), ", expected one element"));
    const double s = static_cast<double>(step_[0]);
    if (!(s >= 0) || !std::isfinite(s) || s != std::floor(s))
      throw ValueError(concat(name_, ": state tensor 'step' holds ", s, ", expected a whole number >= 0"));
    return static_cast<Index>(s);
  }

  NamedParameters<T> params_;        // trainable at construction
  std::vector<const char*> slots_;   // state slot names, e.g. {"exp_avg", "exp_avg_sq"}
  std::vector<Tensor<T>> state_;     // params_.size() * slots_.size(), parameter-major
  Tensor<T> step_;                   // (1): completed steps
};

}  // namespace detail
}  // namespace eigenformer::optim
