// The matrix product every op runs on: C = op(A) op(B) (or C += ...) over row-major operands with row strides, as
// BLAS sgemm/dgemm (beta 0 or 1). Float runs on a packed AVX2+FMA kernel chosen at run time (the BLIS/GotoBLAS
// layout, Goto & van de Geijn 2008), with 512-bit tiles on AVX-512 CPUs; other types and other CPUs go through
// Eigen, and so do large products outside parallel regions in EIGEN_USE_BLAS builds (Eigen then calls the BLAS).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <limits>
#include <new>
#include <type_traits>

#include <Eigen/Core>

#include "eigenformer/core/config.hpp"
#include "eigenformer/core/parallel.hpp"

// Why a kernel of our own: GCC 12 compiles Eigen 3.4's float GEBP kernel into FMAs that reload their lhs operand
// from memory (16 loads per 12 FMAs), about 55% of the FMA peak on AVX2 machines; clang reaches ~80%, and so does
// this kernel with either compiler. EIGENFORMER_NO_GEMM_KERNEL turns it off (everything through Eigen).
#if !defined(EIGENFORMER_NO_GEMM_KERNEL) && (defined(__GNUC__) || defined(__clang__)) && \
    (defined(__x86_64__) || defined(__i386__))
#define EIGENFORMER_GEMM_AVX2 1
#include <immintrin.h>
#endif

namespace eigenformer {
namespace detail {

/// Work folded into the store of a product: a per-column bias added to every row, then relu.
template <typename T>
struct GemmEpilogue {
  const T* bias = nullptr;  // n values, or null
  bool relu = false;        // max(., 0) after the bias
};

/// C (m x n, row stride ldc) = op(A) op(B), or C += op(A) op(B) when accumulate, then the epilogue. op(A) is m x k:
/// A is stored m x k (row stride lda), or k x m when transpose_a. op(B) is k x n: B is stored k x n (ldb), or
/// n x k when transpose_b. Runs on OpenMP threads when the product is large and we are not already inside a
/// parallel region. C must not overlap A or B.
template <typename T>
void gemm(Index m, Index n, Index k, const T* a, Index lda, bool transpose_a, const T* b, Index ldb,
          bool transpose_b, T* c, Index ldc, bool accumulate, const GemmEpilogue<T>& epilogue = {});

/// One gemm() call's arguments, for running two independent products together (gemm_pair).
template <typename T>
struct GemmProduct {
  Index m, n, k;
  const T* a;
  Index lda;
  bool transpose_a;
  const T* b;
  Index ldb;
  bool transpose_b;
  T* c;
  Index ldc;
  bool accumulate = false;
  GemmEpilogue<T> epilogue = {};

  double flops() const { return 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k); }
  void run() const { gemm(m, n, k, a, lda, transpose_a, b, ldb, transpose_b, c, ldc, accumulate, epilogue); }
};

/// Whether OpenBLAS may serve this product from one of its small-matrix kernels that malloc a buffer on every
/// call. On AVX-512 cores (SkylakeX, Cooperlake and later; 0.3.16 onwards) products of at most 1e6 multiply-adds
/// go to small kernels, and those for two untransposed operands copy a remainder of A into a malloc'd buffer when
/// the column count of our row-major C is not a multiple of the vector width (16 floats, 8 doubles): attention's
/// P V with 8-wide heads, for one. Such products skip the BLAS, so that a training step allocates nothing.
template <typename T>
bool blas_small_product_allocates(Index m, Index n, Index k, bool transpose_a, bool transpose_b) {
  constexpr Index kLanes = 64 / static_cast<Index>(sizeof(T));
  return !transpose_a && !transpose_b && n % kLanes != 0 &&
         static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k) <= 1e6;
}

