// The module tree (in the spirit of torch::nn::Module's register_parameter / register_buffer / register_module):
// every layer and model declares its parts once, under their state-dict names, in a member
//
//   template <class V> void visit(V& v) {
//     v.parameter("weight", weight);                   // a trained tensor (skipped while undefined)
//     v.buffer("position_ids", ids, Persistence::non_persistent);  // a tensor that is not trained
//     v.module("out_proj", out_proj);                  // a child module; "" = its parts are this module's own
//     v.modules("layers", layers);                     // a list of children: layers.0, layers.1, ...
//     v.generator("", gen);                            // random state (dropout), named after the module
//   }
//
// and derives from Module<Derived, T>, which walks that one declaration for everything else: named_parameters,
// named_buffers, named_modules, apply, train / eval of every descendant, freeze / unfreeze by name prefix,
// zero_grad, the generators a checkpoint saves, and (io/state_dict.hpp) the state dict.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "eigenformer/autograd/var.hpp"

namespace eigenformer::nn {

using eigenformer::NamedParameters;

/// Whether a buffer belongs to the state dict (torch's register_buffer(..., persistent=...)).
enum class Persistence { persistent, non_persistent };

/// A buffer of any element type, as named_buffers() lists it.
using BufferRef = std::variant<Tensor<float>*, Tensor<double>*, Tensor<std::int64_t>*, Tensor<bool>*>;

namespace detail {
struct ModuleAccess;
}  // namespace detail

/// What every module is, whatever its type: a training flag (dropout is active in training mode only).
class ModuleBase {
 public:
  bool is_training() const { return training_; }

 protected:
  ModuleBase() = default;

 private:
  friend struct detail::ModuleAccess;
  bool training_ = true;
};

namespace detail {

using eigenformer::detail::concat;

struct ModuleAccess {
  static void set_training(ModuleBase& m, bool on) { m.training_ = on; }
};

/// The parts a sink of NamedWalk does not handle are ignored.
struct SinkBase {
  template <class P>
  void parameter(const std::string&, Var<P>&) {}
  template <class U>
  void buffer(const std::string&, Tensor<U>&, Persistence) {}
  void generator(const std::string&, Generator&) {}
  template <class M>
  void module(const std::string&, M&) {}
};

/// Walks a module tree depth first in declaration order, keeping each part's dotted name, and hands every part to
/// the sink: sink.parameter(name, Var&), sink.buffer(name, Tensor&, Persistence), sink.generator(name, Generator&),
/// sink.module(path, Module&) (the root as "" unless a prefix is given; modules declared under "" are not named).
template <class Sink>
class NamedWalk {
 public:
  explicit NamedWalk(Sink& sink, std::string prefix = "") : sink_(sink), path_(std::move(prefix)) {
    if (!path_.empty() && path_.back() != '.') path_ += '.';
  }

  template <class M>
  void root(M& m) {
    sink_.module(module_path(), m);
    m.visit(*this);
  }

  template <class P>
  void parameter(std::string_view name, Var<P>& p) {
    if (p.defined()) sink_.parameter(join(name), p);
  }
  template <class U>
  void buffer(std::string_view name, Tensor<U>& b, Persistence persistence = Persistence::persistent) {
    if (b.defined()) sink_.buffer(join(name), b, persistence);
  }
  void generator(std::string_view name, Generator& g) { sink_.generator(name.empty() ? module_path() : join(name), g); }
  template <class M>
  void module(std::string_view name, M& m) {
    if (name.empty()) {  // its parts live in this module's namespace (as linear1 / linear2 in an encoder layer)
      m.visit(*this);
      return;
    }
    const std::size_t size = path_.size();
    path_.append(name);
    path_ += '.';
    sink_.module(module_path(), m);
    m.visit(*this);
    path_.resize(size);
  }
  template <class M, class A>
  void modules(std::string_view name, std::vector<M, A>& list) {
    for (std::size_t i = 0; i < list.size(); ++i) {
      const std::size_t size = path_.size();
      path_.append(name);
      path_ += '.';
      path_ += std::to_string(i);
      path_ += '.';
      sink_.module(module_path(), list[i]);
      list[i].visit(*this);
      path_.resize(size);
    }
  }

