// Exception types thrown on misuse of the public API; messages name the function, the argument, what it got
// and what it expected.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace eigenformer {

/// Base class of every exception the library throws.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

/// Shapes that do not fit the operation (mismatched, wrong rank, non-broadcastable).
class ShapeError : public Error { public: using Error::Error; };

/// A value outside its valid range: an axis, a token id, a probability, an option.
class ValueError : public Error { public: using Error::Error; };

/// Misuse of the autograd engine (backward on a non-scalar without a seed, a freed graph, ...).
class AutogradError : public Error { public: using Error::Error; };

/// Reading or writing a file failed or the file is malformed.
class IoError : public Error { public: using Error::Error; };

namespace detail {

template <typename... Args>
std::string concat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}

}  // namespace detail
}  // namespace eigenformer