/// The Eigen path: strided maps, the transposes folded into the product expression.
template <typename T>
void gemm_eigen(Index m, Index n, Index k, const T* a, Index lda, bool transpose_a, const T* b, Index ldb,
                bool transpose_b, T* c, Index ldc, bool accumulate, const GemmEpilogue<T>& epilogue) {
  using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Map = Eigen::Map<Mat, 0, Eigen::OuterStride<>>;
  using ConstMap = Eigen::Map<const Mat, 0, Eigen::OuterStride<>>;
  Map cm(c, m, n, Eigen::OuterStride<>(ldc));
  const ConstMap am(a, transpose_a ? k : m, transpose_a ? m : k, Eigen::OuterStride<>(lda));
  const ConstMap bm(b, transpose_b ? n : k, transpose_b ? k : n, Eigen::OuterStride<>(ldb));
  auto assign = [&](const auto& product) {
    if (accumulate)
      cm.noalias() += product;
    else
      cm.noalias() = product;
  };
#ifdef EIGEN_USE_BLAS
  // Eigen hands the products it evaluates as GEMMs to the BLAS; one the BLAS would serve with an allocating small
  // kernel is evaluated coefficient by coefficient instead (a lazy product never calls the BLAS).
  const bool lazy = blas_small_product_allocates<T>(m, n, k, transpose_a, transpose_b);
#else
  constexpr bool lazy = false;
#endif
  if (k == 0) {  // an empty sum
    if (!accumulate) cm.setZero();
  } else if (!transpose_a && !transpose_b) {
    if (lazy)
      assign(am.lazyProduct(bm));
    else
      assign(am * bm);
  } else if (transpose_a && !transpose_b) {
    assign(am.transpose() * bm);
  } else if (!transpose_a && transpose_b) {
    assign(am * bm.transpose());
  } else {
    assign(am.transpose() * bm.transpose());
  }
  if (epilogue.bias) cm.rowwise() += Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>>(epilogue.bias, n);
  if (epilogue.relu) cm.array() = (cm.array() < T(0)).select(T(0), cm.array());  // NaN stays NaN (torch.relu)
}

#ifdef EIGEN_USE_BLAS
/// With more than one thread and a one-thread BLAS, products of this many flops and up are split across our
/// threads, each piece a one-thread BLAS call (model_bench at 2 threads, medians of 5 alternating runs against a
/// 2e9 threshold: mini's training step 166 -> 151 ms, tiny's 53.3 -> 50.1, base-layer's 144 -> 142); below it
/// the packed kernel's own threading runs them.
constexpr double kBlasSplitMinFlops = 2e8;
/// With a BLAS that runs its own threads (or whose thread count is unknown), products of this many flops and up go
/// to it whole: below, its threads spinning after each call take the cores from our next parallel loop.
constexpr double kBlasThreadedMinFlops = 2e9;

/// Whether gemm_blas takes a product of these sizes: float or double, k > 0, every size within the BLAS's int.
template <typename T>
bool blas_can_run(Index m, Index n, Index k, Index lda, Index ldb, Index ldc) {
  constexpr Index kIntMax = std::numeric_limits<int>::max();
  return (std::is_same_v<T, float> || std::is_same_v<T, double>) && k > 0 &&
         std::max({m, n, k, lda, ldb, ldc}) <= kIntMax;
}

/// The BLAS path: sgemm/dgemm called directly. Row-major C is column-major C^T = op(B)^T op(A)^T, so B goes
/// first and the transpose flags carry over. A bias is written into C first and taken in with beta = 1 (Eigen's
/// product would zero C, run the BLAS with beta = 1, then add the bias in a third pass). Returns false, doing
/// nothing, for other types or sizes beyond the BLAS's int.
template <typename T>
bool gemm_blas(Index m, Index n, Index k, const T* a, Index lda, bool transpose_a, const T* b, Index ldb,
               bool transpose_b, T* c, Index ldc, bool accumulate, const GemmEpilogue<T>& epilogue) {
  if constexpr (!std::is_same_v<T, float> && !std::is_same_v<T, double>) {
    return false;
  } else {
    if (!blas_can_run<T>(m, n, k, lda, ldb, ldc)) return false;
    const int im = static_cast<int>(m), in = static_cast<int>(n), ik = static_cast<int>(k);
    const int ilda = static_cast<int>(lda), ildb = static_cast<int>(ldb), ildc = static_cast<int>(ldc);
    const char ta = transpose_a ? 'T' : 'N', tb = transpose_b ? 'T' : 'N';
    using RowMap = Eigen::Map<Eigen::Matrix<T, 1, Eigen::Dynamic>>;
    const Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>> bias(epilogue.bias, epilogue.bias ? n : 0);
    const T one = 1;
    T beta = accumulate ? 1 : 0;
    if (epilogue.bias && !accumulate) {
      for (Index i = 0; i < m; ++i) RowMap(c + i * ldc, n) = bias;
      beta = 1;
    }
    if constexpr (std::is_same_v<T, float>)
      sgemm_(&tb, &ta, &in, &im, &ik, &one, b, &ildb, a, &ilda, &beta, c, &ildc);
    else
      dgemm_(&tb, &ta, &in, &im, &ik, &one, b, &ildb, a, &ilda, &beta, c, &ildc);
    if (epilogue.bias && accumulate)
      for (Index i = 0; i < m; ++i) RowMap(c + i * ldc, n) += bias;
    if (epilogue.relu)  // NaN stays NaN (torch.relu)
      for (Index i = 0; i < m; ++i) {
        RowMap row(c + i * ldc, n);
        row.array() = (row.array() < T(0)).select(T(0), row.array());
      }
    return true;
  }
}

