// A scope in which a model is in eval mode (dropout off), restored to the mode it had after it: for evaluation,
// inference and generation in the middle of a training run.
#pragma once

namespace eigenformer {

/// Puts `model` in eval mode (its train(false), which reaches every descendant) for the guard's lifetime, then
/// back in the mode it had. Model: any module with is_training() and train(bool).
template <class Model>
class EvalModeGuard {
 public:
  explicit EvalModeGuard(Model& model) : model_(model), was_training_(model.is_training()) { model_.train(false); }
  ~EvalModeGuard() { model_.train(was_training_); }
  EvalModeGuard(const EvalModeGuard&) = delete;
  EvalModeGuard& operator=(const EvalModeGuard&) = delete;

 private:
  Model& model_;
  bool was_training_;
};

}  // namespace eigenformer
