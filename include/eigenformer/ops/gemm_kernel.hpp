// The packed float GEMM kernel: C = op(A) op(B) (or C += ...), bias and relu folded into the store, on AVX2+FMA
// with 6 x 16 register tiles, or 6 x 32 tiles in zmm registers on AVX-512 CPUs, chosen at run time (the
// BLIS/GotoBLAS layout, Goto & van de Geijn 2008). ops/gemm.hpp decides which products run on it.
// Its bf16 mode (CPUs with AVX512_BF16) rounds both packed operands to bfloat16 (round to nearest even) and
// accumulates their products in float, two depth steps per instruction (vdpbf16ps): the "medium" float32 matmul
// precision of core/execution.hpp.
//
// Why a kernel of our own: Eigen 3.4's float GEBP kernel, as GCC 12 compiles it, reloads its lhs operand from
// memory on every FMA and stays far from the FMA peak (docs/benchmarks.md has the figures).
// EIGENFORMER_NO_GEMM_KERNEL turns it off (every product through Eigen or the BLAS).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <new>

#include "eigenformer/core/config.hpp"
#include "eigenformer/core/parallel.hpp"

#if !defined(EIGENFORMER_NO_GEMM_KERNEL) && (defined(__GNUC__) || defined(__clang__)) && \
    (defined(__x86_64__) || defined(__i386__))
#define EIGENFORMER_GEMM_AVX2 1
#include <immintrin.h>
#endif