/// gemm_blas with C split into one piece per OpenMP thread, each piece a call of the one-thread BLAS from its own
/// thread. Every piece repacks the operand the pieces share, so C is split along its longer side (by rows when
/// m >= n: op(B), k x n, is the smaller one to repeat); in return the pieces run like independent one-thread
/// products, and no BLAS thread is left spinning between calls.
template <typename T>
bool gemm_blas_split(Index m, Index n, Index k, const T* a, Index lda, bool transpose_a, const T* b, Index ldb,
                     bool transpose_b, T* c, Index ldc, bool accumulate, const GemmEpilogue<T>& epilogue) {
#ifdef _OPENMP
  if (!blas_can_run<T>(m, n, k, lda, ldb, ldc)) return false;  // checked once: every piece then runs
  const Index parts = num_threads();
  const bool by_rows = m >= n;
  const Index extent = by_rows ? m : n;
  const Index step = ((extent + parts - 1) / parts + 15) / 16 * 16;
#pragma omp parallel for schedule(static) num_threads(static_cast<int>(parts))
  for (Index p = 0; p < parts; ++p) {
    const Index begin = p * step, size = std::min(step, extent - begin);
    if (size <= 0) continue;
    if (by_rows) {
      gemm_blas(size, n, k, transpose_a ? a + begin : a + begin * lda, lda, transpose_a, b, ldb, transpose_b,
                c + begin * ldc, ldc, accumulate, epilogue);
    } else {
      const GemmEpilogue<T> piece{epilogue.bias ? epilogue.bias + begin : nullptr, epilogue.relu};
      gemm_blas(m, size, k, a, lda, transpose_a, transpose_b ? b + begin * ldb : b + begin, ldb, transpose_b,
                c + begin, ldc, accumulate, piece);
    }
  }
  return true;
#else
  (void)m, (void)n, (void)k, (void)a, (void)lda, (void)transpose_a, (void)b, (void)ldb, (void)transpose_b, (void)c,
      (void)ldc, (void)accumulate, (void)epilogue;
  return false;
#endif
}
#endif  // EIGEN_USE_BLAS

/// Two independent products (neither reads what the other writes). On exactly two threads with a one-thread BLAS,
/// when both are large (kBlasSplitMinFlops each), they run at once, each a whole one-thread BLAS call on its own
/// thread: where gemm() would split each across the two threads and every piece would repack the operand the
/// pieces share. A backward's input and weight gradients are such a pair, of equal size. Otherwise (other thread
/// counts, small products, no BLAS) one after the other through gemm().
template <typename T>
void gemm_pair(const GemmProduct<T>& p, const GemmProduct<T>& q) {
#if defined(EIGEN_USE_BLAS) && defined(_OPENMP)
  auto blas_ok = [](const GemmProduct<T>& g) {
    return g.m > 0 && g.n > 0 && g.flops() >= kBlasSplitMinFlops &&
           blas_can_run<T>(g.m, g.n, g.k, g.lda, g.ldb, g.ldc);
  };
  if (!in_parallel_region() && num_threads() == 2 && blas_num_threads() == 1 && blas_ok(p) && blas_ok(q)) {
    const GemmProduct<T>* both[2] = {&p, &q};
    // A loop rather than one branch per thread number: if OpenMP gives fewer threads, one runs both.
#pragma omp parallel for schedule(static, 1) num_threads(2)
    for (int i = 0; i < 2; ++i) {
      const GemmProduct<T>& g = *both[i];
      gemm_blas(g.m, g.n, g.k, g.a, g.lda, g.transpose_a, g.b, g.ldb, g.transpose_b, g.c, g.ldc, g.accumulate,
                g.epilogue);
    }
    return;
  }
#endif
  p.run();
  q.run();
}

/// Products below this many flops skip the packed kernel: packing costs more than it saves there, and Eigen's
/// product is faster (ops_bench BM_gemm_kernel: 0.64 against 0.88 us at 8 x 32 x 96, 4x faster at 4 x 8 x 4; the
/// packed kernel wins from 64 x 64 x 64 on).
constexpr double kPackedMinFlops = 1e5;

