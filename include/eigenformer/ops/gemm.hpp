// The matrix product every op runs on: C = op(A) op(B) (or C += ...) over row-major operands with row strides, as
// BLAS sgemm/dgemm (beta 0 or 1), described by one GemmProduct. Which backend runs a product (Eigen, the packed
// kernel of ops/gemm_kernel.hpp in float or bf16, a one-thread BLAS call, one BLAS call per thread, a threaded
// BLAS) is a pure function of its shape, layout, scalar type, the float32 matmul precision and the calling
// thread's context, choose_gemm_backend, so that the policy reads top to bottom and a table-driven test pins it
// down.
#pragma once

#include <algorithm>
#include <cctype>
#include <limits>
#include <string>
#include <type_traits>

#include <Eigen/Core>

#include "eigenformer/core/config.hpp"
#include "eigenformer/core/execution.hpp"
#include "eigenformer/core/parallel.hpp"
#include "eigenformer/ops/gemm_kernel.hpp"
#include "eigenformer/ops/streaming_gemm_kernel.hpp"

namespace eigenformer {
namespace detail {

/// Work folded into the store of a product: a per-column bias added to every row, then relu.
template <typename T>
struct GemmEpilogue {
  const T* bias = nullptr;  // n values, or null
  bool relu = false;        // max(., 0) after the bias
};

/// One product C (m x n, row stride ldc) = op(A) op(B), or C += op(A) op(B) when accumulate, then the epilogue.
/// op(A) is m x k: A is stored m x k (row stride lda), or k x m when transpose_a. op(B) is k x n: B is stored k x n
/// (ldb), or n x k when transpose_b. C must not overlap A or B. Built by name:
///   GemmProduct<T>::sizes(m, n, k).lhs(a, lda).rhs_transposed(b, ldb).out(c, ldc).add_bias(bias)
template <typename T>
struct GemmProduct {
  Index m = 0, n = 0, k = 0;
  const T* a = nullptr;
  Index lda = 0;
  bool transpose_a = false;
  const T* b = nullptr;
  Index ldb = 0;
  bool transpose_b = false;
  T* c = nullptr;
  Index ldc = 0;
  bool accumulate = false;
  GemmEpilogue<T> epilogue;

  static GemmProduct sizes(Index m, Index n, Index k) {
    GemmProduct p;
    p.m = m;
    p.n = n;
    p.k = k;
    return p;
  }
  /// A stored m x k (lda >= k).
  GemmProduct& lhs(const T* data, Index ld) { return set_a(data, ld, false); }
  /// A stored k x m: op(A) = A^T.
  GemmProduct& lhs_transposed(const T* data, Index ld) { return set_a(data, ld, true); }
  /// B stored k x n (ldb >= n).
  GemmProduct& rhs(const T* data, Index ld) { return set_b(data, ld, false); }
  /// B stored n x k: op(B) = B^T.
  GemmProduct& rhs_transposed(const T* data, Index ld) { return set_b(data, ld, true); }
  /// C = op(A) op(B).
  GemmProduct& out(T* data, Index ld) { return set_c(data, ld, false); }
  /// C += op(A) op(B).
  GemmProduct& add_to(T* data, Index ld) { return set_c(data, ld, true); }
  /// Adds bias (n values, null for none) to every row of the result.
  GemmProduct& add_bias(const T* bias) {
    epilogue.bias = bias;
    return *this;
  }
  /// Applies relu to the result (after the bias) when on.
  GemmProduct& apply_relu(bool on = true) {
    epilogue.relu = on;
    return *this;
  }

  double flops() const { return 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k); }

