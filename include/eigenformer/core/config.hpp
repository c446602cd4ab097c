// Library-wide configuration: version, the index type and the internal assert macro.
#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>

#define EIGENFORMER_VERSION_MAJOR 0
#define EIGENFORMER_VERSION_MINOR 1
#define EIGENFORMER_VERSION_PATCH 0

// Internal invariants only (never user input): vanishes under NDEBUG, as Eigen's eigen_assert does.
#ifndef EIGENFORMER_ASSERT
#define EIGENFORMER_ASSERT(cond) assert(cond)
#endif

namespace eigenformer {

/// Signed size type used for every dimension, count and element index (same as Eigen::Index).
using Index = std::ptrdiff_t;

}  // namespace eigenformer