#ifdef EIGENFORMER_GEMM_AVX2
namespace gemm_avx2 {

// Register tile 6 x 16 (12 ymm accumulators, 2 for the B row, 1 for the A broadcast); kc x 16 B micro-panels
// (16 KiB) stay in L1 while an mc x kc A block (up to 96 KiB) streams from L2.
constexpr Index kMr = 6, kNr = 16, kKc = 256, kMcPanels = 16;

/// An aligned scratch buffer that only grows; one per thread (thread_local), reused by every product.
struct Buffer {
  float* data = nullptr;
  std::size_t size = 0;
  Buffer() = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { std::free(data); }
  float* get(std::size_t n) {
    if (n > size) {
      std::free(data);
      data = nullptr;
      size = 0;
      const std::size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
      data = static_cast<float*>(std::aligned_alloc(64, bytes));
      if (!data) throw std::bad_alloc();
      size = n;
    }
    return data;
  }
};

inline Buffer& packed_a_buffer() {
  thread_local Buffer buffer;
  return buffer;
}
inline Buffer& packed_b_buffer() {
  thread_local Buffer buffer;
  return buffer;
}

inline bool cpu_supported() {
  static const bool ok = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return ok;
}

/// Whether the CPU runs AVX-512F: the kernel then computes 6 x 32 tiles (two B strips) in zmm registers, twice the
/// FLOPs per instruction of the 6 x 16 ymm tile, on the same packed panels.
inline bool cpu_supports_avx512() {
  static const bool ok = [] {
    __builtin_cpu_init();
    return cpu_supported() && __builtin_cpu_supports("avx512f");
  }();
  return ok;
}

/// Off forces the 6 x 16 AVX2 tiles on an AVX-512 CPU (tests compare both paths; benchmarks measure the gain).
inline std::atomic<bool>& avx512_enabled() {
  static std::atomic<bool> enabled{true};
  return enabled;
}

/// In-register transpose of the 8 x 8 block r[0..8): afterwards r[q] holds column q.
__attribute__((target("avx2,fma"))) inline void transpose8(__m256* r) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
  r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
  r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
  r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
  r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
  r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
  r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
  r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

/// Packs rows [i0, i0 + rows) of op(A), depth [k0, k0 + kc), into kc x 6 k-major panels, zero-padded to 6 rows.
/// Writes up to 2 floats past the last panel (dst needs that slack).
__attribute__((target("avx2,fma"))) inline void pack_a(const float* a, Index lda, bool transpose_a, Index i0,
                                                       Index rows, Index k0, Index kc, float* dst) {
  const Index panels = (rows + kMr - 1) / kMr;
  if (transpose_a) {
    // A is k x m: depth step p is one contiguous row of A, read once in order (a strided walk down the columns
    // would hit the same few cache sets when lda is a power of two). Each 8-float store spills 2 floats into the
    // panel's next depth step, which is written after it; the last step stores exactly 6.
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i six = _mm256_cmpgt_epi32(_mm256_set1_epi32(kMr), lanes);
    for (Index p = 0; p < kc; ++p) {
      const float* src = a + (k0 + p) * lda + i0;
      for (Index q = 0; q < panels; ++q) {
        const Index r0 = q * kMr, valid = std::min<Index>(8, rows - r0);
        const __m256 v = valid == 8 ? _mm256_loadu_ps(src + r0)
                                    : _mm256_maskload_ps(src + r0, _mm256_cmpgt_epi32(
                                                                       _mm256_set1_epi32(static_cast<int>(
                                                                           std::min<Index>(valid, kMr))),
                                                                       lanes));
        float* out = dst + q * kMr * kc + p * kMr;
        if (p + 1 < kc)
          _mm256_storeu_ps(out, v);
        else
          _mm256_maskstore_ps(out, six, v);
      }
    }
    return;
  }
  // A is m x k: six rows, 8 depth steps at a time through an 8 x 8 transpose (rows 6 and 7 are padding). Each
  // 8-float store of a column spills 2 floats into the next depth step, which the next store overwrites.
  for (Index q = 0; q < panels; ++q, dst += kMr * kc) {
    const Index r0 = q * kMr, mr = std::min(kMr, rows - r0);
    const float* src[kMr];
    for (Index r = 0; r < kMr; ++r) src[r] = a + (i0 + r0 + std::min(r, mr - 1)) * lda + k0;
    Index p = 0;
    if (mr == kMr) {
      for (; p + 8 <= kc; p += 8) {
        __m256 t[8] = {_mm256_loadu_ps(src[0] + p), _mm256_loadu_ps(src[1] + p), _mm256_loadu_ps(src[2] + p),
                       _mm256_loadu_ps(src[3] + p), _mm256_loadu_ps(src[4] + p), _mm256_loadu_ps(src[5] + p),
                       _mm256_setzero_ps(),         _mm256_setzero_ps()};
        transpose8(t);
        for (Index c = 0; c < 8; ++c) _mm256_storeu_ps(dst + (p + c) * kMr, t[c]);
      }
    }
    for (; p < kc; ++p)
      for (Index r = 0; r < kMr; ++r) dst[p * kMr + r] = r < mr ? src[r][p] : 0.0f;
  }
}

/// Packs columns [j0, j0 + cols) of op(B), depth [k0, k0 + kc), into a kc x 16 k-major panel, zero-padded.
__attribute__((target("avx2,fma"))) inline void pack_b_strip(const float* b, Index ldb, bool transpose_b, Index j0,
                                                             Index cols, Index k0, Index kc, float* dst) {
  if (!transpose_b) {  // B is k x n: sixteen consecutive floats per depth step
    const float* src = b + k0 * ldb + j0;
    if (cols == kNr) {
      for (Index p = 0; p < kc; ++p, src += ldb) {
        _mm256_store_ps(dst + p * kNr, _mm256_loadu_ps(src));
        _mm256_store_ps(dst + p * kNr + 8, _mm256_loadu_ps(src + 8));
      }
      return;
    }
    for (Index p = 0; p < kc; ++p, src += ldb) {
      Index j = 0;
      for (; j < cols; ++j) dst[p * kNr + j] = src[j];
      for (; j < kNr; ++j) dst[p * kNr + j] = 0.0f;
    }
    return;
  }
  // B is n x k: column j of op(B) is row j of B. Two 8 x 8 transposes per 8 depth steps.
  for (Index half = 0; half < kNr; half += 8) {
    const float* src[8];
    const Index valid = std::max<Index>(0, std::min<Index>(8, cols - half));
    for (Index j = 0; j < 8; ++j) src[j] = b + (j0 + half + std::min(j, std::max<Index>(valid - 1, 0))) * ldb + k0;
    Index p = 0;
    for (; p + 8 <= kc; p += 8) {
      __m256 t[8];
      for (Index j = 0; j < 8; ++j) t[j] = j < valid ? _mm256_loadu_ps(src[j] + p) : _mm256_setzero_ps();
      transpose8(t);
      for (Index q = 0; q < 8; ++q) _mm256_store_ps(dst + (p + q) * kNr + half, t[q]);
    }
    for (; p < kc; ++p)
      for (Index j = 0; j < 8; ++j) dst[p * kNr + half + j] = j < valid ? src[j][p] : 0.0f;
  }
}

/// What the last touch of a tile does besides storing: first == the first depth block (add C when accumulating,
/// add the bias), last == the last one (apply relu).
struct TileStore {
  bool accumulate;      // add the tile to what C holds (only read on the first depth block)
  const float* bias;    // 16 values for this tile's columns, or null (added on the first depth block)
  bool relu;            // max(., 0) on the last depth block
};

/// row[0, 16) = (lo, hi) [+ row] [+ bias], then [relu].
__attribute__((target("avx2,fma"))) inline void store_row(float* row, __m256 lo, __m256 hi, const TileStore& st) {
  if (st.accumulate) {
    lo = _mm256_add_ps(_mm256_loadu_ps(row), lo);
    hi = _mm256_add_ps(_mm256_loadu_ps(row + 8), hi);
  }
  if (st.bias) {
    lo = _mm256_add_ps(_mm256_loadu_ps(st.bias), lo);
    hi = _mm256_add_ps(_mm256_loadu_ps(st.bias + 8), hi);
  }
  if (st.relu) {  // max(0, v) returns v when v is NaN: NaN propagates as in torch.relu
    lo = _mm256_max_ps(_mm256_setzero_ps(), lo);
    hi = _mm256_max_ps(_mm256_setzero_ps(), hi);
  }
  _mm256_storeu_ps(row, lo);
  _mm256_storeu_ps(row + 8, hi);
}

/// The 6 x 16 tile at c (row stride ldc) = the product of a packed A panel and a packed B panel, stored by st.
__attribute__((target("avx2,fma"))) inline void micro_kernel(Index kc, const float* pa, const float* pb, float* c,
                                                             Index ldc, const TileStore& st) {
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps(), c10 = _mm256_setzero_ps(),
         c11 = _mm256_setzero_ps(), c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps(),
         c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps(), c40 = _mm256_setzero_ps(),
         c41 = _mm256_setzero_ps(), c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
  // The C tile is read or written after the loop: start fetching its lines now.
  for (Index r = 0; r < kMr; ++r) _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);
  for (Index p = 0; p < kc; ++p, pa += kMr, pb += kNr) {
    _mm_prefetch(reinterpret_cast<const char*>(pa + 8 * kMr), _MM_HINT_T0);  // A streams from L2
    const __m256 b0 = _mm256_load_ps(pb), b1 = _mm256_load_ps(pb + 8);
    __m256 x = _mm256_broadcast_ss(pa + 0);
    c00 = _mm256_fmadd_ps(x, b0, c00);
    c01 = _mm256_fmadd_ps(x, b1, c01);
    x = _mm256_broadcast_ss(pa + 1);
    c10 = _mm256_fmadd_ps(x, b0, c10);
    c11 = _mm256_fmadd_ps(x, b1, c11);
    x = _mm256_broadcast_ss(pa + 2);
    c20 = _mm256_fmadd_ps(x, b0, c20);
    c21 = _mm256_fmadd_ps(x, b1, c21);
    x = _mm256_broadcast_ss(pa + 3);
    c30 = _mm256_fmadd_ps(x, b0, c30);
    c31 = _mm256_fmadd_ps(x, b1, c31);
    x = _mm256_broadcast_ss(pa + 4);
    c40 = _mm256_fmadd_ps(x, b0, c40);
    c41 = _mm256_fmadd_ps(x, b1, c41);
    x = _mm256_broadcast_ss(pa + 5);
    c50 = _mm256_fmadd_ps(x, b0, c50);
    c51 = _mm256_fmadd_ps(x, b1, c51);
  }
  store_row(c, c00, c01, st);
  store_row(c + ldc, c10, c11, st);
  store_row(c + 2 * ldc, c20, c21, st);
  store_row(c + 3 * ldc, c30, c31, st);
  store_row(c + 4 * ldc, c40, c41, st);
  store_row(c + 5 * ldc, c50, c51, st);
}