 private:
  GemmProduct& set_a(const T* data, Index ld, bool transposed) {
    a = data;
    lda = ld;
    transpose_a = transposed;
    return *this;
  }
  GemmProduct& set_b(const T* data, Index ld, bool transposed) {
    b = data;
    ldb = ld;
    transpose_b = transposed;
    return *this;
  }
  GemmProduct& set_c(T* data, Index ld, bool add) {
    c = data;
    ldc = ld;
    accumulate = add;
    return *this;
  }
};

/// Where a product runs.
enum class GemmBackend {
  none,           // an empty result (m or n is 0): nothing to do
  eigen,          // Eigen's product (which calls the BLAS for large products in EIGEN_USE_BLAS builds)
  eigen_lazy,     // Eigen's coefficient-wise product: never calls the BLAS
  packed,         // the packed float kernel (ops/gemm_kernel.hpp), on our OpenMP threads when large
  packed_bf16,    // the packed kernel's bf16 mode: operands rounded to bfloat16, products summed in float
  streaming,      // a few rows times a large weight, the weight streamed once (ops/streaming_gemm_kernel.hpp)
  blas,           // one call of the BLAS on the calling thread
  blas_split,     // C split into one piece per OpenMP thread, each piece a one-thread BLAS call
  blas_threaded,  // one call of a BLAS that runs its own threads
};

/// Everything the choice of a backend depends on: the product's shape and layout, its scalar type, and the calling
/// thread's situation.
struct GemmSituation {
  Index m = 0, n = 0, k = 0;
  bool transpose_a = false, transpose_b = false;
  int scalar_bytes = 4;         // 4 float, 8 double
  bool blas_scalar = true;      // float or double: a type sgemm/dgemm take
  bool fits_blas_int = true;    // every size and row stride fits the BLAS's int
  bool blas_build = false;      // built with EIGEN_USE_BLAS
  int blas_threads = 0;         // the BLAS's own thread count (OpenBLAS), 0 when unknown
  bool packed_kernel = false;   // the packed kernel runs this scalar type on this CPU (float, AVX2+FMA)
  bool blas_narrower = false;   // the BLAS's kernels use narrower vectors than the packed kernel's (see below)
  bool bf16_products = false;   // float, "medium" matmul precision, and a CPU with AVX512_BF16
  int threads = 1;              // num_threads()
  bool in_parallel_region = false;
  bool whole_part = false;      // ExecutionContext::whole_part

  double flops() const { return 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k); }
  /// Whether the packed kernel takes this product's scalar type and out-computes the BLAS at any size.
  bool packed_over_blas() const { return packed_kernel && blas_narrower; }
};

/// The vector width in bits of the float kernels an OpenBLAS core runs, by the name openblas_get_corename gives:
/// 512 for the AVX-512 cores, 256 for the AVX2 + FMA ones, 128 for the older cores that its DYNAMIC_ARCH builds
/// also fall back to on a CPU they do not know (OpenBLAS 0.3.21 runs its SSE3 "Prescott" kernels on Intel's
/// 5th-generation Xeon); 0 for a name not listed here (or no OpenBLAS): nothing is assumed.
inline int blas_kernel_vector_bits(const std::string& core) {
  std::string name;
  for (const char c : core) name += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const char* n : {"skylakex", "cooperlake", "sapphirerapids"})
    if (name == n) return 512;
  for (const char* n : {"haswell", "zen", "excavator"})
    if (name == n) return 256;
  for (const char* n : {"prescott", "core2", "penryn", "dunnington", "nehalem", "atom", "sandybridge", "bulldozer",
                        "piledriver", "steamroller", "opteron", "opteron_sse3", "barcelona", "bobcat", "athlon",
                        "katmai", "coppermine", "northwood", "banias", "nano"})
    if (name == n) return 128;
  return 0;
}

/// Whether the BLAS's float kernels are narrower than the packed kernel's (512 bits on AVX-512 CPUs unless
/// avx512_enabled is off, else 256): float products then never go to the BLAS. An OpenBLAS that runs SSE3 or AVX2
/// kernels on an AVX-512 CPU computes at a fifth or half of the packed kernel's rate.
inline bool blas_narrower_than_packed_kernel() {
  static const int blas_bits = blas_kernel_vector_bits(openblas_core_name());
  if (blas_bits == 0 || !packed_kernel_available()) return false;
#ifdef EIGENFORMER_GEMM_AVX2
  const int packed_bits =
      gemm_avx2::cpu_supports_avx512() && gemm_avx2::avx512_enabled().load(std::memory_order_relaxed) ? 512 : 256;
#else
  const int packed_bits = 0;
#endif
  return blas_bits < packed_bits;
}

