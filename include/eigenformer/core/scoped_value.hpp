// A variable set to a value for a scope and restored after it: the mechanism of the library's mode guards
// (NoGradGuard, ExecutionScope) and of the autograd's per-thread hooks (GradientReadyScope, PartGradients::Part).
#pragma once

namespace eigenformer::detail {

/// Sets slot to value for its lifetime, then puts back what slot held before; guards nest.
template <class T>
class ScopedValue {
 public:
  ScopedValue(T& slot, T value) : slot_(slot), previous_(slot) { slot_ = value; }
  ~ScopedValue() { slot_ = previous_; }
  ScopedValue(const ScopedValue&) = delete;
  ScopedValue& operator=(const ScopedValue&) = delete;

 private:
  T& slot_;
  T previous_;
};

/// The calling thread's current P (one slot per type P), null until a ScopedValue on it sets one.
template <class P>
P*& thread_current() {
  thread_local P* current = nullptr;
  return current;
}

}  // namespace eigenformer::detail
