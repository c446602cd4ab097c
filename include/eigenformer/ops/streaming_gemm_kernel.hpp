// The float kernel of products with few rows, C (m x n) = A op(B) (+ C) + bias, relu, m <= 8: a decoding step's
// projections, where op(B) is a weight read once per token and the product is bound by the memory bandwidth, not
// by the arithmetic. The weight is read once, in the order it lies in memory, straight from memory into the
// arithmetic; a blocking GEMM would pack it first (reading it, writing a copy, reading that). Two layouts: B stored
// k x n (transformers' Conv1D weights, (in, out)), and B stored n x k (torch.nn.Linear, a tied embedding as the
// language-model head), each output then a dot product of a row of A and a row of B. Columns of C are split across
// threads, each thread reading its own part of B. AVX-512 where the CPU has it, else AVX2 + FMA, chosen at run time;
// ops/gemm.hpp decides which products run here.
#pragma once

#include <algorithm>
#include <cstring>

#include "eigenformer/core/config.hpp"
#include "eigenformer/core/parallel.hpp"
#include "eigenformer/ops/gemm_kernel.hpp"

namespace eigenformer {
namespace detail {

/// Products of at most this many rows run on the streaming kernel (when their weight is large).
constexpr Index kStreamingMaxRows = 8;
/// ... and when op(B) holds at least this many bytes: below, it sits in cache and any kernel reads it fast.
constexpr double kStreamingMinWeightBytes = 1 << 20;
/// Weights of at least this many bytes are split across threads (each thread streams its columns).
constexpr double kStreamingParallelBytes = 1 << 20;

#ifdef EIGENFORMER_GEMM_AVX2
namespace streaming {

/// The vector operations of one instruction set.
struct Avx512 {
  using V = __m512;
  static constexpr Index W = 16;
  __attribute__((target("avx512f"))) static V zero() { return _mm512_setzero_ps(); }
  __attribute__((target("avx512f"))) static V load(const float* p) { return _mm512_loadu_ps(p); }
  __attribute__((target("avx512f"))) static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  __attribute__((target("avx512f"))) static V splat(float x) { return _mm512_set1_ps(x); }
  __attribute__((target("avx512f"))) static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  __attribute__((target("avx512f"))) static float sum(V v) {
    // Through memory: GCC 12's lane-extracting intrinsics pass an undefined register and warn (bug 105593).
    alignas(64) float lanes[16];
    _mm512_store_ps(lanes, v);
    const __m256 h = _mm256_add_ps(_mm256_load_ps(lanes), _mm256_load_ps(lanes + 8));
    const __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    const __m128 u = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(u, _mm_shuffle_ps(u, u, 1)));
  }
};

struct Avx2 {
  using V = __m256;
  static constexpr Index W = 8;
  __attribute__((target("avx2,fma"))) static V zero() { return _mm256_setzero_ps(); }
  __attribute__((target("avx2,fma"))) static V load(const float* p) { return _mm256_loadu_ps(p); }
  __attribute__((target("avx2,fma"))) static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  __attribute__((target("avx2,fma"))) static V splat(float x) { return _mm256_set1_ps(x); }
  __attribute__((target("avx2,fma"))) static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  __attribute__((target("avx2,fma"))) static float sum(V v) {
    const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps(t, t, 1)));
  }
};

