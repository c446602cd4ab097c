// Finite-difference gradient check in double precision (torch.autograd.gradcheck's method and defaults).
#pragma once

#include <cmath>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "eigenformer/autograd/var.hpp"

namespace eigenformer {

/// Tolerances of the check; the defaults are PyTorch's.
struct GradcheckOptions {
  double eps = 1e-6;   // central-difference step
  double atol = 1e-5;  // |analytic - numeric| <= atol + rtol * |numeric|
  double rtol = 1e-3;
};

/// Outcome of gradcheck: passed, or the worst Jacobian entry (input, element, output element, both values).
struct GradcheckResult {
  bool passed = true;
  Index input = -1;          // which input of the list
  Index input_element = -1;  // flat index into that input
  Index output_element = -1;
  double analytic = 0, numeric = 0;
  double worst_ratio = 0;    // |analytic - numeric| / (atol + rtol * |numeric|); <= 1 passes
  std::string message;
  explicit operator bool() const { return passed; }
};

/// Compares the Jacobian that backward() computes for f with central differences, entry by entry, for every
/// input that requires grad. f must be deterministic (reseed any dropout inside it). Throws ValueError when no
/// input requires grad, f's output does not depend on them, or an option is out of range. Records a graph even
/// inside a NoGradGuard.
template <typename F>
GradcheckResult gradcheck(F&& f, const std::vector<Var<double>>& inputs, const GradcheckOptions& opt = {}) {
  bool any = false;
  for (const auto& in : inputs) any = any || (in.defined() && in.requires_grad());
  if (!any) throw ValueError("gradcheck: no input requires grad");
  if (!(opt.eps > 0) || !std::isfinite(opt.eps))
    throw ValueError(detail::concat("gradcheck: eps is ", opt.eps, ", expected a finite eps > 0"));
  if (!(opt.atol >= 0) || !(opt.rtol >= 0))
    throw ValueError(detail::concat("gradcheck: atol is ", opt.atol, ", rtol is ", opt.rtol, ", expected both >= 0"));

  EnableGradGuard enable_grad;
  Var<double> probe = f(inputs);
  const Index m = probe.numel();
  const Shape out_shape = probe.shape();

  GradcheckResult res;
  auto consider = [&](Index i, Index k, Index j, double a, double n) {
    const double err = std::abs(a - n);
    // err == 0 passes even with zero tolerances (0 / 0); a NaN anywhere fails the check.
    double ratio = err == 0 ? 0.0 : err / (opt.atol + opt.rtol * std::abs(n));
    if (std::isnan(ratio)) ratio = std::numeric_limits<double>::infinity();
    if (res.input < 0 || ratio > res.worst_ratio) {
      res.worst_ratio = ratio;
      res.input = i;
      res.input_element = k;
      res.output_element = j;
      res.analytic = a;
      res.numeric = n;
    }
  };

  // Analytic Jacobian, one row per output element: backward with a one-hot seed through a fresh graph.
  std::vector<std::vector<std::vector<double>>> analytic(inputs.size());
  for (std::size_t i = 0; i < inputs.size(); ++i)
    if (inputs[i].defined() && inputs[i].requires_grad())
      analytic[i].assign(static_cast<std::size_t>(m), std::vector<double>(static_cast<std::size_t>(inputs[i].numel()), 0.0));
  for (Index j = 0; j < m; ++j) {
    for (const auto& in : inputs)
      if (in.defined()) in.zero_grad();
    Var<double> y = f(inputs);
    if (!y.requires_grad())
      throw ValueError("gradcheck: the output does not require grad (it does not depend on any input)");
    Tensor<double> seed = Tensor<double>::zeros(out_shape);
    seed[j] = 1.0;
    y.backward(seed);
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      if (analytic[i].empty() || !inputs[i].has_grad()) continue;
      const Tensor<double>& g = inputs[i].grad();
      for (Index k = 0; k < g.numel(); ++k) analytic[i][static_cast<std::size_t>(j)][static_cast<std::size_t>(k)] = g[k];
    }
  }
  for (const auto& in : inputs)
    if (in.defined()) in.zero_grad();

  // Numeric Jacobian, one column per input element: (f(x + eps) - f(x - eps)) / (2 eps).
  NoGradGuard no_grad;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (analytic[i].empty()) continue;
    Tensor<double> x = inputs[i].value();  // shares the buffer: perturbing it perturbs the input
    for (Index k = 0; k < x.numel(); ++k) {
      const double orig = x[k];
      x[k] = orig + opt.eps;
      const Tensor<double> plus = f(inputs).value().clone();
      x[k] = orig - opt.eps;
      const Tensor<double> minus = f(inputs).value().clone();
      x[k] = orig;
      for (Index j = 0; j < m; ++j) {
        const double numeric = (plus[j] - minus[j]) / (2 * opt.eps);
        consider(static_cast<Index>(i), k, j, analytic[i][static_cast<std::size_t>(j)][static_cast<std::size_t>(k)],
                 numeric);
      }
    }
  }

  res.passed = res.worst_ratio <= 1.0;
  if (res.input < 0) {  // empty output or empty inputs: nothing to compare
    res.message = "gradcheck passed: no Jacobian entries to compare";
    return res;
  }
  std::ostringstream os;
  os << "gradcheck " << (res.passed ? "passed" : "FAILED") << ": worst entry is input " << res.input << " element "
     << res.input_element << " (of " << to_string(inputs[static_cast<std::size_t>(res.input)].shape())
     << ") for output element " << res.output_element << " (of " << to_string(out_shape) << "): analytic "
     << res.analytic << ", numeric " << res.numeric << " (atol " << opt.atol << ", rtol " << opt.rtol << ")";
  res.message = os.str();
  return res;
}

}  // namespace eigenformer
