// Threading helpers: the OpenMP thread count and parallel loops that stay serial for small work or inside another
// parallel region (so kernels never fight Eigen's or a BLAS's own threads). An exception thrown by an iteration
// never escapes a parallel region: the first one is rethrown on the calling thread after the loop.
#pragma once

#include <algorithm>
#include <atomic>
#include <string>
#include <utility>

#include "eigenformer/core/config.hpp"
#include "eigenformer/core/error.hpp"
#include "eigenformer/core/execution.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(EIGEN_USE_BLAS) && (defined(__unix__) || defined(__APPLE__))
#include <dlfcn.h>

#include <cstring>
#define EIGENFORMER_OPENBLAS_THREADS 1
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

namespace detail {

#ifdef EIGENFORMER_OPENBLAS_THREADS
/// OpenBLAS's thread-count calls, looked up in the running process (null when no OpenBLAS is loaded, e.g. a build
/// with EIGEN_USE_BLAS on another BLAS). Looked up rather than declared: a declaration of ours (weak, so that
/// other BLASes link) would also make a caller's own declaration from cblas.h weak.
struct OpenBlasThreadCalls {
  void (*set)(int) = nullptr;
  int (*get)() = nullptr;
};
inline const OpenBlasThreadCalls& openblas_thread_calls() {
  static const OpenBlasThreadCalls calls = [] {
    OpenBlasThreadCalls c;
    void* set = dlsym(RTLD_DEFAULT, "openblas_set_num_threads");
    void* get = dlsym(RTLD_DEFAULT, "openblas_get_num_threads");
    static_assert(sizeof(c.set) == sizeof(set) && sizeof(c.get) == sizeof(get), "function pointers as wide as void*");
    std::memcpy(&c.set, &set, sizeof(set));
    std::memcpy(&c.get, &get, sizeof(get));
    if (!c.set || !c.get) c = OpenBlasThreadCalls();
    return c;
  }();
  return calls;
}
#endif

/// The name of the core whose kernels OpenBLAS runs ("SkylakeX", "Haswell", "Prescott", ...: its DYNAMIC_ARCH
/// choice, or OPENBLAS_CORETYPE's), or "" when no OpenBLAS is loaded (or the build has no BLAS).
inline const std::string& openblas_core_name() {
  static const std::string name = [] {
    std::string n;
#ifdef EIGENFORMER_OPENBLAS_THREADS
    using CoreNameCall = char* (*)();
    void* symbol = dlsym(RTLD_DEFAULT, "openblas_get_corename");
    CoreNameCall call = nullptr;
    static_assert(sizeof(call) == sizeof(symbol), "function pointers as wide as void*");
    std::memcpy(&call, &symbol, sizeof(symbol));
    if (call) {
      const char* s = call();
      if (s) n = s;
    }
#endif
    return n;
  }();
  return name;
}

/// The BLAS's own thread count (OpenBLAS), or 0 when there is none to ask.
inline int blas_num_threads() {
#ifdef EIGENFORMER_OPENBLAS_THREADS
  if (openblas_thread_calls().get) return openblas_thread_calls().get();
#endif
  return 0;
}
}  // namespace detail

/// Sets the threads that parallel kernels and matrix products use (OpenMP's thread count), and in BLAS builds sets
/// OpenBLAS to one thread: eigenformer then splits large products across its own threads, one OpenBLAS call per
/// piece (without this call OpenBLAS follows OPENBLAS_NUM_THREADS or OMP_NUM_THREADS from the environment, or takes
/// every core, and only very large products go to it when eigenformer runs on more than one thread). No effect
/// without OpenMP and a BLAS. Throws ValueError unless n >= 1.
inline void set_num_threads(int n) {
  if (n < 1) throw ValueError(detail::concat("set_num_threads: n is ", n, ", expected n >= 1"));
#ifdef _OPENMP
  omp_set_num_threads(n);
#endif
#ifdef EIGENFORMER_OPENBLAS_THREADS
  if (detail::openblas_thread_calls().set) detail::openblas_thread_calls().set(1);
#endif
}