// The kernels, defined once per instruction set through this macro: a function's target attribute says which
// instructions the compiler may use in it, and the AVX2 versions must hold no AVX-512 instruction.
#define EIGENFORMER_STREAMING_KERNELS(NS, TARGET, S)                                                                   \
  namespace NS {                                                                                                       \
  /* Columns [j0, j1) of C += A B for B stored k x n, for one or two rows of A: B's rows are swept eight at a time     \
     over the columns, in memory order (so B streams at the memory's pace), C's rows of the block staying in L1 (the   \
     caller keeps a block to 16 KiB). */                                                                               \
  __attribute__((target(TARGET))) inline void rows_times_weight(Index m, Index k, const float* a, Index lda,           \
                                                               const float* b, Index ldb, float* c, Index ldc, Index j0, \
                                                               Index j1) {                                             \
    constexpr Index W = S::W, G = 8;                                                                                   \
    const Index vec_end = j0 + (j1 - j0) / W * W;                                                                      \
    Index p = 0;                                                                                                       \
    for (; p + G <= k; p += G) {                                                                                       \
      const float* bp = b + p * ldb;                                                                                   \
      for (Index i = 0; i < m; ++i) {                                                                                  \
        const float* ai = a + i * lda + p;                                                                             \
        S::V av[G];                                                                                                    \
        for (Index r = 0; r < G; ++r) av[r] = S::splat(ai[r]);                                                         \
        float* ci = c + i * ldc;                                                                                       \
        for (Index j = j0; j < vec_end; j += W) {                                                                      \
          S::V acc = S::load(ci + j);                                                                                  \
          for (Index r = 0; r < G; ++r) acc = S::fma(av[r], S::load(bp + r * ldb + j), acc);                           \
          S::store(ci + j, acc);                                                                                       \
        }                                                                                                              \
        for (Index j = vec_end; j < j1; ++j)                                                                           \
          for (Index r = 0; r < G; ++r) ci[j] += ai[r] * bp[r * ldb + j];                                              \
      }                                                                                                                \
    }                                                                                                                  \
    for (; p < k; ++p) {                                                                                               \
      const float* bp = b + p * ldb;                                                                                   \
      for (Index i = 0; i < m; ++i) {                                                                                  \
        const float x = a[i * lda + p];                                                                                \
        float* ci = c + i * ldc;                                                                                       \
        for (Index j = j0; j < j1; ++j) ci[j] += x * bp[j];                                                            \
      }                                                                                                                \
    }                                                                                                                  \
  }                                                                                                                    \
                                                                                                                       \
  /* Columns [j0, j1) of rows [0, R) of C += A B for B stored k x n: tiles of V vectors of columns whose R x V         \
     accumulators stay in registers over all of k; B is read PF rows ahead of its use when prefetch (the first group   \
     of rows brings a tile's stripe of B into cache, the next groups find it there). */                                \
  template <int R, int V>                                                                                              \
  __attribute__((target(TARGET))) inline void tile_times_weight(Index k, const float* a, Index lda, const float* b,    \
                                                               Index ldb, float* c, Index ldc, Index j0, Index j1,     \
                                                               bool prefetch) {                                        \
    constexpr Index W = S::W, PF = 16;                                                                                 \
    Index j = j0;                                                                                                      \
    for (; j + V * W <= j1; j += V * W) {                                                                              \
      S::V acc[R][V];                                                                                                  \
      for (int i = 0; i < R; ++i)                                                                                      \
        for (int v = 0; v < V; ++v) acc[i][v] = S::load(c + i * ldc + j + v * W);                                      \
      for (Index p = 0; p < k; ++p) {                                                                                  \
        const float* bp = b + p * ldb + j;                                                                             \
        if (prefetch && p + PF < k)                                                                                    \
          for (Index x = 0; x < V * W; x += 16) __builtin_prefetch(bp + PF * ldb + x, 0, 0);                           \
        S::V x[V];                                                                                                     \
        for (int v = 0; v < V; ++v) x[v] = S::load(bp + v * W);                                                        \
        for (int i = 0; i < R; ++i) {                                                                                  \
          const S::V s = S::splat(a[i * lda + p]);                                                                     \
          for (int v = 0; v < V; ++v) acc[i][v] = S::fma(s, x[v], acc[i][v]);                                          \
        }                                                                                                              \
      }                                                                                                                \
      for (int i = 0; i < R; ++i)                                                                                      \
        for (int v = 0; v < V; ++v) S::store(c + i * ldc + j + v * W, acc[i][v]);                                      \
    }                                                                                                                  \
    if (V > 1 && j < j1) {  /* the columns left: single vectors, then single columns */                                \
      tile_times_weight<R, 1>(k, a, lda, b, ldb, c, ldc, j, j1, prefetch);                                             \
      return;                                                                                                          \
    }                                                                                                                  \
    for (; j < j1; ++j)                                                                                                \
      for (int i = 0; i < R; ++i) {                                                                                    \
        float d = 0;                                                                                                   \
        for (Index p = 0; p < k; ++p) d += a[i * lda + p] * b[p * ldb + j];                                            \
        c[i * ldc + j] += d;                                                                                           \
      }                                                                                                                \
  }                                                                                                                    \
                                                                                                                       \
  /* Columns [j0, j1) of rows [0, R) of C += A B^T for B stored n x k: four rows of B at a time (consecutive in        \
     memory, so B streams in order), each dotted with the R rows of A in R x 4 register accumulators; with prefetch,   \
     each step asks for the same columns of the next four rows. */                                                     \
  template <int R>                                                                                                     \
  __attribute__((target(TARGET))) inline void tile_dot_weight_rows(Index k, const float* a, Index lda, const float* b, \
                                                                  Index ldb, float* c, Index ldc, Index j0, Index j1,  \
                                                                  bool prefetch) {                                     \
    constexpr Index W = S::W;                                                                                          \
    const Index k_vec = k / W * W;                                                                                     \
    Index j = j0;                                                                                                      \
    for (; j + 4 <= j1; j += 4) {                                                                                      \
      const float* bj = b + j * ldb;                                                                                   \
      S::V acc[R][4];                                                                                                  \
      for (int i = 0; i < R; ++i)                                                                                      \
        for (int r = 0; r < 4; ++r) acc[i][r] = S::zero();                                                             \
      for (Index p = 0; p < k_vec; p += W) {                                                                           \
        if (prefetch && j + 8 <= j1)                                                                                   \
          for (Index r = 4; r < 8; ++r) __builtin_prefetch(bj + r * ldb + p, 0, 0);                                    \
        const S::V x0 = S::load(bj + p), x1 = S::load(bj + ldb + p), x2 = S::load(bj + 2 * ldb + p),                   \
                   x3 = S::load(bj + 3 * ldb + p);                                                                     \
        for (int i = 0; i < R; ++i) {                                                                                  \
          const S::V y = S::load(a + i * lda + p);                                                                     \
          acc[i][0] = S::fma(y, x0, acc[i][0]);                                                                        \
          acc[i][1] = S::fma(y, x1, acc[i][1]);                                                                        \
          acc[i][2] = S::fma(y, x2, acc[i][2]);                                                                        \
          acc[i][3] = S::fma(y, x3, acc[i][3]);                                                                        \
        }                                                                                                              \
      }                                                                                                                \
      for (int i = 0; i < R; ++i)                                                                                      \
        for (int r = 0; r < 4; ++r) {                                                                                  \
          float d = S::sum(acc[i][r]);                                                                                 \
          for (Index p = k_vec; p < k; ++p) d += a[i * lda + p] * bj[r * ldb + p];                                     \
          c[i * ldc + j + r] += d;                                                                                     \
        }                                                                                                              \
    }                                                                                                                  \
    for (; j < j1; ++j)                                                                                                \
      for (int i = 0; i < R; ++i) {                                                                                    \
        float d = 0;                                                                                                   \
        for (Index p = 0; p < k; ++p) d += a[i * lda + p] * b[j * ldb + p];                                            \
        c[i * ldc + j] += d;                                                                                           \
      }                                                                                                                \
  }                                                                                                                    \
  }

