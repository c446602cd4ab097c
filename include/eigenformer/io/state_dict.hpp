// Checkpoints of modules and optimizers as safetensors files, matching torch.nn.Module.state_dict /
// load_state_dict (PyTorch's dotted names, strict mode, in-place copies) and optimizer state_dict round trips.
//
// A module is anything with `template <class F> void visit_parameters(F&& f)` calling f(name, Var<T>&) (and,
// for the module tree of nn/module.hpp, visit_buffers: persistent buffers belong to the state dict); an
// optimizer is anything with `template <class F> void visit_state(F&& f)` calling f(name, Tensor<T>&) on its own
// state tensors (Adam: m, v and the step count as a tensor). Loading is all-or-nothing: every name, shape and
// dtype is checked and every value converted before the first parameter changes.
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <unordered_set>
#include <utility>
#include <vector>

#include "eigenformer/autograd/var.hpp"
#include "eigenformer/io/safetensors.hpp"
#include "eigenformer/nn/module.hpp"

namespace eigenformer::io {

/// What load_state_dict(strict = false) skipped: module names absent from the file, file names absent from the
/// module (torch's _IncompatibleKeys).
struct LoadResult {
  std::vector<std::string> missing_keys;
  std::vector<std::string> unexpected_keys;
};

namespace detail {

/// Staged loading: first every check (collecting all problems), then every conversion, then every copy.
class Loader {
 public:
  Loader(const SafetensorsView& file, const char* fn) : file_(file), fn_(fn) {}

  /// Checks one target against the file. A target that is still undefined (optimizer state not created yet)
  /// takes the file's tensor as it is, and may be absent from the file when allow_undefined_missing.
  template <typename T, typename Commit>
  void stage(const std::string& name, const Tensor<T>& current, bool allow_undefined_missing, Commit commit) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, std::int64_t> ||
                      std::is_same_v<T, bool>,
                  "load: tensors must be float, double, std::int64_t or bool");
    visited_.insert(name);
    if (!file_.contains(name)) {
      if (!(allow_undefined_missing && !current.defined())) missing_.push_back(name);
      return;
    }
    const TensorInfo& info = file_.info(name);
    if (current.defined() && info.shape != current.shape())
      mis_shaped_.push_back(concat(quote_name(name), " is ", to_string(info.shape), " in the file, expected ",
                                   to_string(current.shape())));
    constexpr bool want_float = std::is_floating_point_v<T>;
    if (is_floating(info.dtype) != want_float)
      wrong_dtype_.push_back(concat(quote_name(name), " is ", dtype_name(info.dtype), " in the file, expected ",
                                    want_float ? "F16, BF16, F32 or F64" : "I64, I32, U8 or BOOL"));
    auto staged = std::make_shared<Tensor<T>>();
    const SafetensorsView* file = &file_;
    const TensorInfo* where = &info;
    converts_.push_back([file, where, staged] { *staged = file->get<T>(*where); });
    commits_.push_back([staged, commit]() mutable { commit(*staged); });
  }

  /// Throws one IoError listing every problem; missing and unexpected names count only when strict.
  LoadResult check(bool strict, const std::string& path) {
    LoadResult result;
    result.missing_keys = missing_;
    for (const TensorInfo& t : file_.tensors())
      if (!visited_.count(t.name)) result.unexpected_keys.push_back(t.name);
    std::string problems;
    const auto list = [&problems](const char* what, const std::vector<std::string>& items, bool quote) {
      if (items.empty()) return;
      problems += concat(problems.empty() ? "" : "; ", what, " (", items.size(), "): ");
      for (std::size_t i = 0; i < items.size(); ++i)
        problems += (i ? ", " : "") + (quote ? quote_name(items[i]) : items[i]);
    };
    if (strict) {
      list("missing from the file", result.missing_keys, true);
      list("unexpected in the file", result.unexpected_keys, true);
    }
    list("mis-shaped", mis_shaped_, false);
    list("wrong dtype", wrong_dtype_, false);
    if (!problems.empty())
      throw IoError(concat(fn_, ": ", quote_name(path), " does not match: ", problems, " (nothing was loaded)"));
    return result;
  }

  /// Converts every staged tensor (may throw; nothing is changed yet), then copies them all.
  void apply() {
    for (auto& c : converts_) c();
    for (auto& c : commits_) c();
  }

 private:
  const SafetensorsView& file_;
  const char* fn_;
  std::unordered_set<std::string> visited_;
  std::vector<std::string> missing_, mis_shaped_, wrong_dtype_;
  std::vector<std::function<void()>> converts_;
  std::vector<std::function<void()>> commits_;
};

