#include "eigenformer/ops/gemm.hpp"

#include <cmath>
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

/// Which implementation a case runs on: detail::gemm's choice, the packed kernel, the BLAS called directly, or
/// the BLAS called once per piece of C on the current OpenMP threads.
enum class Path { kDispatch, kPacked, kBlas, kBlasSplit };

/// Runs one case on kPath and compares every element of C, padding included, with a double-precision reference
/// computed element by element; returns the largest error relative to the sum of |terms|.

template <typename T, Path kPath = Path::kDispatch>
double max_relative_error(const Case& c, std::uint64_t seed) {
  const Index a_rows = c.ta ? c.k : c.m, a_cols = c.ta ? c.m : c.k;
  const Index b_rows = c.tb ? c.n : c.k, b_cols = c.tb ? c.k : c.n;
  const Index lda = a_cols + c.pad, ldb = b_cols + c.pad, ldc = c.n + c.pad;
  const std::vector<T> a = values<T>(a_rows * lda, seed), b = values<T>(b_rows * ldb, seed + 1),
                       bias = values<T>(c.n, seed + 2), c0 = values<T>(c.m * ldc, seed + 3);
  std::vector<T> out = c0;
  detail::GemmEpilogue<T> epilogue;
  epilogue.bias = c.bias ? bias.data() : nullptr;
  epilogue.relu = c.relu;
  if constexpr (kPath == Path::kBlas) {
#ifdef EIGEN_USE_BLAS
    if (!detail::gemm_blas(c.m, c.n, c.k, a.data(), lda, c.ta, b.data(), ldb, c.tb, out.data(), ldc, c.accumulate,
                           epilogue))
      return std::numeric_limits<double>::infinity();
#endif
  } else if constexpr (kPath == Path::kBlasSplit) {
#ifdef EIGEN_USE_BLAS
    if (!detail::gemm_blas_split(c.m, c.n, c.k, a.data(), lda, c.ta, b.data(), ldb, c.tb, out.data(), ldc,
                                 c.accumulate, epilogue))
      return std::numeric_limits<double>::infinity();
#endif
  } else if constexpr (kPath == Path::kPacked) {
#ifdef EIGENFORMER_GEMM_AVX2
    static_assert(std::is_same_v<T, float>, "the packed kernel is float only");
    detail::gemm_avx2::gemm(c.m, c.n, c.k, a.data(), lda, c.ta, b.data(), ldb, c.tb, out.data(), ldc, c.accumulate,
                            epilogue.bias, epilogue.relu);
#endif
  } else {
    detail::gemm(c.m, c.n, c.k, a.data(), lda, c.ta, b.data(), ldb, c.tb, out.data(), ldc, c.accumulate,
                 epilogue);
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
        const double x = static_cast<double>(c.ta ? a[p * lda + i] : a[i * lda + p]);
        const double y = static_cast<double>(c.tb ? b[j * ldb + p] : b[p * ldb + j]);
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
  // Threads each running a whole part of a batch split (WholePartGuard) inside a parallel region: each product is
  // the one a single thread computes (in a BLAS build, the bits of that one-thread BLAS call).
  const Index m = 512, n = 384, k = 256;
  const std::vector<float> a = values<float>(m * k, 41), b = values<float>(k * n, 42);
  const int saved = num_threads();
  set_num_threads(1);
  std::vector<float> one(static_cast<std::size_t>(m * n));
  detail::gemm(m, n, k, a.data(), k, false, b.data(), n, false, one.data(), n, false);
  set_num_threads(2);
  std::vector<std::vector<float>> parts(2, std::vector<float>(one.size()));
#ifdef _OPENMP
#pragma omp parallel for num_threads(2)
#endif
  for (int t = 0; t < 2; ++t) {
    detail::WholePartGuard whole_part;
    EXPECT_TRUE(detail::running_whole_part());
    detail::gemm(m, n, k, a.data(), k, false, b.data(), n, false, parts[static_cast<std::size_t>(t)].data(), n, false);
  }
  set_num_threads(saved);
  EXPECT_FALSE(detail::running_whole_part());
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
    detail::GemmProduct<float> p{rows, in, out, dz.data(), out, false, w.data(), in, false, dx.data(), in};
    detail::GemmProduct<float> q{out, in, rows, dz.data(), out, true, x.data(), in, false, dw.data(), in, true};
    q.epilogue.bias = bias.data();
    q.epilogue.relu = true;
    return std::make_pair(p, q);
  };
  const int saved = num_threads();
  set_num_threads(1);
  std::vector<float> dx1, dw1;
  const auto [p1, q1] = products(dx1, dw1);
  p1.run();
  q1.run();
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
  detail::gemm_pair(detail::GemmProduct<float>{2, 3, 2, ones.data(), 2, false, ones.data(), 3, false, small_a.data(), 3},
                    detail::GemmProduct<float>{3, 2, 2, ones.data(), 2, false, ones.data(), 2, false, small_b.data(), 2});
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
  detail::gemm<float>(2, 2, 0, nullptr, 0, false, nullptr, 2, false, c.data(), 2, true);
  EXPECT_EQ(c, (std::vector<float>{1, 2, 3, 4}));
  detail::GemmEpilogue<float> epilogue;
  epilogue.bias = bias.data();
  detail::gemm<float>(2, 2, 0, nullptr, 0, false, nullptr, 2, false, c.data(), 2, false, epilogue);
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
    detail::GemmEpilogue<float> epilogue;
    epilogue.relu = true;
    detail::gemm<float>(1, n, 1, a.data(), 1, false, b.data(), n, false, c.data(), n, false, epilogue);
    for (float v : c) EXPECT_TRUE(std::isnan(v));
    a[0] = 1.0f;
    detail::gemm<float>(1, n, 1, a.data(), 1, false, b.data(), n, false, c.data(), n, false, epilogue);
    for (float v : c) EXPECT_EQ(v, 0.0f);
  }
}

}  // namespace gemm_test