EIGENFORMER_STREAMING_KERNELS(avx512, "avx2,fma,avx512f", Avx512)
EIGENFORMER_STREAMING_KERNELS(avx2, "avx2,fma", Avx2)
#undef EIGENFORMER_STREAMING_KERNELS

/// The kernels of one instruction set: V vectors of columns per register tile (AVX2 has 16 registers, AVX-512 32).
template <class S>
struct Kernels;
#define EIGENFORMER_STREAMING_KERNEL_TABLE(NS, S, VECTORS, DOT_ROWS)                                                  \
  template <>                                                                                                        \
  struct Kernels<S> {                                                                                                \
    static constexpr int V = VECTORS, dot_rows = DOT_ROWS;                                                           \
    static constexpr auto rows = NS::rows_times_weight;                                                              \
    template <int R>                                                                                                 \
    static void tile(Index k, const float* a, Index lda, const float* b, Index ldb, float* c, Index ldc, Index j0,   \
                     Index j1, bool prefetch) {                                                                      \
      NS::tile_times_weight<R, V>(k, a, lda, b, ldb, c, ldc, j0, j1, prefetch);                                      \
    }                                                                                                                \
    template <int R>                                                                                                 \
    static void dot(Index k, const float* a, Index lda, const float* b, Index ldb, float* c, Index ldc, Index j0,    \
                    Index j1, bool prefetch) {                                                                       \
      NS::tile_dot_weight_rows<R>(k, a, lda, b, ldb, c, ldc, j0, j1, prefetch);                                      \
    }                                                                                                                \
  };
EIGENFORMER_STREAMING_KERNEL_TABLE(avx512, Avx512, 4, 4)
EIGENFORMER_STREAMING_KERNEL_TABLE(avx2, Avx2, 2, 2)
#undef EIGENFORMER_STREAMING_KERNEL_TABLE