/// Copies src into dst in place (keeping dst's buffer, as torch's param.copy_ does), or adopts src when dst is
/// undefined.
template <typename T>
void copy_into(Tensor<T>& dst, const Tensor<T>& src) {
  if (!dst.defined()) {
    dst = src;
    return;
  }
  std::copy(src.data(), src.data() + src.numel(), dst.data());
}

}  // namespace detail

namespace detail {

/// A buffer visitor that accepts any buffer, for detecting visit_buffers.
struct AnyBuffer {
  template <class U>
  void operator()(const std::string&, Tensor<U>&, nn::Persistence) {}
};

template <class M, class = void>
struct HasBuffers : std::false_type {};
template <class M>
struct HasBuffers<M, std::void_t<decltype(std::declval<M&>().visit_buffers(std::declval<AnyBuffer&>()))>>
    : std::true_type {};

/// Calls f(name, Tensor<U>&) for every persistent buffer of module (none for a module without buffers).
template <class Module, class F>
void visit_persistent_buffers(Module& module, F&& f) {
  if constexpr (HasBuffers<Module>::value)
    module.visit_buffers([&f](const std::string& name, auto& b, nn::Persistence p) {
      if (p == nn::Persistence::persistent) f(name, b);
    });
}

}  // namespace detail

/// Saves the state dict of module: every parameter and persistent buffer under its dotted name (F32 for float
/// tensors, F64 for double, I64 and BOOL for ids and masks), atomically (io/file.hpp).
template <class Module>
void save_state_dict(Module& module, const std::filesystem::path& path, const Metadata& metadata = {}) {
  Writer w;
  module.visit_parameters([&w](const std::string& name, auto& param) {
    if (param.defined()) w.add(name, param.value());
  });
  detail::visit_persistent_buffers(module, [&w](const std::string& name, auto& b) { w.add(name, b); });
  w.set_metadata(metadata);
  w.write(path);
}

/// Loads a state dict saved by save_state_dict (or PyTorch's safetensors save_file), converting F16/BF16/F32/F64 to
/// the parameters' type. Throws IoError listing every missing, unexpected, mis-shaped or wrongly typed name at
/// once and leaves the module unchanged; strict = false tolerates missing and unexpected names (returned).
template <class Module>
LoadResult load_state_dict(Module& module, const std::filesystem::path& path, bool strict = true) {
  const SafetensorsFile file = read_safetensors(path);
  detail::Loader loader(file, "load_state_dict");
  module.visit_parameters([&loader](const std::string& name, auto& param) {
    using V = std::decay_t<decltype(param)>;
    using T = typename V::Scalar;
    if (!param.defined()) return;  // as in save_state_dict: an absent optional parameter is not part of the state
    V handle = param;              // shares the parameter's node, so the copy lands in the module
    loader.stage(name, param.value(), false,
                 [handle](const Tensor<T>& v) mutable { detail::copy_into(handle.value(), v); });
  });
  detail::visit_persistent_buffers(module, [&loader](const std::string& name, auto& b) {
    using U = typename std::decay_t<decltype(b)>::Scalar;
    Tensor<U>* target = &b;
    loader.stage(name, b, false, [target](const Tensor<U>& v) { detail::copy_into(*target, v); });
  });
  LoadResult result = loader.check(strict, path.string());
  loader.apply();
  return result;
}

/// Saves every defined state tensor of optimizer under its name (undefined ones, such as Adam's moments before
/// the first step, are left out).
template <class Optimizer>
void save_optimizer_state(Optimizer& optimizer, const std::filesystem::path& path, const Metadata& metadata = {}) {
  Writer w;
  optimizer.visit_state([&w](const std::string& name, auto& state) {
    if (state.defined()) w.add(name, state);
  });
  w.set_metadata(metadata);
  w.write(path);
}

/// Restores optimizer state saved by save_optimizer_state, so training resumes exactly. Strict: every name must
/// match (a state tensor still undefined may be absent from the file), every shape must match; all-or-nothing.
/// visit_state must pass references to the optimizer's own tensors: the values are copied into them.
template <class Optimizer>
void load_optimizer_state(Optimizer& optimizer, const std::filesystem::path& path) {
  const SafetensorsFile file = read_safetensors(path);
  detail::Loader loader(file, "load_optimizer_state");
  optimizer.visit_state([&loader](const std::string& name, auto& state) {
    using T = typename std::decay_t<decltype(state)>::Scalar;
    Tensor<T>* target = &state;
    loader.stage(name, state, true, [target](const Tensor<T>& v) { detail::copy_into(*target, v); });
  });
  loader.check(true, path.string());
  loader.apply();
}

}  // namespace eigenformer::io
