// A variable set to a value for a scope and restored after it: the mechanism of the library's mode guards
// (NoGradGuard, ExecutionScope).
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

}  // namespace eigenformer::detail