/// Products of this many flops and up, on more than one thread with a one-thread BLAS, are split across our threads
/// (one BLAS call per piece); smaller ones run on the packed kernel's own threading.
constexpr double kBlasSplitMinFlops = 2e8;
/// With a BLAS that runs its own threads (or whose thread count is unknown), products of this many flops and up go
/// to it whole: below, its threads spinning after each call take the cores from our next parallel loop.
constexpr double kBlasThreadedMinFlops = 2e9;
/// Products below this many flops skip the packed kernel: packing costs more than it saves there.
constexpr double kPackedMinFlops = 1e5;
/// The largest product OpenBLAS may serve from its small-matrix kernels.
constexpr double kBlasSmallKernelMaxMultiplyAdds = 1e6;

/// Whether OpenBLAS may serve this product from one of its small-matrix kernels that malloc a buffer on every
/// call: on AVX-512 cores (SkylakeX, Cooperlake and later; OpenBLAS 0.3.16 onwards) products of at most 1e6
/// multiply-adds go to small kernels, and those for two untransposed operands copy a remainder of A into a
/// malloc'd buffer when the column count of our row-major C is not a multiple of the vector width (64 bytes).
/// Such products stay off the BLAS, so that a training step allocates nothing.
inline bool blas_small_product_allocates(const GemmSituation& s) {
  const Index lanes = 64 / s.scalar_bytes;
  return !s.transpose_a && !s.transpose_b && s.n % lanes != 0 &&
         static_cast<double>(s.m) * static_cast<double>(s.n) * static_cast<double>(s.k) <=
             kBlasSmallKernelMaxMultiplyAdds;
}

/// The backend of a product. First, float products of at most kStreamingMaxRows rows with an untransposed A and a
/// weight of kStreamingMinWeightBytes or more (a decoding step's) go to the streaming kernel. With a BLAS (unless
/// its kernels are narrower than the packed kernel's, for the packed kernel's float products): on one thread every
/// other product goes to it (it matches or beats the packed kernel at every size there when its kernels are as
/// wide), except those its small kernels would malloc for; with more threads and a
/// one-thread BLAS (what set_num_threads sets up), large products are split across our threads, one BLAS call
/// each; with a BLAS that threads itself, only very large ones go to it. Never from inside a parallel region (a
/// threaded BLAS would fight that loop for the cores), except on a thread running a whole part of a split (its
/// products are whole problems, as on one thread). Everything else: the packed kernel for float products worth
/// packing, else Eigen, coefficient-wise where Eigen would hand an allocating small product to the BLAS. Where bf16
/// products are allowed, every product worth packing but a streamed one runs in the packed kernel's bf16 mode.
inline GemmBackend choose_gemm_backend(const GemmSituation& s) {
  if (s.m == 0 || s.n == 0) return GemmBackend::none;
  // A decoding step's products (a few rows, a weight of megabytes) are bound by reading the weight: every other
  // backend packs it first. The float kernels' CPU requirement is the packed kernel's.
  if (s.packed_kernel && !s.transpose_a && s.m <= kStreamingMaxRows && s.k > 0 &&
      4.0 * static_cast<double>(s.n) * static_cast<double>(s.k) >= kStreamingMinWeightBytes)
    return GemmBackend::streaming;
  if (s.bf16_products && s.packed_kernel && s.k > 0 && s.flops() >= kPackedMinFlops) return GemmBackend::packed_bf16;
  const bool blas_ok = s.blas_build && s.blas_scalar && s.fits_blas_int && s.k > 0 && !s.packed_over_blas();
  const bool small_allocates = blas_small_product_allocates(s);
  if (blas_ok) {
    if (s.whole_part) {
      if (s.blas_threads == 1 && !small_allocates) return GemmBackend::blas;
    } else if (!s.in_parallel_region) {
      if (s.threads == 1) {
        if (!small_allocates) return GemmBackend::blas;
      } else if (s.blas_threads == 1) {
        if (s.flops() >= kBlasSplitMinFlops) return GemmBackend::blas_split;
      } else if (s.flops() >= kBlasThreadedMinFlops) {
        return GemmBackend::blas_threaded;
      }
    }
  }
  if (s.packed_kernel && s.k > 0 && s.flops() >= kPackedMinFlops) return GemmBackend::packed;
  // Eigen evaluates products above a few coefficients as GEMMs, which go to the BLAS in EIGEN_USE_BLAS builds.
  if (s.blas_build && small_allocates) return GemmBackend::eigen_lazy;
  return GemmBackend::eigen;
}