/// row[0, 16) = v [+ row] [+ bias], then [relu]: store_row for one zmm register.
__attribute__((target("avx512f"))) inline void store_row512(float* row, __m512 v, const float* bias,
                                                            const TileStore& st) {
  if (st.accumulate) v = _mm512_add_ps(_mm512_loadu_ps(row), v);
  if (bias) v = _mm512_add_ps(_mm512_loadu_ps(bias), v);
  // max(0, v), NaN propagating as in store_row; the maskz form because GCC 12 warns about the undefined source
  // register inside _mm512_max_ps (-Wmaybe-uninitialized).
  if (st.relu) v = _mm512_maskz_max_ps(static_cast<__mmask16>(0xFFFF), _mm512_setzero_ps(), v);
  _mm512_storeu_ps(row, v);
}

/// The 6 x 32 tile at c = a packed A panel times two adjacent packed B strips (pb0 for columns 0-15, pb1 for
/// 16-31): 12 zmm accumulators, 6 broadcasts and 2 loads per 12 FMAs. st.bias covers all 32 columns.
__attribute__((target("avx512f"))) inline void micro_kernel_512(Index kc, const float* pa, const float* pb0,
                                                                const float* pb1, float* c, Index ldc,
                                                                const TileStore& st) {
  __m512 acc[kMr][2];
  for (Index r = 0; r < kMr; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (Index r = 0; r < kMr; ++r) {
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + 16), _MM_HINT_T0);
  }
  for (Index p = 0; p < kc; ++p, pa += kMr, pb0 += kNr, pb1 += kNr) {
    _mm_prefetch(reinterpret_cast<const char*>(pa + 8 * kMr), _MM_HINT_T0);  // A streams from L2
    const __m512 b0 = _mm512_loadu_ps(pb0), b1 = _mm512_loadu_ps(pb1);
    for (Index r = 0; r < kMr; ++r) {  // fully unrolled by the compiler (kMr is a constant)
      const __m512 x = _mm512_set1_ps(pa[r]);
      acc[r][0] = _mm512_fmadd_ps(x, b0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(x, b1, acc[r][1]);
    }
  }
  for (Index r = 0; r < kMr; ++r) {
    store_row512(c + r * ldc, acc[r][0], st.bias, st);
    store_row512(c + r * ldc + 16, acc[r][1], st.bias ? st.bias + 16 : nullptr, st);
  }
}