namespace detail {

/// Work (in flops, or element operations for memory-bound loops) below which forking threads costs more than it
/// saves: waking a sleeping OpenMP thread costs some microseconds.
constexpr double kMinParallelFlops = 1e5;

/// True inside an OpenMP parallel region (ours or the caller's).
inline bool in_parallel_region() {
#ifdef _OPENMP
  return omp_in_parallel();
#else
  return false;
#endif
}

/// True when a loop of this much work should fork: OpenMP is on with more than one thread and we are not already
/// inside a parallel region (no nested teams: kernels never fight an outer loop's threads).
inline bool worth_parallel(double work) {
#ifdef _OPENMP
  return work >= kMinParallelFlops && !in_parallel_region() && omp_get_max_threads() > 1;
#else
  (void)work;
  return false;
#endif
}

#ifdef _OPENMP
/// Inside a parallel region: the contiguous share [begin, end) of [0, n) that falls to the calling thread, the split
/// of an `omp for schedule(static)`. The library's parallel loops divide their work with it (or with an atomic
/// counter) instead of an `omp for`: LLVM's OpenMP runtime mallocs in every worksharing loop, and a steady-state
/// step allocates nothing.
inline std::pair<Index, Index> thread_share(Index n) {
  const Index threads = omp_get_num_threads(), me = omp_get_thread_num();
  const Index base = n / threads, extra = n % threads;
  const Index begin = me * base + std::min(me, extra);
  return {begin, begin + base + (me < extra ? 1 : 0)};
}
#endif

/// Calls f(i) for i in [0, n): in parallel when OpenMP is on, there are at least two items, the estimated work
/// (flops_per_item * n) is worth a fork, and we are not already inside a parallel region.
template <typename F>
void parallel_for(Index n, double flops_per_item, F&& f) {
#ifdef _OPENMP
  if (n > 1 && worth_parallel(flops_per_item * static_cast<double>(n))) {
    FirstException error;
#pragma omp parallel
    {
      const auto [begin, end] = thread_share(n);
      for (Index i = begin; i < end; ++i) error.run([&] { f(i); });
    }
    error.rethrow();
    return;
  }
#endif
  (void)flops_per_item;
  for (Index i = 0; i < n; ++i) f(i);
}

/// How parallel_chunks splits [0, n): count ranges of size items (the last may be shorter); one range of all n
/// items when the loop stays serial (see parallel_for), none when n <= 0.
struct ChunkPlan {
  Index size = 0, count = 0;
};
inline ChunkPlan chunk_plan(Index n, double flops_per_item) {
  if (n <= 0) return {};
#ifdef _OPENMP
  if (n > 64 && worth_parallel(flops_per_item * static_cast<double>(n))) {
    const Index parts = 4 * static_cast<Index>(omp_get_max_threads());
    const Index size = ((n + parts - 1) / parts + 15) / 16 * 16;
    return {size, (n + size - 1) / size};
  }
#endif
  (void)flops_per_item;
  return {n, 1};
}

/// Calls f(k, begin, end) for the k-th range of plan over [0, n), in parallel when there is more than one. Ranges
/// are handed out dynamically, so a thread the OS delays does not hold the others up; k lets a caller keep one
/// partial result per range and combine them in order afterwards.
template <typename F>
void run_chunks(Index n, const ChunkPlan& plan, F&& f) {
#ifdef _OPENMP
  if (plan.count > 1) {
    FirstException error;
    std::atomic<Index> next{0};
#pragma omp parallel
    for (Index k; (k = next.fetch_add(1, std::memory_order_relaxed)) < plan.count;)
      error.run([&] { f(k, k * plan.size, std::min(n, (k + 1) * plan.size)); });
    error.rethrow();
    return;
  }
#endif
  if (plan.count == 1) f(Index(0), Index(0), n);
}

/// Calls f(begin, end) on consecutive ranges covering [0, n) (a few per thread, multiples of 16 items), in
/// parallel under the same conditions as parallel_for: for elementwise loops, whose body then vectorizes over the
/// range.
template <typename F>
void parallel_chunks(Index n, double flops_per_item, F&& f) {
  run_chunks(n, chunk_plan(n, flops_per_item), [&](Index, Index begin, Index end) { f(begin, end); });
}

}  // namespace detail
}  // namespace eigenformer