/// Whether two independent products run at once, each a whole one-thread BLAS call on its own thread: on exactly
/// two threads with a one-thread BLAS, outside a parallel region, when both are large (where gemm() would split
/// each across the two threads and every piece would repack the operand the pieces share).
inline bool gemm_pair_side_by_side(const GemmSituation& p, const GemmSituation& q) {
  const auto large = [](const GemmSituation& s) {
    return s.m > 0 && s.n > 0 && s.k > 0 && s.blas_scalar && s.fits_blas_int && s.flops() >= kBlasSplitMinFlops;
  };
  return p.blas_build && !p.in_parallel_region && !p.whole_part && p.threads == 2 && p.blas_threads == 1 &&
         !p.bf16_products && !q.bf16_products && !p.packed_over_blas() && !q.packed_over_blas() && large(p) &&
         large(q);
}

/// Whether products of T run in the packed kernel's bf16 mode: float, "medium" precision, a CPU with AVX512_BF16.
template <typename T>
bool bf16_products_enabled() {
  return std::is_same_v<T, float> &&
         matmul_precision_setting().load(std::memory_order_relaxed) == MatmulPrecision::medium &&
         bf16_kernel_available();
}

/// The situation of product p on the calling thread.
template <typename T>
GemmSituation situation_of(const GemmProduct<T>& p) {
  constexpr Index kIntMax = std::numeric_limits<int>::max();
  GemmSituation s;
  s.m = p.m;
  s.n = p.n;
  s.k = p.k;
  s.transpose_a = p.transpose_a;
  s.transpose_b = p.transpose_b;
  s.scalar_bytes = static_cast<int>(sizeof(T));
  s.blas_scalar = std::is_same_v<T, float> || std::is_same_v<T, double>;
  s.fits_blas_int = std::max({p.m, p.n, p.k, p.lda, p.ldb, p.ldc}) <= kIntMax;
#ifdef EIGEN_USE_BLAS
  s.blas_build = true;
  s.blas_threads = blas_num_threads();
#endif
  s.packed_kernel = std::is_same_v<T, float> && packed_kernel_available();
  s.blas_narrower = blas_narrower_than_packed_kernel();
  s.bf16_products = bf16_products_enabled<T>();
  s.threads = num_threads();
  s.in_parallel_region = in_parallel_region();
  s.whole_part = execution_context().whole_part;
  return s;
}

/// Whether a thread running a whole part of a split runs its products of T as one-thread BLAS calls. If not, they
/// run on the packed kernel (in float or bf16), which packs all of B into a buffer of that thread's own (the BLAS
/// packs block by block): a runner then splits only models whose weight matrices are small.
template <typename T>
bool whole_part_products_on_blas() {
#ifdef EIGEN_USE_BLAS
  return (std::is_same_v<T, float> || std::is_same_v<T, double>) && blas_num_threads() == 1 &&
         !bf16_products_enabled<T>() && !(std::is_same_v<T, float> && blas_narrower_than_packed_kernel());
#else
  return false;
#endif
}