/// The valid mr x nr corner of a tile computed into scratch (row stride width), stored into cij with st's
/// epilogue.
inline void store_edge(const float* edge, Index width, Index mr, Index nr, float* cij, Index ldc,
                       const TileStore& st) {
  for (Index r = 0; r < mr; ++r)
    for (Index q = 0; q < nr; ++q) {
      float v = edge[r * width + q];
      if (st.accumulate) v += cij[r * ldc + q];
      if (st.bias) v += st.bias[q];
      if (st.relu && v < 0.0f) v = 0.0f;
      cij[r * ldc + q] = v;
    }
}

/// One (rows) x (cols) block of C at column j0 from packed A panels and packed B strips; bias (per column of C)
/// and relu as in TileStore, for the first and last depth blocks. With wide (AVX-512), two strips at a time.
inline void compute_block(Index kc, const float* pa, Index rows, const float* pb, Index j0, Index cols, float* c,
                          Index ldc, bool first, bool accumulate, const float* bias, bool last, bool relu,
                          bool wide) {
  alignas(64) float edge[kMr * 2 * kNr];
  const TileStore scratch{false, nullptr, false};
  for (Index j = j0; j < j0 + cols;) {
    const Index left = j0 + cols - j;
    const Index width = wide && left > kNr ? 2 * kNr : kNr;  // a second strip exists when more than 16 columns left
    const Index nr = std::min(width, left);
    const float* pbj = pb + j * kc;  // strips are kc x 16, j is a multiple of 16
    const TileStore st{accumulate || !first, first && bias ? bias + j : nullptr, last && relu};
    for (Index i = 0; i < rows; i += kMr) {
      const Index mr = std::min(kMr, rows - i);
      float* cij = c + i * ldc + j;
      const bool full = mr == kMr && nr == width;
      // A partial tile: the full tile into scratch, then the valid part with the same epilogue.
      if (width == 2 * kNr)
        micro_kernel_512(kc, pa + i * kc, pbj, pbj + kNr * kc, full ? cij : edge, full ? ldc : width,
                         full ? st : scratch);
      else
        micro_kernel(kc, pa + i * kc, pbj, full ? cij : edge, full ? ldc : width, full ? st : scratch);
      if (!full) store_edge(edge, width, mr, nr, cij, ldc, st);
    }
    j += width;
  }
}