namespace eigenformer {
namespace detail {

#ifdef EIGENFORMER_GEMM_AVX2
namespace gemm_avx2 {

// Register tile 6 x 16 (12 ymm accumulators, 2 for the B row, 1 for the A broadcast); kc x 16 B micro-panels
// (16 KiB) stay in L1 while an mc x kc A block (up to 96 KiB) streams from L2.
constexpr Index kMr = 6, kNr = 16, kKc = 256, kMcPanels = 16;
// The AVX2 micro-kernel names its 12 accumulators, which keeps them in registers at every optimization level
// (-O1 included). The AVX-512 ones hold them in arrays indexed by the tile row, and every loop over the rows
// carries `#pragma GCC unroll 6`: without it GCC keeps the arrays in memory, and at -O2 does not unroll at all.
static_assert(kMr == 6, "the micro-kernels' unroll pragmas assume 6 rows a tile");

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

/// Whether the CPU runs AVX512_BF16 (vdpbf16ps, vcvtneps2bf16): the kernel's bf16 mode.
inline bool cpu_supports_avx512_bf16() {
  static const bool ok = [] {
    __builtin_cpu_init();
    return cpu_supports_avx512() && __builtin_cpu_supports("avx512bf16");
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
#pragma GCC unroll 6
  for (Index r = 0; r < kMr; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
#pragma GCC unroll 6
  for (Index r = 0; r < kMr; ++r) {
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + 16), _MM_HINT_T0);
  }
  for (Index p = 0; p < kc; ++p, pa += kMr, pb0 += kNr, pb1 += kNr) {
    _mm_prefetch(reinterpret_cast<const char*>(pa + 8 * kMr), _MM_HINT_T0);  // A streams from L2
    const __m512 b0 = _mm512_loadu_ps(pb0), b1 = _mm512_loadu_ps(pb1);
#pragma GCC unroll 6
    for (Index r = 0; r < kMr; ++r) {
      const __m512 x = _mm512_set1_ps(pa[r]);
      acc[r][0] = _mm512_fmadd_ps(x, b0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(x, b1, acc[r][1]);
    }
  }
#pragma GCC unroll 6
  for (Index r = 0; r < kMr; ++r) {
    store_row512(c + r * ldc, acc[r][0], st.bias, st);
    store_row512(c + r * ldc + 16, acc[r][1], st.bias ? st.bias + 16 : nullptr, st);
  }
}

/// Rewrites a packed panel (kc depth steps of width floats, k-major: A panels have width 6, B strips 16) in place
/// as bf16 pairs: 32-bit slot (q, w) holds depth steps 2q (low half) and 2q + 1 (high half) of column w, each
/// rounded to nearest even, as vdpbf16ps reads them; an odd kc's last pair is padded with zero.
__attribute__((target("avx512f,avx512bf16"))) inline void to_bf16_pairs(float* panel, Index kc, Index width) {
  const __mmask16 mask = static_cast<__mmask16>((1u << width) - 1u), all = static_cast<__mmask16>(0xFFFF);
  const __m512 zero = _mm512_setzero_ps();
  auto* out = reinterpret_cast<int*>(panel);
  for (Index q = 0; 2 * q < kc; ++q) {
    // Both rows are read before slot row q is written: it lies below row 2q, which it overlaps only when q = 0.
    const __m512 lo = _mm512_maskz_loadu_ps(mask, panel + 2 * q * width);
    const __m512 hi = 2 * q + 1 < kc ? _mm512_maskz_loadu_ps(mask, panel + (2 * q + 1) * width) : zero;
    // The maskz forms with every lane on: the plain ones leave GCC 12 warning about an undefined source register.
    const __m512i lo16 = _mm512_maskz_cvtepu16_epi32(all, reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(lo)));
    const __m512i hi16 = _mm512_maskz_cvtepu16_epi32(all, reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(hi)));
    _mm512_mask_storeu_epi32(out + q * width, mask, _mm512_or_si512(lo16, _mm512_maskz_slli_epi32(all, hi16, 16)));
  }
}

/// The 6 x (16 Strips) tile at c from a bf16-paired A panel and Strips bf16-paired B strips (pb1 unused when
/// Strips is 1): per depth pair, Strips loads, 6 broadcasts and 6 Strips vdpbf16ps. st.bias covers every column.
template <int Strips>
__attribute__((target("avx512f,avx512bf16"))) inline void micro_kernel_bf16(Index kc, const float* pa,
                                                                            const float* pb0, const float* pb1,
                                                                            float* c, Index ldc,
                                                                            const TileStore& st) {
  __m512 acc[kMr][Strips];
#pragma GCC unroll 6
  for (Index r = 0; r < kMr; ++r)
#pragma GCC unroll 2
    for (int h = 0; h < Strips; ++h) acc[r][h] = _mm512_setzero_ps();
#pragma GCC unroll 6
  for (Index r = 0; r < kMr; ++r)
#pragma GCC unroll 2
    for (int h = 0; h < Strips; ++h) _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + 16 * h), _MM_HINT_T0);
  const auto* a32 = reinterpret_cast<const int*>(pa);
  const float* pb[2] = {pb0, pb1};
  for (Index q = 0, pairs = (kc + 1) / 2; q < pairs; ++q, a32 += kMr) {
    _mm_prefetch(reinterpret_cast<const char*>(a32 + 8 * kMr), _MM_HINT_T0);  // A streams from L2
    __m512bh b[Strips];
#pragma GCC unroll 2
    for (int h = 0; h < Strips; ++h) b[h] = reinterpret_cast<__m512bh>(_mm512_loadu_ps(pb[h] + q * kNr));
#pragma GCC unroll 6
    for (Index r = 0; r < kMr; ++r) {
      const __m512bh x = reinterpret_cast<__m512bh>(_mm512_set1_epi32(a32[r]));
#pragma GCC unroll 2
      for (int h = 0; h < Strips; ++h) acc[r][h] = _mm512_dpbf16_ps(acc[r][h], x, b[h]);
    }
  }
#pragma GCC unroll 6
  for (Index r = 0; r < kMr; ++r)
#pragma GCC unroll 2
    for (int h = 0; h < Strips; ++h)
      store_row512(c + r * ldc + 16 * h, acc[r][h], st.bias ? st.bias + 16 * h : nullptr, st);
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
/// and relu as in TileStore, for the first and last depth blocks. With wide (AVX-512), two strips at a time; with
/// bf16, on panels and strips that to_bf16_pairs rewrote.
inline void compute_block(Index kc, const float* pa, Index rows, const float* pb, Index j0, Index cols, float* c,
                          Index ldc, bool first, bool accumulate, const float* bias, bool last, bool relu,
                          bool wide, bool bf16) {
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
      if (bf16 && width == 2 * kNr)
        micro_kernel_bf16<2>(kc, pa + i * kc, pbj, pbj + kNr * kc, full ? cij : edge, full ? ldc : width,
                             full ? st : scratch);
      else if (bf16)
        micro_kernel_bf16<1>(kc, pa + i * kc, pbj, pbj, full ? cij : edge, full ? ldc : width, full ? st : scratch);
      else if (width == 2 * kNr)
        micro_kernel_512(kc, pa + i * kc, pbj, pbj + kNr * kc, full ? cij : edge, full ? ldc : width,
                         full ? st : scratch);
      else
        micro_kernel(kc, pa + i * kc, pbj, full ? cij : edge, full ? ldc : width, full ? st : scratch);
      if (!full) store_edge(edge, width, mr, nr, cij, ldc, st);
    }
    j += width;
  }
}

