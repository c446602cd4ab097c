// Thread-local gradient recording switch and the NoGradGuard scope guard (torch.no_grad).
#pragma once

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
class NoGradGuard {
 public:
  NoGradGuard() : previous_(detail::grad_mode_flag()) { detail::grad_mode_flag() = false; }
  ~NoGradGuard() { detail::grad_mode_flag() = previous_; }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

/// Re-enables recording on this thread for its lifetime, inside a NoGradGuard (like torch.enable_grad).
class EnableGradGuard {
 public:
  EnableGradGuard() : previous_(detail::grad_mode_flag()) { detail::grad_mode_flag() = true; }
  ~EnableGradGuard() { detail::grad_mode_flag() = previous_; }
  EnableGradGuard(const EnableGradGuard&) = delete;
  EnableGradGuard& operator=(const EnableGradGuard&) = delete;

 private:
  bool previous_;
};

}  // namespace eigenformer