inline void gemm(Index m, Index n, Index k, const float* a, Index lda, bool transpose_a, const float* b, Index ldb,
                 bool transpose_b, float* c, Index ldc, bool accumulate, const float* bias, bool relu) {
  const bool wide = cpu_supports_avx512() && avx512_enabled().load(std::memory_order_relaxed);
  const Index strips = (n + kNr - 1) / kNr;
  const Index panels = (m + kMr - 1) / kMr;
  const Index kc_max = std::min(k, kKc);
  const Index depth_blocks = (k + kKc - 1) / kKc;
  // All of op(B) is packed first, depth block by depth block (block kb holds strips of kc x 16), into the calling
  // thread's buffer; then each work item runs the whole depth loop for its block of C. One barrier per product:
  // on a machine shared with other work every barrier waits for the slowest thread's next time slice.
  const Index kb_stride = strips * kNr * kc_max;  // floats per packed depth block
  float* packed_b = packed_b_buffer().get(static_cast<std::size_t>(kb_stride * depth_blocks));
  const double flops = 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  const int threads = worth_parallel(flops / 32) ? num_threads() : 1;  // forks from ~3 MFLOP
  // Work items: blocks of up to kMcPanels A panels, by chunks of B strips when there are too few blocks to share.
  const Index block_panels = std::min(kMcPanels, std::max<Index>(1, (panels + threads - 1) / threads));
  const Index blocks = (panels + block_panels - 1) / block_panels;
  const Index chunks = std::min(strips, std::max<Index>(1, (threads + blocks - 1) / blocks));
  Index chunk_strips = (strips + chunks - 1) / chunks;
  if (wide && chunk_strips % 2 == 1 && chunk_strips < strips) ++chunk_strips;  // whole 32-column tiles per item
  const Index items = blocks * chunks;
  auto pack_b = [&](Index task) {  // task = depth block * strips + strip
    const Index kb = task / strips, s = task % strips, k0 = kb * kKc, kc = std::min(kKc, k - k0);
    pack_b_strip(b, ldb, transpose_b, s * kNr, std::min(kNr, n - s * kNr), k0, kc,
                 packed_b + kb * kb_stride + s * kNr * kc);
  };
  auto compute_item = [&](Index item, float* packed_a) {
    const Index i0 = item / chunks * block_panels * kMr, rows = std::min(block_panels * kMr, m - i0);
    const Index j0 = item % chunks * chunk_strips * kNr;
    if (j0 >= n) return;
    const Index cols = std::min(chunk_strips * kNr, n - j0);
    for (Index kb = 0, k0 = 0; k0 < k; ++kb, k0 += kKc) {
      const Index kc = std::min(kKc, k - k0);
      pack_a(a, lda, transpose_a, i0, rows, k0, kc, packed_a);
      compute_block(kc, packed_a, rows, packed_b + kb * kb_stride, j0, cols, c + i0 * ldc, ldc, k0 == 0,
                    accumulate, bias, k0 + kc >= k, relu, wide);
    }
  };
  if (threads == 1) {
    float* packed_a = packed_a_buffer().get(static_cast<std::size_t>(block_panels * kMr * kc_max + 8));
    for (Index task = 0; task < depth_blocks * strips; ++task) pack_b(task);
    for (Index item = 0; item < items; ++item) compute_item(item, packed_a);
    return;
  }
#ifdef _OPENMP
  // Strips and items are claimed from shared counters rather than split statically: a thread the OS preempts
  // then holds up only what it has claimed.
  std::atomic<Index> next_strip{0}, next_item{0};
#pragma omp parallel num_threads(threads)
  {
    for (Index task; (task = next_strip.fetch_add(1)) < depth_blocks * strips;) pack_b(task);
    float* packed_a = packed_a_buffer().get(static_cast<std::size_t>(block_panels * kMr * kc_max + 8));
#pragma omp barrier
    for (Index item; (item = next_item.fetch_add(1)) < items;) compute_item(item, packed_a);
  }
#endif
}

}  // namespace gemm_avx2
#endif  // EIGENFORMER_GEMM_AVX2

