// The execution context of a thread: what a runner that spreads work over threads tells the kernels that run on
// that thread (whether its products are whole problems of their own, where its tensor buffers come from). Runners
// set it for a scope; kernels read it; models never see it.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <string>

#include "eigenformer/core/error.hpp"
#include "eigenformer/core/scoped_value.hpp"

namespace eigenformer {
namespace detail {
class PartBuffers;  // tensor/storage.hpp
}  // namespace detail

/// What the current thread is doing, as far as kernels need to know.
struct ExecutionContext {
  /// The thread runs one whole part of work that a runner split across threads (a batch split): its matrix
  /// products are whole problems of their own, run on this thread alone, although it is inside a parallel region.
  bool whole_part = false;
  /// Where the thread's tensor buffers come from and go back to; null: the process-wide cache.
  detail::PartBuffers* buffers = nullptr;
  /// The global indices of the examples of the batch being run, one per batch row (example_count of them), or
  /// null: random draws made per example (dropout masks) are keyed by these, so an example gets the same draws
  /// whichever process or batch position runs it. Set by the trainer; null means keys 0, 1, ... by row.
  const std::int64_t* example_keys = nullptr;
  std::int64_t example_count = 0;
};

namespace detail {

/// The calling thread's context (default: not a part, buffers from the shared cache).
inline ExecutionContext& execution_context() {
  thread_local ExecutionContext context;
  return context;
}

/// Keeps the first exception thrown by the iterations of a parallel loop, so that none escapes an OpenMP region
/// (which would terminate the process): the loop body runs through run(), the calling thread calls rethrow() after
/// the loop. Iterations that start after a failure are skipped. No allocation unless something throws.
class FirstException {
 public:
  template <class F>
  void run(F&& f) noexcept {
    if (failed_.load(std::memory_order_relaxed)) return;
    try {
      f();
    } catch (...) {
      bool expected = false;
      if (failed_.compare_exchange_strong(expected, true)) error_ = std::current_exception();
    }
  }
  bool failed() const noexcept { return failed_.load(std::memory_order_relaxed); }
  /// On the calling thread, after the parallel region (its end orders every write before this read).
  void rethrow() const {
    if (error_) std::rethrow_exception(error_);
  }

 private:
  std::atomic<bool> failed_{false};
  std::exception_ptr error_;
};

}  // namespace detail

/// How float matrix products may compute, process-wide (torch.set_float32_matmul_precision's names): "highest"
/// (the default) and "high" in float; "medium" lets products of float tensors round both operands to bfloat16
/// and accumulate in float where the CPU has AVX512_BF16 (elsewhere it computes as "highest"; vdpbf16ps reads
/// subnormal operands as zero). Double products and decoding steps' weight-streaming products always compute in
/// full precision.
enum class MatmulPrecision { highest, high, medium };

namespace detail {
inline std::atomic<MatmulPrecision>& matmul_precision_setting() {
  static std::atomic<MatmulPrecision> precision{MatmulPrecision::highest};
  return precision;
}
}  // namespace detail

/// Sets the float32 matmul precision: "highest", "high" or "medium" (see MatmulPrecision).
inline void set_float32_matmul_precision(const std::string& precision) {
  MatmulPrecision p;
  if (precision == "highest")
    p = MatmulPrecision::highest;
  else if (precision == "high")
    p = MatmulPrecision::high;
  else if (precision == "medium")
    p = MatmulPrecision::medium;
  else
    throw ValueError(detail::concat("set_float32_matmul_precision: precision is \"", precision,
                                    "\", expected \"highest\", \"high\" or \"medium\""));
  detail::matmul_precision_setting().store(p, std::memory_order_relaxed);
}

/// The float32 matmul precision's name: "highest", "high" or "medium".
inline std::string get_float32_matmul_precision() {
  switch (detail::matmul_precision_setting().load(std::memory_order_relaxed)) {
    case MatmulPrecision::medium:
      return "medium";
    case MatmulPrecision::high:
      return "high";
    default:
      return "highest";
  }
}

/// Sets the float32 matmul precision for its lifetime and restores the previous one (a bad name throws as
/// set_float32_matmul_precision does, changing nothing).
class MatmulPrecisionGuard {
 public:
  explicit MatmulPrecisionGuard(const std::string& precision)
      : previous_(detail::matmul_precision_setting().load(std::memory_order_relaxed)) {
    set_float32_matmul_precision(precision);
  }
  MatmulPrecisionGuard(const MatmulPrecisionGuard&) = delete;
  MatmulPrecisionGuard& operator=(const MatmulPrecisionGuard&) = delete;
  ~MatmulPrecisionGuard() { detail::matmul_precision_setting().store(previous_, std::memory_order_relaxed); }

 private:
  MatmulPrecision previous_;
};

/// Sets the calling thread's execution context for its lifetime and restores the previous one.
class ExecutionScope : detail::ScopedValue<ExecutionContext> {
 public:
  explicit ExecutionScope(const ExecutionContext& context) : ScopedValue(detail::execution_context(), context) {}
};

}  // namespace eigenformer