/// The Eigen path: strided maps, the transposes folded into the product expression; coefficient-wise (a lazy
/// product, which never calls the BLAS) when lazy.
template <typename T>
void gemm_eigen(const GemmProduct<T>& p, bool lazy) {
  using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Map = Eigen::Map<Mat, 0, Eigen::OuterStride<>>;
  using ConstMap = Eigen::Map<const Mat, 0, Eigen::OuterStride<>>;
  const Index m = p.m, n = p.n, k = p.k;
  Map cm(p.c, m, n, Eigen::OuterStride<>(p.ldc));
  const ConstMap am(p.a, p.transpose_a ? k : m, p.transpose_a ? m : k, Eigen::OuterStride<>(p.lda));
  const ConstMap bm(p.b, p.transpose_b ? n : k, p.transpose_b ? k : n, Eigen::OuterStride<>(p.ldb));
  auto assign = [&](const auto& product) {
    if (p.accumulate)
      cm.noalias() += product;
    else
      cm.noalias() = product;
  };
  if (k == 0) {  // an empty sum
    if (!p.accumulate) cm.setZero();
  } else if (!p.transpose_a && !p.transpose_b) {
    if (lazy)
      assign(am.lazyProduct(bm));
    else
      assign(am * bm);
  } else if (p.transpose_a && !p.transpose_b) {
    assign(am.transpose() * bm);
  } else if (!p.transpose_a && p.transpose_b) {
    assign(am * bm.transpose());
  } else {
    assign(am.transpose() * bm.transpose());
  }
  if (p.epilogue.bias) cm.rowwise() += Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>>(p.epilogue.bias, n);
  if (p.epilogue.relu) cm.array() = (cm.array() < T(0)).select(T(0), cm.array());  // NaN stays NaN (torch.relu)
}

#ifdef EIGEN_USE_BLAS
/// The BLAS path: sgemm/dgemm called directly (float and double only: choose_gemm_backend sends nothing else).
/// Row-major C is column-major C^T = op(B)^T op(A)^T, so B goes first and the transpose flags carry over. A bias is
/// written into C first and taken in with beta = 1 (Eigen's product would zero C, run the BLAS with beta = 1, then
/// add the bias in a third pass).
template <typename T>
void gemm_blas(const GemmProduct<T>& p) {
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
    const int im = static_cast<int>(p.m), in = static_cast<int>(p.n), ik = static_cast<int>(p.k);
    const int ilda = static_cast<int>(p.lda), ildb = static_cast<int>(p.ldb), ildc = static_cast<int>(p.ldc);
    const char ta = p.transpose_a ? 'T' : 'N', tb = p.transpose_b ? 'T' : 'N';
    using RowMap = Eigen::Map<Eigen::Matrix<T, 1, Eigen::Dynamic>>;
    const T* bias_data = p.epilogue.bias;
    const Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>> bias(bias_data, bias_data ? p.n : 0);
    const T one = 1;
    T beta = p.accumulate ? 1 : 0;
    if (bias_data && !p.accumulate) {
      for (Index i = 0; i < p.m; ++i) RowMap(p.c + i * p.ldc, p.n) = bias;
      beta = 1;
    }
    if constexpr (std::is_same_v<T, float>)
      sgemm_(&tb, &ta, &in, &im, &ik, &one, p.b, &ildb, p.a, &ilda, &beta, p.c, &ildc);
    else
      dgemm_(&tb, &ta, &in, &im, &ik, &one, p.b, &ildb, p.a, &ilda, &beta, p.c, &ildc);
    if (bias_data && p.accumulate)
      for (Index i = 0; i < p.m; ++i) RowMap(p.c + i * p.ldc, p.n) += bias;
    if (p.epilogue.relu)  // NaN stays NaN (torch.relu)
      for (Index i = 0; i < p.m; ++i) {
        RowMap row(p.c + i * p.ldc, p.n);
        row.array() = (row.array() < T(0)).select(T(0), row.array());
      }
  }
}

