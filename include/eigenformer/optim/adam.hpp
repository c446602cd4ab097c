// Adam (Kingma & Ba 2015) with L2 weight decay, and AdamW (Loshchilov & Hutter 2019) with decoupled weight decay,
// both optionally AMSGrad; match torch.optim.Adam and torch.optim.AdamW (torch 1.13's _single_tensor_adam and
// _single_tensor_adamw) in their order of float operations.
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

#include "eigenformer/core/parallel.hpp"
#include "eigenformer/optim/optimizer.hpp"

namespace eigenformer::optim {

/// How weight decay enters: L2 adds weight_decay * p to the gradient (Adam); Decoupled multiplies p by
/// 1 - lr * weight_decay before the update (AdamW).
enum class AdamDecay { L2, Decoupled };

/// Adam's and AdamW's hyperparameters, with PyTorch's defaults.
template <typename T, AdamDecay Decay>
struct AdamOptions {
  T lr = T(1e-3);
  // The betas stay double, as PyTorch's Python floats do: 1 - float(0.999) is 1.3e-5 (relative) away from 0.001,
  // which would shift every second moment by that much.
  double beta1 = 0.9;
  double beta2 = 0.999;
  T eps = T(1e-8);  // added outside the sqrt of the bias-corrected second moment
  T weight_decay = Decay == AdamDecay::Decoupled ? T(0.01) : T(0);
  bool amsgrad = false;
};

/// Adam or AdamW (by Decay) over named parameters; use the aliases Adam<T> and AdamW<T>. Per step t (from 1), for
/// each parameter with a gradient g:
///   p *= 1 - lr * weight_decay                                 (AdamW)
///   g += weight_decay * p                                      (Adam)
///   m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g^2;  v_max = max(v_max, v)  (amsgrad)
///   p -= lr / (1 - beta1^t) * m / (sqrt(v or v_max) / sqrt(1 - beta2^t) + eps)
/// State: "step", "<name>.exp_avg" (m), "<name>.exp_avg_sq" (v), "<name>.max_exp_avg_sq" (v_max, amsgrad only).
template <typename T, AdamDecay Decay>
class BasicAdam : public detail::OptimizerBase<T, AdamOptions<T, Decay>> {
  using Base = detail::OptimizerBase<T, AdamOptions<T, Decay>>;
  static constexpr const char* kName = Decay == AdamDecay::L2 ? "Adam" : "AdamW";

 public:
  using Options = AdamOptions<T, Decay>;

  /// Throws ValueError on a negative or non-finite lr, eps or weight_decay, or a beta outside [0, 1).
  explicit BasicAdam(const NamedParameters<T>& params, const Options& options = Options())
      : Base(kName, params, validated(options),
             options.amsgrad ? std::vector<const char*>{"exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
                             : std::vector<const char*>{"exp_avg", "exp_avg_sq"}) {}

  /// One update of every trainable parameter that has a gradient. Throws ValueError, changing nothing, when a
  /// gradient holds NaN or Inf.
  void step() {
    const Index done = this->begin_step();
    const Options& o = this->options_;
    const double t = static_cast<double>(done + 1);  // PyTorch increments step before the update
    // Bias corrections and the step size in double, as PyTorch computes them from Python floats; each is cast to
    // T where a tensor op would cast its scalar argument.
    const double bias_correction1 = 1.0 - std::pow(o.beta1, t);
    const double bias_correction2 = 1.0 - std::pow(o.beta2, t);
    const T neg_step_size = static_cast<T>(-(static_cast<double>(o.lr) / bias_correction1));
    const T bias_correction2_sqrt = static_cast<T>(std::sqrt(bias_correction2));
    const T beta1 = static_cast<T>(o.beta1), one_minus_beta1 = static_cast<T>(1.0 - o.beta1);
    const T beta2 = static_cast<T>(o.beta2), one_minus_beta2 = static_cast<T>(1.0 - o.beta2);
    const T eps = o.eps, wd = o.weight_decay;
    const T decay = static_cast<T>(1.0 - static_cast<double>(o.lr) * static_cast<double>(wd));
    using Segment = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;
    using ConstSegment = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;
    for (std::size_t i = 0; i < this->size(); ++i) {
      if (!this->updates(i)) continue;
      Var<T>& p = this->param(i);
      T* const pw = p.value().data();
      const T* const pg = p.grad().data();
      T* const pm = this->state(i, 0).data();
      T* const pv = this->state(i, 1).data();
      T* const pv_max = o.amsgrad ? this->state(i, 2).data() : nullptr;
      // One pass over the parameter, in blocks that stay in L1 (the moments, then the update, of one block before
      // the next), split across threads: the step is memory-bound (docs/benchmarks.md). Per element the
      // operations are those of the whole-tensor form, in the same order.
      eigenformer::detail::parallel_chunks(p.numel(), 16.0, [&](Index begin, Index end) {
        constexpr Index kBlock = 1024;
        for (Index b = begin; b < end; b += kBlock) {
          const Index len = std::min(kBlock, end - b);
          Segment w(pw + b, len), m(pm + b, len), v(pv + b, len);
          const ConstSegment g(pg + b, len);
          if (Decay == AdamDecay::Decoupled && wd != 0) w *= decay;
          // d is the (decayed) gradient as an Eigen expression, evaluated inside and never stored.
          auto moments = [&](const auto& d) {
            m = m * beta1 + one_minus_beta1 * d;
            v = v * beta2 + (one_minus_beta2 * d) * d;  // torch's addcmul_: (value * g) * g
          };
          if (Decay == AdamDecay::L2 && wd != 0)
            moments(g + wd * w);
          else
            moments(g);
          // torch's addcdiv_(m, denom, value=-step_size) is p + (value * m) / denom.
          if (pv_max) {
            Segment v_max(pv_max + b, len);
            v_max = v_max.max(v);
            w += (neg_step_size * m) / (v_max.sqrt() / bias_correction2_sqrt + eps);
          } else {
            w += (neg_step_size * m) / (v.sqrt() / bias_correction2_sqrt + eps);
          }
        }
      });
    }
    this->end_step(done);
  }

 private:
  static Options validated(const Options& o) {
    using eigenformer::detail::concat;
    detail::check_non_negative(kName, "eps", o.eps);
    detail::check_non_negative(kName, "weight_decay", o.weight_decay);
    if (!(o.beta1 >= 0 && o.beta1 < 1))
      throw ValueError(concat(kName, ": beta1 is ", o.beta1, ", expected 0 <= beta1 < 1"));
    if (!(o.beta2 >= 0 && o.beta2 < 1))
      throw ValueError(concat(kName, ": beta2 is ", o.beta2, ", expected 0 <= beta2 < 1"));
    return o;
  }
};

/// torch.optim.Adam: L2 weight decay (default 0).
template <typename T = float>
using Adam = BasicAdam<T, AdamDecay::L2>;

/// torch.optim.AdamW: decoupled weight decay (default 0.01).
template <typename T = float>
using AdamW = BasicAdam<T, AdamDecay::Decoupled>;

}  // namespace eigenformer::optim
