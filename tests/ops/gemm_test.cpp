#include "eigenformer/ops/gemm.hpp"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <tuple>
#include <vector>

#include "eigenformer/core/parallel.hpp"
#include "support/test_support.hpp"

using namespace eigenformer;

namespace gemm_test {

namespace {

/// Deterministic values in [-1, 1).
template <typename T>
std::vector<T> values(Index n, std::uint64_t seed) {
  Generator gen(seed);
  std::vector<T> v(static_cast<std::size_t>(n));
  for (auto& x : v) x = static_cast<T>(static_cast<double>(gen() >> 11) * 0x1.0p-52 - 1.0);
  return v;
}

struct Case {
  Index m, n, k;
  bool ta, tb, accumulate, bias, relu;
  Index pad;  // extra elements per row of every operand (row strides larger than the row)
};

/// Which implementation a case runs on: detail::gemm's choice, the packed kernel, the BLAS called directly, the
/// BLAS called once per piece of C on the current OpenMP threads, or the packed kernel's bf16 mode.
enum class Path { kDispatch, kPacked, kBlas, kBlasSplit, kPackedBf16 };

/// x rounded to the nearest bfloat16, ties to even (finite x).
float to_bf16(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  u = (u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u;
  std::memcpy(&x, &u, sizeof u);
  return x;
}

/// Runs one case on kPath and compares every element of C, padding included, with a double-precision reference
/// computed element by element; returns the largest error relative to the sum of |terms|. With bf16_operands the
/// reference multiplies the operands rounded to bfloat16 (bias and C as they are).

template <typename T, Path kPath = Path::kDispatch>
double max_relative_error(const Case& c, std::uint64_t seed, bool bf16_operands = kPath == Path::kPackedBf16) {
  const Index a_rows = c.ta ? c.k : c.m, a_cols = c.ta ? c.m : c.k;
  const Index b_rows = c.tb ? c.n : c.k, b_cols = c.tb ? c.k : c.n;
  const Index lda = a_cols + c.pad, ldb = b_cols + c.pad, ldc = c.n + c.pad;
  const std::vector<T> a = values<T>(a_rows * lda, seed), b = values<T>(b_rows * ldb, seed + 1),
                       bias = values<T>(c.n, seed + 2), c0 = values<T>(c.m * ldc, seed + 3);
  std::vector<T> out = c0;
  detail::GemmProduct<T> p = detail::GemmProduct<T>::sizes(c.m, c.n, c.k);
  if (c.ta)
    p.lhs_transposed(a.data(), lda);
  else
    p.lhs(a.data(), lda);
  if (c.tb)
    p.rhs_transposed(b.data(), ldb);
  else
    p.rhs(b.data(), ldb);
  if (c.accumulate)
    p.add_to(out.data(), ldc);
  else
    p.out(out.data(), ldc);
  p.add_bias(c.bias ? bias.data() : nullptr).apply_relu(c.relu);
  if constexpr (kPath == Path::kBlas) {
#ifdef EIGEN_USE_BLAS
    detail::gemm_blas(p);
#endif
  } else if constexpr (kPath == Path::kBlasSplit) {
#ifdef EIGEN_USE_BLAS
    detail::gemm_blas_split(p);
#endif
  } else if constexpr (kPath == Path::kPacked || kPath == Path::kPackedBf16) {
#ifdef EIGENFORMER_GEMM_AVX2
    static_assert(std::is_same_v<T, float>, "the packed kernel is float only");
    detail::gemm_avx2::gemm(c.m, c.n, c.k, a.data(), lda, c.ta, b.data(), ldb, c.tb, out.data(), ldc, c.accumulate,
                            p.epilogue.bias, p.epilogue.relu, kPath == Path::kPackedBf16);
#endif
  } else {
    detail::gemm(p);
  }
  double worst = 0;
  for (Index i = 0; i < c.m; ++i)
    for (Index j = 0; j < ldc; ++j) {
      const double got = static_cast<double>(out[i * ldc + j]);
      if (j >= c.n) {  // padding between rows: untouched
        if (got != static_cast<double>(c0[i * ldc + j])) return std::numeric_limits<double>::infinity();
        continue;
      }
      double sum = c.accumulate ? static_cast<double>(c0[i * ldc + j]) : 0.0, scale = std::abs(sum) + 1e-30;
      for (Index p = 0; p < c.k; ++p) {
        T x0 = c.ta ? a[p * lda + i] : a[i * lda + p], y0 = c.tb ? b[j * ldb + p] : b[p * ldb + j];
        if constexpr (std::is_same_v<T, float>)
          if (bf16_operands) {
            x0 = to_bf16(x0);
            y0 = to_bf16(y0);
          }
        const double x = static_cast<double>(x0), y = static_cast<double>(y0);
        sum += x * y;
        scale += std::abs(x * y);
      }
      if (c.bias) {
        sum += static_cast<double>(bias[j]);
        scale += std::abs(static_cast<double>(bias[j]));
      }
      if (c.relu && sum < 0) sum = 0;
      worst = std::max(worst, std::abs(got - sum) / scale);
    }
  return worst;
}

/// Shapes around the kernel's 6 x 16 register tile and 256-deep blocks: exact multiples, one more, one less,
/// single rows and columns, and depths that cross several blocks.
std::vector<std::tuple<Index, Index, Index>> shapes() {
  return {{1, 1, 1}, {6, 16, 8}, {5, 15, 7}, {7, 17, 9}, {1, 33, 300}, {13, 1, 256}, {12, 32, 257},
          {37, 50, 513}, {100, 48, 64}, {200, 130, 40}, {6, 48, 16}, {7, 80, 300}};
}

#ifdef EIGENFORMER_GEMM_AVX2
/// Runs body once per tile width of the packed kernel this CPU has: AVX-512 (6 x 32) and, forced, AVX2 (6 x 16).
template <typename Body>
void for_each_tile_width(Body body) {
  auto& enabled = detail::gemm_avx2::avx512_enabled();
  for (bool wide : {true, false}) {
    if (wide && !detail::gemm_avx2::cpu_supports_avx512()) continue;
    SCOPED_TRACE(wide ? "AVX-512 tiles" : "AVX2 tiles");
    enabled = wide;
    body();
  }
  enabled = true;
}
#endif

/// Every shape, layout and epilogue variant (accumulate, bias, relu, padded strides) on one path.
template <typename T, Path kPath>
void expect_all_cases_match(std::uint64_t seed, double tolerance) {
  for (const auto& [m, n, k] : shapes())
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (int variant = 0; variant < 5; ++variant) {
          const Case c{m, n, k, ta, tb, variant == 1 || variant == 4, variant >= 2, variant >= 3, variant % 2 * 3};
          EXPECT_LE((max_relative_error<T, kPath>(c, seed++)), tolerance)
              << "m=" << m << " n=" << n << " k=" << k << " ta=" << ta << " tb=" << tb << " variant=" << variant;
        }
}

}  // namespace

TEST(Gemm, FloatMatchesReferenceForEveryLayoutAndEpilogue) { expect_all_cases_match<float, Path::kDispatch>(1, 1e-5); }

TEST(Gemm, PackedKernelMatchesReferenceForEveryLayoutAndEpilogue) {
#ifdef EIGENFORMER_GEMM_AVX2
  if (!detail::gemm_avx2::cpu_supported()) GTEST_SKIP() << "no AVX2+FMA on this CPU";
  // Called directly: detail::gemm sends small products to Eigen and, in BLAS builds, most others to the BLAS.
  for_each_tile_width([] { expect_all_cases_match<float, Path::kPacked>(300, 1e-5); });
#else
  GTEST_SKIP() << "built with EIGENFORMER_NO_GEMM_KERNEL";
#endif
}

TEST(Gemm, Bf16ModeMatchesTheProductOfRoundedOperandsForEveryLayoutAndEpilogue) {
  if (!detail::bf16_kernel_available()) GTEST_SKIP() << "no AVX512_BF16 on this CPU (or no packed kernel)";
  expect_all_cases_match<float, Path::kPackedBf16>(900, 1e-5);
}

TEST(Gemm, Bf16ModeRoundsTheOperands) {
  if (!detail::bf16_kernel_available()) GTEST_SKIP() << "no AVX512_BF16 on this CPU (or no packed kernel)";
  const Case c{37, 50, 513, false, true, false, false, false, 0};
  EXPECT_GT((max_relative_error<float, Path::kPackedBf16>(c, 3, false)), 1e-4);  // against unrounded operands
  EXPECT_LE((max_relative_error<float, Path::kPackedBf16>(c, 3, true)), 1e-5);
}

TEST(Gemm, MediumPrecisionRunsProductsWorthPackingInBf16) {
  const Case large{64, 96, 300, false, true, false, true, false, 0};
  const Case tiny{4, 8, 4, false, false, false, false, false, 0};
  MatmulPrecisionGuard medium("medium");
  if (!detail::bf16_kernel_available()) {  // "medium" computes as "highest" there
    EXPECT_LE((max_relative_error<float>(large, 5)), 1e-5);
    return;
  }
  EXPECT_LE((max_relative_error<float>(large, 5, true)), 1e-5);
  EXPECT_GT((max_relative_error<float>(large, 5, false)), 1e-4);
  EXPECT_LE((max_relative_error<float>(tiny, 6, false)), 1e-5);  // below kPackedMinFlops: float
  std::vector<double> a(64 * 300, 0.5), b(300 * 96, 0.25), out(64 * 96);
  detail::gemm(
      detail::GemmProduct<double>::sizes(64, 96, 300).lhs(a.data(), 300).rhs(b.data(), 96).out(out.data(), 96));
  for (double v : out) EXPECT_EQ(v, 300 * 0.125);  // double products never round
}

#ifdef EIGEN_USE_BLAS
TEST(Gemm, BlasPathMatchesReferenceForEveryLayoutAndEpilogue) {
  expect_all_cases_match<float, Path::kBlas>(500, 1e-5);
  expect_all_cases_match<double, Path::kBlas>(700, 1e-13);
}
#endif

TEST(Gemm, DoubleMatchesReference) {
  std::uint64_t seed = 100;
  for (const auto& [m, n, k] : shapes())
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        const Case c{m, n, k, ta, tb, ta, tb, ta != tb, 2};
        EXPECT_LE(max_relative_error<double>(c, seed++), 1e-13) << "m=" << m << " n=" << n << " k=" << k;
      }
}

#ifdef EIGENFORMER_GEMM_AVX2
TEST(Gemm, LargeProductIsTheSameOnOneAndTwoThreads) {
  // Large enough to fork: the packed kernel's threaded split must give the same sums as one thread (each element
  // is computed by one thread, over the same depth blocks in the same order), with either tile width.
  if (!detail::gemm_avx2::cpu_supported()) GTEST_SKIP() << "no AVX2+FMA on this CPU";
  for_each_tile_width([] {
    const Case c{301, 203, 600, false, true, false, true, true, 0};
    const std::vector<float> a = values<float>(c.m * c.k, 7), b = values<float>(c.n * c.k, 8),
                             bias = values<float>(c.n, 9);
    std::vector<float> one(static_cast<std::size_t>(c.m * c.n)), two(one.size());
    const int saved = num_threads();
    set_num_threads(1);
    detail::gemm_avx2::gemm(c.m, c.n, c.k, a.data(), c.k, false, b.data(), c.k, true, one.data(), c.n, false,
                            bias.data(), true);
    set_num_threads(2);
    detail::gemm_avx2::gemm(c.m, c.n, c.k, a.data(), c.k, false, b.data(), c.k, true, two.data(), c.n, false,
                            bias.data(), true);
    set_num_threads(saved);
    EXPECT_EQ(one, two);
    EXPECT_LE((max_relative_error<float, Path::kPacked>(c, 7)), 1e-5);
  });
}
#endif

TEST(Gemm, SetNumThreadsLeavesOpenBlasOnOneThread) {
  // In a BLAS build, products go to OpenBLAS whole on one thread and in one piece per thread on more:
  // set_num_threads must make every OpenBLAS call a one-thread call, whatever OPENBLAS_NUM_THREADS or
  // OMP_NUM_THREADS said.
  const int saved = num_threads();
  set_num_threads(1);
  const int one = detail::blas_num_threads();
  set_num_threads(2);
  const int two = detail::blas_num_threads();
  set_num_threads(saved);
#ifdef EIGENFORMER_OPENBLAS_THREADS
  if (one == 0) GTEST_SKIP() << "the BLAS linked is not OpenBLAS";
  EXPECT_EQ(one, 1);
  EXPECT_EQ(two, 1);
#else
  EXPECT_EQ(one, 0);  // no BLAS to ask
  EXPECT_EQ(two, 0);
#endif
}

TEST(Gemm, SetNumThreadsRejectsCountsBelowOne) {
  const int saved = num_threads();
  EXPECT_THROW_WITH(set_num_threads(0), ValueError, {"set_num_threads", "n is 0", "n >= 1"});
  EXPECT_THROW_WITH(set_num_threads(-3), ValueError, {"set_num_threads", "n is -3"});
  EXPECT_EQ(num_threads(), saved);  // unchanged
}

TEST(Gemm, SplitBlasPathMatchesReferenceForEveryLayoutAndEpilogue) {
#ifndef EIGEN_USE_BLAS
  GTEST_SKIP() << "built without a BLAS";
#else
  // Pieces by rows (m >= n) and by columns (m < n, where the bias is offset with them), some of them empty.
  const int saved = num_threads();
  set_num_threads(2);
  expect_all_cases_match<float, Path::kBlasSplit>(401, 1e-5);
  expect_all_cases_match<double, Path::kBlasSplit>(601, 1e-13);
  set_num_threads(saved);
#endif
}

TEST(Gemm, ProductsLargeEnoughToSplitMatchTheReferenceOnTwoThreads) {
  // 2.08e8 flops each: in a BLAS build on two threads, split across them (by rows, then by columns).
  const int saved = num_threads();
  set_num_threads(2);
  EXPECT_LE(max_relative_error<float>(Case{520, 400, 500, false, true, true, true, true, 0}, 11), 1e-5);
  EXPECT_LE(max_relative_error<float>(Case{400, 520, 500, true, false, false, true, false, 1}, 12), 1e-5);
  set_num_threads(saved);
}

TEST(Gemm, WholePartsInsideAParallelRegionGetTheOneThreadResult) {
  // Threads each running a whole part of a batch split (ExecutionContext::whole_part) inside a parallel region:
  // each product is the one a single thread computes (in a BLAS build, the bits of that one-thread BLAS call).
  const Index m = 512, n = 384, k = 256;
  const std::vector<float> a = values<float>(m * k, 41), b = values<float>(k * n, 42);
  const int saved = num_threads();
  set_num_threads(1);
  std::vector<float> one(static_cast<std::size_t>(m * n));
  detail::gemm(detail::GemmProduct<float>::sizes(m, n, k).lhs(a.data(), k).rhs(b.data(), n).out(one.data(), n));
  set_num_threads(2);
  std::vector<std::vector<float>> parts(2, std::vector<float>(one.size()));
#ifdef _OPENMP
#pragma omp parallel for num_threads(2)
#endif
  for (int t = 0; t < 2; ++t) {
    ExecutionContext context;
    context.whole_part = true;
    ExecutionScope scope(context);
    EXPECT_TRUE(detail::execution_context().whole_part);
    detail::gemm(detail::GemmProduct<float>::sizes(m, n, k).lhs(a.data(), k).rhs(b.data(), n).out(
        parts[static_cast<std::size_t>(t)].data(), n));
  }
  set_num_threads(saved);
  EXPECT_FALSE(detail::execution_context().whole_part);
  for (const auto& p : parts) EXPECT_EQ(p, one);
}

TEST(Gemm, PairRunsTwoProductsWithTheResultsOfTheirOwnCalls) {
  // A backward's two gradients: dx = dz W (2048 x 256 x 1024) and dw = dz^T x (1024 x 256 x 2048), 1.07e9 flops
  // each; the second accumulates into C and takes a bias and relu, to carry every argument through. On two
  // threads with a BLAS they run side by side, each one whole one-thread BLAS call: the same bits as that call
  // made alone on one thread. Small products and other thread counts fall back to gemm().
  const Index rows = 2048, in = 256, out = 1024;
  const std::vector<float> dz = values<float>(rows * out, 31), w = values<float>(out * in, 32),
                           x = values<float>(rows * in, 33), bias = values<float>(in, 34), c0 = values<float>(out * in, 35);
  auto products = [&](std::vector<float>& dx, std::vector<float>& dw) {
    dx.assign(static_cast<std::size_t>(rows * in), 0.0f);
    dw = c0;
    const auto p = detail::GemmProduct<float>::sizes(rows, in, out).lhs(dz.data(), out).rhs(w.data(), in).out(
        dx.data(), in);
    const auto q = detail::GemmProduct<float>::sizes(out, in, rows)
                       .lhs_transposed(dz.data(), out)
                       .rhs(x.data(), in)
                       .add_to(dw.data(), in)
                       .add_bias(bias.data())
                       .apply_relu();
    return std::make_pair(p, q);
  };
  const int saved = num_threads();
  set_num_threads(1);
  std::vector<float> dx1, dw1;
  const auto [p1, q1] = products(dx1, dw1);
  detail::gemm(p1);
  detail::gemm(q1);
  for (int threads : {2, 1}) {
    set_num_threads(threads);
    std::vector<float> dx2, dw2;
    const auto [p2, q2] = products(dx2, dw2);
    detail::gemm_pair(p2, q2);
#ifdef EIGEN_USE_BLAS
    EXPECT_EQ(dx2, dx1) << threads << " threads";
    EXPECT_EQ(dw2, dw1) << threads << " threads";
#else
    for (std::size_t i = 0; i < dx1.size(); ++i) ASSERT_NEAR(dx2[i], dx1[i], 1e-3f) << i;
    for (std::size_t i = 0; i < dw1.size(); ++i) ASSERT_NEAR(dw2[i], dw1[i], 1e-3f) << i;
#endif
  }
  set_num_threads(2);  // below the size for side by side: one after the other, still right
  std::vector<float> small_a(6), small_b(6);
  const std::vector<float> ones(6, 1.0f);
  detail::gemm_pair(detail::GemmProduct<float>::sizes(2, 3, 2).lhs(ones.data(), 2).rhs(ones.data(), 3).out(small_a.data(), 3),
                    detail::GemmProduct<float>::sizes(3, 2, 2).lhs(ones.data(), 2).rhs(ones.data(), 2).out(small_b.data(), 2));
  EXPECT_EQ(small_a, std::vector<float>(6, 2.0f));
  EXPECT_EQ(small_b, std::vector<float>(6, 2.0f));
  set_num_threads(saved);
}

TEST(Gemm, LargeProductMatchesReference) {
  // Large enough for the BLAS (in BLAS builds) and for threads.
  const Case c{301, 203, 600, false, true, false, true, true, 0};
  EXPECT_LE(max_relative_error<float>(c, 7), 1e-5);
}

TEST(Gemm, EmptyDepthGivesBiasOrKeepsC) {
  std::vector<float> c = {1, 2, 3, 4}, bias = {10, 20};
  detail::gemm(detail::GemmProduct<float>::sizes(2, 2, 0).lhs(nullptr, 0).rhs(nullptr, 2).add_to(c.data(), 2));
  EXPECT_EQ(c, (std::vector<float>{1, 2, 3, 4}));
  detail::gemm(
      detail::GemmProduct<float>::sizes(2, 2, 0).lhs(nullptr, 0).rhs(nullptr, 2).out(c.data(), 2).add_bias(bias.data()));
  EXPECT_EQ(c, (std::vector<float>{10, 20, 10, 20}));
}

TEST(Gemm, ReluPropagatesNaN) {
#ifdef EIGENFORMER_GEMM_AVX2
  if (detail::gemm_avx2::cpu_supported())
    for_each_tile_width([] {
      for (Index n : {32, 16, 3}) {  // full tiles and a partial one
        const std::vector<float> a = {std::numeric_limits<float>::quiet_NaN()}, b(static_cast<std::size_t>(n), -1.0f);
        std::vector<float> c(static_cast<std::size_t>(n));
        detail::gemm_avx2::gemm(1, n, 1, a.data(), 1, false, b.data(), n, false, c.data(), n, false, nullptr, true);
        for (float v : c) EXPECT_TRUE(std::isnan(v));
      }
    });
#endif
  for (Index n : {16, 3}) {  // a full tile and a partial one
    std::vector<float> a = {std::numeric_limits<float>::quiet_NaN()}, b(static_cast<std::size_t>(n), -1.0f);
    std::vector<float> c(static_cast<std::size_t>(n));
    const auto product = [&] {
      detail::gemm(detail::GemmProduct<float>::sizes(1, n, 1).lhs(a.data(), 1).rhs(b.data(), n).out(c.data(), n).apply_relu());
    };
    product();
    for (float v : c) EXPECT_TRUE(std::isnan(v));
    a[0] = 1.0f;
    product();
    for (float v : c) EXPECT_EQ(v, 0.0f);
  }
}

/// One row of the backend table: a situation and the backend it must get.
struct BackendCase {
  const char* what;
  detail::GemmSituation s;
  detail::GemmBackend expected;
};

/// A situation with the given product and context; a float product on a BLAS build with a one-thread OpenBLAS and
/// the packed kernel, on one thread outside any parallel region, unless the case changes it.
detail::GemmSituation situation(Index m, Index n, Index k, bool ta = false, bool tb = false) {
  detail::GemmSituation s;
  s.m = m;
  s.n = n;
  s.k = k;
  s.transpose_a = ta;
  s.transpose_b = tb;
  s.blas_build = true;
  s.blas_threads = 1;
  s.packed_kernel = true;
  return s;
}

template <typename F>
detail::GemmSituation with(detail::GemmSituation s, F&& change) {
  change(s);
  return s;
}

TEST(GemmBackend, TheChoiceFollowsTheTable) {
  using B = detail::GemmBackend;
  using S = detail::GemmSituation;
  const auto two_threads = [](S& s) { s.threads = 2; };
  const auto in_region = [](S& s) { s.threads = 2; s.in_parallel_region = true; };
  const auto whole_part = [](S& s) { s.threads = 2; s.in_parallel_region = true; s.whole_part = true; };
  const auto no_blas = [](S& s) { s.blas_build = false; s.blas_threads = 0; };
  const auto threaded_blas = [](S& s) { s.threads = 2; s.blas_threads = 8; };
  const auto as_double = [](S& s) { s.scalar_bytes = 8; s.packed_kernel = false; };
  const auto other_type = [](S& s) { s.scalar_bytes = 2; s.blas_scalar = false; s.packed_kernel = false; };
  const auto bf16 = [](S& s) { s.bf16_products = true; };
  const auto narrow_blas = [](S& s) { s.blas_narrower = true; };
  const std::vector<BackendCase> cases = {
      {"empty result", situation(0, 5, 5), B::none},
      {"empty result (n)", situation(5, 0, 5), B::none},
      {"one thread: the BLAS", situation(128, 128, 128), B::blas},
      {"one thread, empty depth: Eigen", situation(4, 16, 0), B::eigen},
      {"one thread, small untransposed, n not a multiple of 16: kept off the BLAS (Eigen coefficient-wise)",
       situation(4, 8, 4), B::eigen_lazy},
      {"one thread, small with n % 16 == 0: the BLAS", situation(4, 16, 4), B::blas},
      {"one thread, small but transposed: the BLAS", situation(4, 8, 4, false, true), B::blas},
      {"one thread, allocating shape worth packing: the packed kernel", situation(64, 40, 64), B::packed},
      {"one thread, double, n not a multiple of 8: Eigen coefficient-wise", with(situation(64, 36, 64), as_double),
       B::eigen_lazy},
      {"one thread, double, n a multiple of 8: the BLAS", with(situation(64, 40, 64), as_double), B::blas},
      {"beyond the BLAS's int: packed", with(situation(128, 128, 128), [](S& s) { s.fits_blas_int = false; }),
       B::packed},
      {"two threads, 2e8 flops: split across the threads", with(situation(1000, 1000, 100), two_threads),
       B::blas_split},
      {"two threads, below 2e8 flops: the packed kernel", with(situation(999, 1000, 100), two_threads), B::packed},
      {"two threads, tiny: Eigen", with(situation(8, 32, 32), two_threads), B::eigen},
      {"threaded BLAS, 2e9 flops: the BLAS whole", with(situation(2000, 1000, 1000), threaded_blas),
       B::blas_threaded},
      {"threaded BLAS, below 2e9: packed", with(situation(999, 1000, 1000), threaded_blas), B::packed},
      {"inside a parallel region: never the BLAS", with(situation(512, 512, 512), in_region), B::packed},
      {"inside a parallel region, tiny: Eigen", with(situation(8, 16, 8), in_region), B::eigen},
      {"a whole part with a one-thread BLAS: the BLAS", with(situation(512, 384, 256), whole_part), B::blas},
      {"a whole part, allocating small shape: off the BLAS", with(situation(4, 8, 64), whole_part), B::eigen_lazy},
      {"a whole part with a threaded BLAS: packed",
       with(situation(512, 384, 256), [&](S& s) { whole_part(s); s.blas_threads = 4; }), B::packed},
      {"no BLAS, one thread: packed", with(situation(128, 128, 128), no_blas), B::packed},
      {"no BLAS, small allocating shape: plain Eigen", with(situation(4, 8, 4), no_blas), B::eigen},
      {"no BLAS, no packed kernel: Eigen",
       with(situation(128, 128, 128), [&](S& s) { no_blas(s); s.packed_kernel = false; }), B::eigen},
      {"a type no BLAS takes: Eigen", with(situation(128, 128, 128), other_type), B::eigen},
      {"bf16 products, one thread: bf16", with(situation(128, 128, 128), bf16), B::packed_bf16},
      {"bf16 products, two threads, 2e8 flops: bf16", with(with(situation(1000, 1000, 100), bf16), two_threads),
       B::packed_bf16},
      {"bf16 products, inside a whole part: bf16", with(with(situation(512, 384, 256), bf16), whole_part),
       B::packed_bf16},
      {"bf16 products, below 1e5 flops: as in float", with(situation(4, 8, 4), bf16), B::eigen_lazy},
      {"bf16 products, a decoding step's weight: streamed in float", with(situation(1, 3072, 768), bf16),
       B::streaming},
      {"narrower BLAS kernels, one thread: packed", with(situation(128, 128, 128), narrow_blas), B::packed},
      {"narrower BLAS kernels, two threads, 2e8 flops: packed",
       with(with(situation(1000, 1000, 100), narrow_blas), two_threads), B::packed},
      {"narrower BLAS kernels, threaded BLAS, 2e9 flops: packed",
       with(with(situation(2000, 1000, 1000), narrow_blas), threaded_blas), B::packed},
      {"narrower BLAS kernels, a whole part: packed", with(with(situation(512, 384, 256), narrow_blas), whole_part),
       B::packed},
      {"narrower BLAS kernels, allocating small shape: Eigen coefficient-wise",
       with(situation(4, 8, 4), narrow_blas), B::eigen_lazy},
      {"narrower BLAS kernels, double (no packed kernel): the BLAS",
       with(with(situation(64, 40, 64), as_double), narrow_blas), B::blas},
  };
  for (const BackendCase& c : cases) EXPECT_EQ(detail::choose_gemm_backend(c.s), c.expected) << c.what;
}

TEST(GemmBackend, PairsRunSideBySideOnlyWhenBothAreLargeOnTwoThreads) {
  auto large = with(situation(2048, 256, 1024), [](detail::GemmSituation& s) { s.threads = 2; });
  auto small = with(situation(64, 64, 64), [](detail::GemmSituation& s) { s.threads = 2; });
  EXPECT_TRUE(detail::gemm_pair_side_by_side(large, large));
  EXPECT_FALSE(detail::gemm_pair_side_by_side(large, small));
  EXPECT_FALSE(detail::gemm_pair_side_by_side(with(large, [](detail::GemmSituation& s) { s.threads = 4; }), large));
  EXPECT_FALSE(detail::gemm_pair_side_by_side(with(large, [](detail::GemmSituation& s) { s.blas_threads = 2; }),
                                              large));
  EXPECT_FALSE(detail::gemm_pair_side_by_side(
      with(large, [](detail::GemmSituation& s) { s.in_parallel_region = true; }), large));
  EXPECT_FALSE(detail::gemm_pair_side_by_side(with(large, [](detail::GemmSituation& s) { s.blas_build = false; }),
                                              large));
  EXPECT_FALSE(detail::gemm_pair_side_by_side(
      with(large, [](detail::GemmSituation& s) { s.bf16_products = true; }), large));
  EXPECT_FALSE(detail::gemm_pair_side_by_side(
      large, with(large, [](detail::GemmSituation& s) { s.blas_narrower = true; })));
  auto large_double = with(large, [](detail::GemmSituation& s) {
    s.scalar_bytes = 8;
    s.packed_kernel = false;
    s.blas_narrower = true;
  });
  EXPECT_TRUE(detail::gemm_pair_side_by_side(large_double, large_double));  // nothing beats the BLAS for doubles
}

TEST(GemmBackend, OpenBlasCoreNamesGiveTheirKernelsVectorWidth) {
  EXPECT_EQ(detail::blas_kernel_vector_bits("SkylakeX"), 512);
  EXPECT_EQ(detail::blas_kernel_vector_bits("SAPPHIRERAPIDS"), 512);
  EXPECT_EQ(detail::blas_kernel_vector_bits("Cooperlake"), 512);
  EXPECT_EQ(detail::blas_kernel_vector_bits("Haswell"), 256);
  EXPECT_EQ(detail::blas_kernel_vector_bits("Zen"), 256);
  EXPECT_EQ(detail::blas_kernel_vector_bits("Prescott"), 128);  // DYNAMIC_ARCH's fallback on an unknown CPU
  EXPECT_EQ(detail::blas_kernel_vector_bits("Sandybridge"), 128);
  EXPECT_EQ(detail::blas_kernel_vector_bits(""), 0);  // no OpenBLAS
  EXPECT_EQ(detail::blas_kernel_vector_bits("SomeFutureCore"), 0);
}

#ifdef EIGENFORMER_GEMM_AVX2
TEST(GemmBackend, TheBlasIsNarrowerWhenItsKernelsAreNarrowerThanThePackedKernels) {
  const int blas_bits = detail::blas_kernel_vector_bits(detail::openblas_core_name());
  const bool packed = detail::packed_kernel_available();
  const bool saved = detail::gemm_avx2::avx512_enabled().load();
  for (bool avx512 : {true, false}) {
    detail::gemm_avx2::avx512_enabled() = avx512;
    const int packed_bits = avx512 && detail::gemm_avx2::cpu_supports_avx512() ? 512 : 256;
    EXPECT_EQ(detail::blas_narrower_than_packed_kernel(), packed && blas_bits != 0 && blas_bits < packed_bits)
        << "OpenBLAS core '" << detail::openblas_core_name() << "', AVX-512 tiles " << avx512;
  }
  detail::gemm_avx2::avx512_enabled() = saved;
  std::vector<float> a(4), b(4), c(4);
  const auto p = detail::GemmProduct<float>::sizes(2, 2, 2).lhs(a.data(), 2).rhs(b.data(), 2).out(c.data(), 2);
  EXPECT_EQ(detail::situation_of(p).blas_narrower, detail::blas_narrower_than_packed_kernel());
}
#endif

TEST(GemmBackend, TheSituationReadsTheCallingThreadsContext) {
  std::vector<float> a(4), b(4), c(4);
  const auto p = detail::GemmProduct<float>::sizes(2, 2, 2).lhs(a.data(), 2).rhs(b.data(), 2).out(c.data(), 2);
  EXPECT_FALSE(detail::situation_of(p).whole_part);
  {
    ExecutionContext context;
    context.whole_part = true;
    ExecutionScope scope(context);
    EXPECT_TRUE(detail::situation_of(p).whole_part);
  }
  EXPECT_FALSE(detail::situation_of(p).whole_part);
  EXPECT_EQ(detail::situation_of(p).scalar_bytes, 4);
  EXPECT_EQ(detail::situation_of(p).threads, num_threads());
  EXPECT_FALSE(detail::situation_of(p).bf16_products);
  {
    MatmulPrecisionGuard medium("medium");
    EXPECT_EQ(detail::situation_of(p).bf16_products, detail::bf16_kernel_available());
    EXPECT_FALSE(detail::situation_of(detail::GemmProduct<double>::sizes(2, 2, 2)).bf16_products);
  }
#ifdef EIGEN_USE_BLAS
  EXPECT_TRUE(detail::situation_of(p).blas_build);
#else
  EXPECT_FALSE(detail::situation_of(p).blas_build);
#endif
}

}  // namespace gemm_test
