// Thread-local gradient recording switch and the NoGradGuard scope guard (torch.no_grad).
#pragma once

#include "eigenformer/core/scoped_value.hpp"

namespace eigenformer {
namespace detail {
inline bool& grad_mode_flag() {
  thread_local bool enabled = true;
  return enabled;
}
}  // namespace detail

/// True when ops record a graph on this thread (the default).
inline bool is_grad_enabled() { return detail::grad_mode_flag(); }

/// Disables graph recording on this thread for its lifetime (like `with torch.no_grad():`); nests.
class NoGradGuard : detail::ScopedValue<bool> {
 public:
  NoGradGuard() : ScopedValue(detail::grad_mode_flag(), false) {}
};

/// Re-enables recording on this thread for its lifetime, inside a NoGradGuard (like torch.enable_grad).
class EnableGradGuard : detail::ScopedValue<bool> {
 public:
  EnableGradGuard() : ScopedValue(detail::grad_mode_flag(), true) {}
};

}  // namespace eigenformer