/// gemm_blas with C split into one piece per OpenMP thread, each piece a call of the one-thread BLAS from its own
/// thread. Every piece repacks the operand the pieces share, so C is split along its longer side (by rows when
/// m >= n: op(B), k x n, is the smaller one to repeat); in return the pieces run like independent one-thread
/// products, and no BLAS thread is left spinning between calls.
template <typename T>
void gemm_blas_split(const GemmProduct<T>& p) {
#ifdef _OPENMP
  const Index parts = num_threads();
  const bool by_rows = p.m >= p.n;
  const Index extent = by_rows ? p.m : p.n;
  const Index step = ((extent + parts - 1) / parts + 15) / 16 * 16;
#pragma omp parallel num_threads(static_cast<int>(parts))
  for (auto [part, last] = thread_share(parts); part < last; ++part) {
    const Index begin = part * step, size = std::min(step, extent - begin);
    if (size <= 0) continue;
    GemmProduct<T> piece = p;
    if (by_rows) {
      piece.m = size;
      piece.a = p.transpose_a ? p.a + begin : p.a + begin * p.lda;
      piece.c = p.c + begin * p.ldc;
    } else {
      piece.n = size;
      piece.b = p.transpose_b ? p.b + begin * p.ldb : p.b + begin;
      piece.c = p.c + begin;
      if (p.epilogue.bias) piece.epilogue.bias = p.epilogue.bias + begin;
    }
    gemm_blas(piece);  // sgemm_ does not throw
  }
#else
  gemm_blas(p);
#endif
}
#endif  // EIGEN_USE_BLAS

/// Runs p on the backend choose_gemm_backend picks for it.
template <typename T>
void gemm(const GemmProduct<T>& p) {
  const GemmBackend backend = choose_gemm_backend(situation_of(p));
  switch (backend) {
    case GemmBackend::none:
      return;
#ifdef EIGEN_USE_BLAS
    case GemmBackend::blas:
    case GemmBackend::blas_threaded:
      gemm_blas(p);
      return;
    case GemmBackend::blas_split:
      gemm_blas_split(p);
      return;
#endif
#ifdef EIGENFORMER_GEMM_AVX2
    case GemmBackend::streaming:
      if constexpr (std::is_same_v<T, float>) {
        streaming::gemm(p.m, p.n, p.k, p.a, p.lda, p.b, p.ldb, p.transpose_b, p.c, p.ldc, p.accumulate,
                        p.epilogue.bias, p.epilogue.relu);
        return;
      }
      break;
    case GemmBackend::packed:
    case GemmBackend::packed_bf16:
      if constexpr (std::is_same_v<T, float>) {
        gemm_avx2::gemm(p.m, p.n, p.k, p.a, p.lda, p.transpose_a, p.b, p.ldb, p.transpose_b, p.c, p.ldc,
                        p.accumulate, p.epilogue.bias, p.epilogue.relu, backend == GemmBackend::packed_bf16);
        return;
      }
      break;
#endif
    case GemmBackend::eigen_lazy:
      gemm_eigen(p, true);
      return;
    default:
      break;
  }
  gemm_eigen(p, false);
}

/// Two independent products (neither reads what the other writes), side by side when gemm_pair_side_by_side says
/// so (a backward's input and weight gradients are such a pair, of equal size), else one after the other.
template <typename T>
void gemm_pair(const GemmProduct<T>& p, const GemmProduct<T>& q) {
#if defined(EIGEN_USE_BLAS) && defined(_OPENMP)
  if (gemm_pair_side_by_side(situation_of(p), situation_of(q))) {
    const GemmProduct<T>* both[2] = {&p, &q};
    // A loop rather than one branch per thread number: if OpenMP gives fewer threads, one runs both.
#pragma omp parallel num_threads(2)
    for (auto [i, last] = thread_share(2); i < last; ++i) gemm_blas(*both[i]);
    return;
  }
#endif
  gemm(p);
  gemm(q);
}

}  // namespace detail
}  // namespace eigenformer