 private:
  std::string join(std::string_view name) const {
    std::string s = path_;
    s.append(name);
    return s;
  }
  std::string module_path() const { return path_.empty() ? std::string() : path_.substr(0, path_.size() - 1); }

  Sink& sink_;
  std::string path_;  // the current module's prefix: "" or "a.b."
};

/// Sets the training flag of a module and every descendant, modules declared under "" included; names are not
/// built, so switching modes allocates nothing.
struct TrainingWalk {
  bool on;
  template <class P>
  void parameter(std::string_view, Var<P>&) {}
  template <class U>
  void buffer(std::string_view, Tensor<U>&, Persistence = Persistence::persistent) {}
  void generator(std::string_view, Generator&) {}
  template <class M>
  void module(std::string_view, M& m) {
    ModuleAccess::set_training(m, on);
    m.visit(*this);
  }
  template <class M, class A>
  void modules(std::string_view, std::vector<M, A>& list) {
    for (auto& m : list) module({}, m);
  }
};

/// A sink that hands parameters to f(name, Var&), each once: a parameter that two modules share (tied weights, as
/// a masked-LM decoder and the word embeddings) comes under the first name that declares it (torch's
/// named_parameters() and save_pretrained do the same).
template <class F>
struct ParameterSink : SinkBase {
  F& f;
  std::vector<const void*> seen;  // the nodes handed out so far
  explicit ParameterSink(F& fn) : f(fn) {}
  using SinkBase::buffer;
  using SinkBase::generator;
  using SinkBase::module;
  template <class P>
  void parameter(const std::string& name, Var<P>& p) {
    const void* node = p.node_ptr().get();
    if (std::find(seen.begin(), seen.end(), node) != seen.end()) return;
    seen.push_back(node);
    f(name, p);
  }
};

/// A sink that hands buffers to f(name, Tensor<U>&, Persistence).
template <class F>
struct BufferSink : SinkBase {
  F& f;
  explicit BufferSink(F& fn) : f(fn) {}
  using SinkBase::generator;
  using SinkBase::module;
  using SinkBase::parameter;
  template <class U>
  void buffer(const std::string& name, Tensor<U>& b, Persistence p) {
    f(name, b, p);
  }
};

/// A sink that hands generators to f(name, Generator&).
template <class F>
struct GeneratorSink : SinkBase {
  F& f;
  explicit GeneratorSink(F& fn) : f(fn) {}
  using SinkBase::buffer;
  using SinkBase::module;
  using SinkBase::parameter;
  void generator(const std::string& name, Generator& g) { f(name, g); }
};

/// A sink that hands modules to f(path, Module&), with their concrete types.
template <class F>
struct ModuleSink : SinkBase {
  F& f;
  explicit ModuleSink(F& fn) : f(fn) {}
  using SinkBase::buffer;
  using SinkBase::generator;
  using SinkBase::parameter;
  template <class M>
  void module(const std::string& path, M& m) {
    f(path, m);
  }
};

/// Checks the residual a sublayer's forward_add adds to its output: defined, with the input's shape.
template <typename T>
void check_residual(const char* fn, const Var<T>& x, const Var<T>& residual) {
  if (!residual.defined()) throw ValueError(concat(fn, ": residual is undefined, expected a tensor"));
  if (residual.shape() != x.shape())
    throw ShapeError(concat(fn, ": residual is ", to_string(residual.shape()), ", expected x's shape ",
                            to_string(x.shape())));
}

inline bool starts_with(const std::string& s, const std::string& prefix) {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

}  // namespace detail

/// Walks module's parts with a NamedWalk over sink, names starting with prefix.
template <class M, class Sink>
void walk_named(M& module, Sink& sink, const std::string& prefix = "") {
  detail::NamedWalk<Sink> walk(sink, prefix);
  walk.root(module);
}

/// CRTP base adding the module API to Derived, which declares its parts in visit() (see the top of this file).
template <typename Derived, typename T>
class Module : public ModuleBase {
 public:
  using Scalar = T;