/// C = op(A) op(B) (or C += ...), bias and relu in the store; with bf16 (which needs cpu_supports_avx512_bf16),
/// the products of bf16-rounded operands.
inline void gemm(Index m, Index n, Index k, const float* a, Index lda, bool transpose_a, const float* b, Index ldb,
                 bool transpose_b, float* c, Index ldc, bool accumulate, const float* bias, bool relu,
                 bool bf16 = false) {
  const bool wide = bf16 || (cpu_supports_avx512() && avx512_enabled().load(std::memory_order_relaxed));
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
    float* strip = packed_b + kb * kb_stride + s * kNr * kc;
    pack_b_strip(b, ldb, transpose_b, s * kNr, std::min(kNr, n - s * kNr), k0, kc, strip);
    if (bf16) to_bf16_pairs(strip, kc, kNr);
  };
  auto compute_item = [&](Index item, float* packed_a) {
    const Index i0 = item / chunks * block_panels * kMr, rows = std::min(block_panels * kMr, m - i0);
    const Index j0 = item % chunks * chunk_strips * kNr;
    if (j0 >= n) return;
    const Index cols = std::min(chunk_strips * kNr, n - j0);
    for (Index kb = 0, k0 = 0; k0 < k; ++kb, k0 += kKc) {
      const Index kc = std::min(kKc, k - k0);
      pack_a(a, lda, transpose_a, i0, rows, k0, kc, packed_a);
      if (bf16)
        for (Index i = 0; i < rows; i += kMr) to_bf16_pairs(packed_a + i * kc, kc, kMr);
      compute_block(kc, packed_a, rows, packed_b + kb * kb_stride, j0, cols, c + i0 * ldc, ldc, k0 == 0,
                    accumulate, bias, k0 + kc >= k, relu, wide, bf16);
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
  FirstException error;  // only a packing buffer's allocation can throw; every thread still meets the barrier
#pragma omp parallel num_threads(threads)
  {
    for (Index task; (task = next_strip.fetch_add(1)) < depth_blocks * strips;) pack_b(task);
    float* packed_a = nullptr;
    error.run([&] { packed_a = packed_a_buffer().get(static_cast<std::size_t>(block_panels * kMr * kc_max + 8)); });
#pragma omp barrier
    if (packed_a)
      for (Index item; (item = next_item.fetch_add(1)) < items;) compute_item(item, packed_a);
  }
  error.rethrow();
#endif
}

}  // namespace gemm_avx2
#endif  // EIGENFORMER_GEMM_AVX2

#ifdef EIGENFORMER_GEMM_AVX2
/// Whether this build and CPU run the packed float kernel.
inline bool packed_kernel_available() { return gemm_avx2::cpu_supported(); }
/// Whether this build and CPU run the packed kernel's bf16 mode.
inline bool bf16_kernel_available() { return gemm_avx2::cpu_supports_avx512_bf16(); }
#else
inline bool packed_kernel_available() { return false; }
inline bool bf16_kernel_available() { return false; }
#endif

}  // namespace detail
}  // namespace eigenformer
