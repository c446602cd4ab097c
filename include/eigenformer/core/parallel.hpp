// Threading helpers: the OpenMP thread count and a parallel loop that stays serial for small work or inside
// another parallel region (so kernels never fight Eigen's or a BLAS's own threads).
#pragma once

#include "eigenformer/core/config.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace eigenformer {

/// Threads that parallel kernels use (OpenMP's current maximum; 1 without OpenMP).
inline int num_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

/// Sets the threads that parallel kernels and Eigen's GEMM use (no effect without OpenMP).
inline void set_num_threads(int n) {
#ifdef _OPENMP
  omp_set_num_threads(n < 1 ? 1 : n);
#else
  (void)n;
#endif
}

namespace detail {

/// Calls f(i) for i in [0, n): in parallel when OpenMP is on, there are at least two items, the estimated work
/// (flops_per_item * n) is worth a fork, and we are not already inside a parallel region.
template <typename F>
void parallel_for(Index n, double flops_per_item, F&& f) {
#ifdef _OPENMP
  constexpr double kMinParallelFlops = 1e5;
  if (n > 1 && flops_per_item * static_cast<double>(n) >= kMinParallelFlops && !omp_in_parallel() &&
      omp_get_max_threads() > 1) {
#pragma omp parallel for schedule(static)
    for (Index i = 0; i < n; ++i) f(i);
    return;
  }
#endif
  (void)flops_per_item;
  for (Index i = 0; i < n; ++i) f(i);
}

}  // namespace detail
}  // namespace eigenformer