  /// Calls f(name, Var<T>&) for every parameter, in declaration order.
  template <class F>
  void visit_parameters(F&& f) {
    detail::ParameterSink<F> sink(f);
    walk_named(self(), sink);
  }
  /// Every parameter with its dotted name (handles: the Vars share the module's tensors).
  NamedParameters<T> named_parameters() {
    NamedParameters<T> out;
    visit_parameters([&out](const std::string& name, Var<T>& p) { out.emplace_back(name, p); });
    return out;
  }
  /// Calls f(name, Tensor<U>&, Persistence) for every buffer.
  template <class F>
  void visit_buffers(F&& f) {
    detail::BufferSink<F> sink(f);
    walk_named(self(), sink);
  }
  /// Every buffer with its dotted name.
  std::vector<std::pair<std::string, BufferRef>> named_buffers() {
    std::vector<std::pair<std::string, BufferRef>> out;
    visit_buffers([&out](const std::string& name, auto& b, Persistence) { out.emplace_back(name, BufferRef(&b)); });
    return out;
  }
  /// Calls f(name, Generator&) for every random generator (named after the module that owns it, or after it).
  template <class F>
  void visit_generators(F&& f) {
    detail::GeneratorSink<F> sink(f);
    walk_named(self(), sink);
  }
  /// Calls f(path, module) with the concrete type of each module: this one ("") first, then every named
  /// descendant in declaration order (torch's named_modules() / apply()).
  template <class F>
  void apply(F&& f) {
    detail::ModuleSink<F> sink(f);
    walk_named(self(), sink);
  }
  /// This module ("") and every named descendant.
  std::vector<std::pair<std::string, ModuleBase*>> named_modules() {
    std::vector<std::pair<std::string, ModuleBase*>> out;
    apply([&out](const std::string& path, ModuleBase& m) { out.emplace_back(path, &m); });
    return out;
  }

  /// Number of scalar parameters (trainable or not).
  Index parameter_count() {
    Index n = 0;
    visit_parameters([&n](const std::string&, Var<T>& p) { n += p.numel(); });
    return n;
  }
  /// Number of scalar parameters that require grad.
  Index trainable_parameter_count() {
    Index n = 0;
    visit_parameters([&n](const std::string&, Var<T>& p) { n += p.requires_grad() ? p.numel() : 0; });
    return n;
  }

  /// Training mode (dropout active) or evaluation mode, for this module and every descendant; returns *this.
  Derived& train(bool on = true) {
    detail::TrainingWalk walk{on};
    walk.module({}, self());
    return self();
  }
  Derived& eval() { return train(false); }

  /// Stops gradients for every parameter whose name starts with prefix ("" = all); returns how many.
  /// Throws ValueError when no parameter matches (a typo would otherwise freeze nothing silently).
  Index freeze(const std::string& prefix = "") { return set_requires_grad(prefix, false, "freeze"); }
  /// The inverse of freeze.
  Index unfreeze(const std::string& prefix = "") { return set_requires_grad(prefix, true, "unfreeze"); }
  /// Drops (or zeroes) every parameter's gradient.
  void zero_grad(bool set_to_none = true) {
    visit_parameters([set_to_none](const std::string&, Var<T>& p) { p.zero_grad(set_to_none); });
  }

 private:
  Derived& self() { return static_cast<Derived&>(*this); }
  Index set_requires_grad(const std::string& prefix, bool on, const char* fn) {
    Index n = 0;
    visit_parameters([&](const std::string& name, Var<T>& p) {
      if (detail::starts_with(name, prefix)) {
        p.set_requires_grad(on);
        ++n;
      }
    });
    if (n == 0) throw ValueError(detail::concat(fn, ": no parameter name starts with \"", prefix, "\""));
    return n;
  }
};

}  // namespace eigenformer::nn
