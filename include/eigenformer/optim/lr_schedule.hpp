// Learning-rate schedules as small value types: constant, linear warmup then linear decay, cosine with warmup;
// match Hugging Face transformers' get_constant_schedule, get_linear_schedule_with_warmup and
// get_cosine_schedule_with_warmup (a torch LambdaLR stepped once per optimizer step).
//
// schedule(k) is the learning rate of optimizer step k, counted from 0 (LambdaLR's lr before the k-th
// optimizer.step()). Apply it before each step:
//   opt.set_lr(schedule(opt.step_count()));
//   opt.step();
// step_count() comes from the optimizer's state, so a resumed run picks up the schedule where it stopped.
#pragma once

#include <algorithm>
#include <cmath>

#include "eigenformer/core/config.hpp"
#include "eigenformer/core/error.hpp"

namespace eigenformer::optim {
namespace detail {

inline void check_schedule_step(const char* fn, Index step) {
  if (step < 0) throw ValueError(eigenformer::detail::concat(fn, ": step is ", step, ", expected step >= 0"));
}

/// Validates lr and the step counts shared by the warmup schedules.
template <typename T>
void check_schedule_options(const char* fn, T lr, Index warmup_steps, Index total_steps) {
  using eigenformer::detail::concat;
  if (!(lr >= 0) || !std::isfinite(static_cast<double>(lr)))
    throw ValueError(concat(fn, ": lr is ", lr, ", expected a finite value >= 0"));
  if (warmup_steps < 0) throw ValueError(concat(fn, ": warmup_steps is ", warmup_steps, ", expected >= 0"));
  if (total_steps < 0) throw ValueError(concat(fn, ": total_steps is ", total_steps, ", expected >= 0"));
  if (warmup_steps > total_steps)
    throw ValueError(concat(fn, ": warmup_steps is ", warmup_steps, ", more than total_steps ", total_steps));
}

/// The warmup factor step / warmup_steps (transformers' float(current_step) / float(max(1, num_warmup_steps))).
inline double warmup_factor(Index step, Index warmup_steps) {
  return static_cast<double>(step) / static_cast<double>(std::max<Index>(1, warmup_steps));
}

}  // namespace detail

/// The same learning rate at every step (transformers.get_constant_schedule).
template <typename T = float>
class ConstantSchedule {
 public:
  /// Throws ValueError on a negative or non-finite lr.
  explicit ConstantSchedule(T lr) : lr_(lr) { detail::check_schedule_options("ConstantSchedule", lr, 0, 0); }
  /// The learning rate of step (>= 0).
  T operator()(Index step) const {
    detail::check_schedule_step("ConstantSchedule", step);
    return lr_;
  }
  T base_lr() const { return lr_; }

 private:
  T lr_;
};

namespace detail {

/// What the warmup schedules share: the peak lr, the step counts and their checks, the warmup ramp.
template <typename T>
class WarmupSchedule {
 public:
  T base_lr() const { return lr_; }
  Index warmup_steps() const { return warmup_steps_; }
  Index total_steps() const { return total_steps_; }

 protected:
  WarmupSchedule(const char* fn, T lr, Index warmup_steps, Index total_steps)
      : fn_(fn), lr_(lr), warmup_steps_(warmup_steps), total_steps_(total_steps) {
    check_schedule_options(fn, lr, warmup_steps, total_steps);
  }
  /// Whether step is in the warmup (after checking it).
  bool warming_up(Index step) const {
    check_schedule_step(fn_, step);
    return step < warmup_steps_;
  }
  /// The steps after the warmup, at least 1.
  double decay_steps() const { return static_cast<double>(std::max<Index>(1, total_steps_ - warmup_steps_)); }
  /// lr * factor.
  T scaled(double factor) const { return static_cast<T>(static_cast<double>(lr_) * factor); }
  T warmup_lr(Index step) const { return scaled(warmup_factor(step, warmup_steps_)); }

 private:
  const char* fn_;
  T lr_;
  Index warmup_steps_, total_steps_;
};

}  // namespace detail

/// Linear warmup from 0 to lr over warmup_steps, then linear decay to 0 at total_steps and 0 after it
/// (transformers.get_linear_schedule_with_warmup).
template <typename T = float>
class LinearSchedule : public detail::WarmupSchedule<T> {
 public:
  /// Throws ValueError on a negative or non-finite lr, negative step counts, or warmup_steps > total_steps.
  LinearSchedule(T lr, Index warmup_steps, Index total_steps)
      : detail::WarmupSchedule<T>("LinearSchedule", lr, warmup_steps, total_steps) {}
  /// The learning rate of step (>= 0).
  T operator()(Index step) const {
    if (this->warming_up(step)) return this->warmup_lr(step);
    return this->scaled(std::max(0.0, static_cast<double>(this->total_steps() - step) / this->decay_steps()));
  }
};

/// Linear warmup from 0 to lr over warmup_steps (0 for none), then lr * (1 + cos(pi * 2 * num_cycles * progress))
/// / 2 with progress going from 0 to 1 between warmup_steps and total_steps; the default half cycle ends at 0.
/// As in transformers.get_cosine_schedule_with_warmup, the cosine continues past total_steps (it rises again).
template <typename T = float>
class CosineSchedule : public detail::WarmupSchedule<T> {
 public:
  /// Throws ValueError on a negative or non-finite lr or num_cycles, negative step counts, or
  /// warmup_steps > total_steps.
  CosineSchedule(T lr, Index warmup_steps, Index total_steps, double num_cycles = 0.5)
      : detail::WarmupSchedule<T>("CosineSchedule", lr, warmup_steps, total_steps), num_cycles_(num_cycles) {
    if (!(num_cycles >= 0) || !std::isfinite(num_cycles))
      throw ValueError(eigenformer::detail::concat("CosineSchedule: num_cycles is ", num_cycles,
                                                   ", expected a finite value >= 0"));
  }
  /// The learning rate of step (>= 0).
  T operator()(Index step) const {
    if (this->warming_up(step)) return this->warmup_lr(step);
    constexpr double pi = 3.14159265358979323846;
    const double progress = static_cast<double>(step - this->warmup_steps()) / this->decay_steps();
    return this->scaled(std::max(0.0, 0.5 * (1.0 + std::cos(pi * num_cycles_ * 2.0 * progress))));
  }
  double num_cycles() const { return num_cycles_; }

 private:
  double num_cycles_;
};

}  // namespace eigenformer::optim
