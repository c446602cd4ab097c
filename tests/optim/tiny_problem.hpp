// The tiny problem of tests/optim/make_reference.py (two parameters, fixed starting values, fixed gradients for
// five steps) and helpers that compare its parameters and optimizer state with PyTorch's numbers.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

#include "eigenformer/optim/optimizer.hpp"

namespace eigenformer::testing {

// Same literals as W0, B0 and GRADS in make_reference.py; kept double so that Tensor<double> gets the values
// torch.float64 gets (cast to float they round like torch.tensor(..., dtype=torch.float32)).
inline const std::vector<double> kW0 = {0.5, -1.25, 2.0, 0.75, -0.3, 1.1};  // w: (2, 3)
inline const std::vector<double> kB0 = {0.2, -0.4, 0.05};                   // b: (3)
struct GradStep {
  std::vector<double> w, b;
};
inline const std::vector<GradStep> kGrads = {
    {{0.9, -0.4, 0.25, -1.5, 0.6, 0.0}, {0.3, -0.8, 1.2}},
    {{1.1, -0.2, 0.35, -1.2, 0.9, 0.1}, {0.5, -0.6, 0.7}},
    {{0.05, 0.1, -0.02, 0.3, -0.15, 0.04}, {0.02, 0.1, -0.05}},
    {{-0.3, 0.2, 0.1, 0.2, 0.05, -0.07}, {0.15, -0.02, 0.03}},
    {{0.04, -0.025, -0.03, -0.01, 0.035, 0.02}, {-0.025, 0.03, 0.012}},
};

template <typename T>
Tensor<T> tensor_of(const std::vector<double>& values, const Shape& shape) {
  return Tensor<double>::from(values, shape).template cast<T>();
}

/// Parameters "layer.weight" (2, 3) and "layer.bias" (3) at their starting values.
template <typename T>
struct TinyProblem {
  Var<T> w{tensor_of<T>(kW0, {2, 3}), true};
  Var<T> b{tensor_of<T>(kB0, {3}), true};

  optim::NamedParameters<T> params() const { return {{"layer.weight", w}, {"layer.bias", b}}; }
  /// Sets both gradients to those of step k (fresh buffers, as a backward pass would leave them).
  void set_grads(std::size_t k) {
    w.grad() = tensor_of<T>(kGrads[k].w, {2, 3});
    b.grad() = tensor_of<T>(kGrads[k].b, {3});
  }
  /// w then b, flattened (the layout of the reference rows).
  std::vector<T> values() const {
    std::vector<T> out(w.value().data(), w.value().data() + w.numel());
    out.insert(out.end(), b.value().data(), b.value().data() + b.numel());
    return out;
  }
};

/// Passes when |got - want| <= atol + rtol * |want| everywhere; otherwise names the first element that differs.
template <typename T>
::testing::AssertionResult all_near(const std::vector<T>& got, const std::vector<T>& want, double rtol,
                                    double atol) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << "got " << got.size() << " values, want " << want.size();
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double g = static_cast<double>(got[i]), w = static_cast<double>(want[i]);
    if (!(std::abs(g - w) <= atol + rtol * std::abs(w)))
      return ::testing::AssertionFailure() << "element " << i << ": got " << g << ", want " << w << " (difference "
                                           << g - w << ")";
  }
  return ::testing::AssertionSuccess();
}

/// Runs opt over the five gradient steps of the problem and compares the parameters after every step with
/// reference rows (PyTorch's trajectory).
template <typename T, typename Opt>
void expect_trajectory(TinyProblem<T>& pb, Opt& opt, const std::vector<std::vector<T>>& want, double rtol,
                       double atol) {
  ASSERT_EQ(want.size(), kGrads.size());
  for (std::size_t k = 0; k < kGrads.size(); ++k) {
    pb.set_grads(k);
    opt.step();
    EXPECT_TRUE(all_near(pb.values(), want[k], rtol, atol)) << "after step " << k + 1;
  }
  EXPECT_EQ(opt.step_count(), static_cast<Index>(kGrads.size()));
}

/// Copies of every state tensor by name, as a checkpoint would save them.
template <typename Opt>
auto saved_state(const Opt& opt) {
  std::map<std::string, std::decay_t<decltype(opt.parameters()[0].second.value())>> out;
  opt.visit_state([&out](const std::string& name, const auto& t) { out[name] = t.clone(); });
  return out;
}

/// The named state tensor's values, flattened.
template <typename Opt>
auto state_of(const Opt& opt, const std::string& name) {
  const auto all = saved_state(opt);
  const auto it = all.find(name);
  EXPECT_NE(it, all.end()) << "no state tensor " << name;
  using T = typename std::decay_t<decltype(it->second)>::Scalar;
  if (it == all.end()) return std::vector<T>();
  return std::vector<T>(it->second.data(), it->second.data() + it->second.numel());
}

/// The slot of both parameters, layer.weight then layer.bias (the layout of the reference state rows).
template <typename Opt>
auto pair_state(const Opt& opt, const std::string& slot) {
  auto out = state_of(opt, "layer.weight." + slot);
  const auto b = state_of(opt, "layer.bias." + slot);
  out.insert(out.end(), b.begin(), b.end());
  return out;
}

}  // namespace eigenformer::testing