/// C's columns [j0, j1): zeroed first unless accumulate, the product added, then the bias and relu. One or two rows
/// sweep B's rows (the whole bandwidth goes to B); more rows take B in register tiles (their arithmetic would
/// otherwise outrun the sweep's loads and stores of C), four rows at a time.
template <class S>
void part(Index m, Index k, const float* a, Index lda, const float* b, Index ldb, bool transpose_b, float* c,
          Index ldc, bool accumulate, const float* bias, bool relu, Index j0, Index j1) {
  using K = Kernels<S>;
  if (!accumulate)
    for (Index i = 0; i < m; ++i) std::memset(c + i * ldc + j0, 0, static_cast<std::size_t>(j1 - j0) * sizeof(float));
  if (transpose_b) {
    // Blocks of 64 rows of B (columns of C), which stay in L2 while every group of A's rows reads them.
    for (Index j = j0; j < j1; j += 64) {
      const Index end = std::min(j1, j + 64);
      for (Index i = 0; i < m; i += K::dot_rows) {
        const float* ai = a + i * lda;
        float* ci = c + i * ldc;
        switch (std::min<Index>(K::dot_rows, m - i)) {
          case 1: K::template dot<1>(k, ai, lda, b, ldb, ci, ldc, j, end, i == 0); break;
          case 2: K::template dot<2>(k, ai, lda, b, ldb, ci, ldc, j, end, i == 0); break;
          case 3: K::template dot<3>(k, ai, lda, b, ldb, ci, ldc, j, end, i == 0); break;
          default: K::template dot<K::dot_rows>(k, ai, lda, b, ldb, ci, ldc, j, end, i == 0); break;
        }
      }
    }
  } else if (m <= 2) {
    const Index block = std::max<Index>(S::W, 4096 / m / S::W * S::W);  // m rows of C in 16 KiB
    for (Index j = j0; j < j1; j += block) K::rows(m, k, a, lda, b, ldb, c, ldc, j, std::min(j1, j + block));
  } else {
    // A tile's stripe of B (k x V vectors) stays in L2 between the groups of rows that read it.
    const Index block = K::V * S::W;
    for (Index j = j0; j < j1; j += block) {
      const Index end = std::min(j1, j + block);
      for (Index i = 0; i < m; i += 4) {
        const float* ai = a + i * lda;
        float* ci = c + i * ldc;
        switch (std::min<Index>(4, m - i)) {
          case 1: K::template tile<1>(k, ai, lda, b, ldb, ci, ldc, j, end, i == 0); break;
          case 2: K::template tile<2>(k, ai, lda, b, ldb, ci, ldc, j, end, i == 0); break;
          case 3: K::template tile<3>(k, ai, lda, b, ldb, ci, ldc, j, end, i == 0); break;
          default: K::template tile<4>(k, ai, lda, b, ldb, ci, ldc, j, end, i == 0); break;
        }
      }
    }
  }
  if (!bias && !relu) return;
  for (Index i = 0; i < m; ++i) {
    float* ci = c + i * ldc;
    for (Index j = j0; j < j1; ++j) {
      float v = ci[j] + (bias ? bias[j] : 0.0f);
      ci[j] = relu && v < 0.0f ? 0.0f : v;  // NaN stays NaN (torch.relu)
    }
  }
}

/// C (m x n) = A op(B) (+ C when accumulate) + bias, then relu: A stored m x k (lda), B stored k x n or, with
/// transpose_b, n x k (ldb), C (ldc). Columns are split across the threads when B is large and we are not inside a
/// parallel region.
inline void gemm(Index m, Index n, Index k, const float* a, Index lda, const float* b, Index ldb, bool transpose_b,
                 float* c, Index ldc, bool accumulate, const float* bias, bool relu) {
  const bool wide = gemm_avx2::cpu_supports_avx512() && gemm_avx2::avx512_enabled().load(std::memory_order_relaxed);
  const auto run = [&](Index j0, Index j1) {
    if (wide)
      part<Avx512>(m, k, a, lda, b, ldb, transpose_b, c, ldc, accumulate, bias, relu, j0, j1);
    else
      part<Avx2>(m, k, a, lda, b, ldb, transpose_b, c, ldc, accumulate, bias, relu, j0, j1);
  };
  const double bytes = 4.0 * static_cast<double>(n) * static_cast<double>(k);
  const Index threads = bytes >= kStreamingParallelBytes && !in_parallel_region() ? num_threads() : 1;
  if (threads <= 1) {
    run(0, n);
    return;
  }
  // Equal parts, each a multiple of 64 columns (whole cache lines of a k x n B, whole vectors).
  const Index step = ((n + threads - 1) / threads + 63) / 64 * 64;
  parallel_for(threads, 1e9, [&](Index t) {
    const Index j0 = std::min(n, t * step), j1 = std::min(n, j0 + step);
    if (j0 < j1) run(j0, j1);
  });
}

}  // namespace streaming
#endif  // EIGENFORMER_GEMM_AVX2

}  // namespace detail
}  // namespace eigenformer