/// Whether a thread running a whole part of a batch split (running_whole_part) runs its products of T on a
/// one-thread BLAS call each. If not, they run on the packed kernel, which packs all of B into a buffer of that
/// thread's own (the BLAS packs block by block).
template <typename T>
bool whole_part_products_on_blas() {
#ifdef EIGEN_USE_BLAS
  return (std::is_same_v<T, float> || std::is_same_v<T, double>) && blas_num_threads() == 1;
#else
  return false;
#endif
}

template <typename T>
void gemm(Index m, Index n, Index k, const T* a, Index lda, bool transpose_a, const T* b, Index ldb,
          bool transpose_b, T* c, Index ldc, bool accumulate, const GemmEpilogue<T>& epilogue) {
  if (m == 0 || n == 0) return;
  [[maybe_unused]] const double flops = 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
#ifdef EIGEN_USE_BLAS
  // With a BLAS, products go to it when we run on one thread (OpenBLAS matches or beats the packed kernel at every
  // size there, and its small-matrix path is the fastest), except those its small kernels would malloc for
  // (blas_small_product_allocates). With more threads and a one-thread BLAS (what
  // set_num_threads sets up), large products are split across our threads, one BLAS call each; with a BLAS that
  // threads itself, only very large products go to it. Never from inside a parallel region other than the split's
  // own (attention's per-head products): a threaded BLAS would fight that loop for the cores. A thread running a
  // whole part of a batch split (running_whole_part) calls a one-thread BLAS as on one thread: its products are
  // whole, and the packed kernel would pack all of B into a buffer of that thread's own.
  const bool small_allocates = blas_small_product_allocates<T>(m, n, k, transpose_a, transpose_b);
  if (running_whole_part()) {
    if (whole_part_products_on_blas<T>() && !small_allocates &&
        gemm_blas(m, n, k, a, lda, transpose_a, b, ldb, transpose_b, c, ldc, accumulate, epilogue))
      return;
  } else if (!in_parallel_region()) {
    if (num_threads() == 1) {
      if (!small_allocates &&
          gemm_blas(m, n, k, a, lda, transpose_a, b, ldb, transpose_b, c, ldc, accumulate, epilogue))
        return;
    } else if (blas_num_threads() == 1) {
      if (flops >= kBlasSplitMinFlops &&
          gemm_blas_split(m, n, k, a, lda, transpose_a, b, ldb, transpose_b, c, ldc, accumulate, epilogue))
        return;
    } else if (flops >= kBlasThreadedMinFlops &&
               gemm_blas(m, n, k, a, lda, transpose_a, b, ldb, transpose_b, c, ldc, accumulate, epilogue)) {
      return;
    }
  }
#endif
#ifdef EIGENFORMER_GEMM_AVX2
  if constexpr (std::is_same_v<T, float>) {
    if (k > 0 && flops >= kPackedMinFlops && gemm_avx2::cpu_supported()) {
      gemm_avx2::gemm(m, n, k, a, lda, transpose_a, b, ldb, transpose_b, c, ldc, accumulate, epilogue.bias,
                      epilogue.relu);
      return;
    }
  }
#endif
  gemm_eigen(m, n, k, a, lda, transpose_a, b, ldb, transpose_b, c, ldc, accumulate, epilogue);
}

}  // namespace detail
}  // namespace eigenformer
