// The streaming kernel of few-row products against a double-precision reference (both weight layouts, every row
// count up to 8, sizes off the vector and unroll widths, accumulate, bias, relu, AVX2 and AVX-512, one and two
// threads), and the rows of choose_gemm_backend's table that send products to it.
#include "eigenformer/ops/streaming_gemm_kernel.hpp"

#include <cmath>
#include <vector>

#include "eigenformer/ops/gemm.hpp"
#include "support/test_support.hpp"

using namespace eigenformer;

namespace streaming_gemm_kernel_test {

#ifdef EIGENFORMER_GEMM_AVX2
TEST(StreamingGemmKernel, MatchesTheDefinitionForEveryLayoutShapeAndEpilogue) {
  if (!detail::packed_kernel_available()) GTEST_SKIP() << "no AVX2 + FMA";
  Generator gen(1);
  const auto random = [&](Index n) {
    std::vector<float> v(static_cast<std::size_t>(n));
    for (float& x : v) x = static_cast<float>(std::uniform_real_distribution<double>(-1, 1)(gen));
    return v;
  };
  const bool avx512 = detail::gemm_avx2::cpu_supports_avx512();
  for (const bool wide : {false, true}) {
    if (wide && !avx512) continue;
    detail::gemm_avx2::avx512_enabled().store(wide);
    for (const int threads : {1, 2}) {
      set_num_threads(threads);
      for (const bool transpose_b : {false, true})
        for (Index m = 1; m <= 8; ++m)
          for (const Index n : {1, 7, 37, 300})
            for (const Index k : {1, 5, 33, 260}) {
              const bool accumulate = (m + n) % 2 == 0, relu = (n + k) % 3 == 0, with_bias = k % 2 == 1;
              const Index lda = k + 3, ldb = (transpose_b ? k : n) + 5, ldc = n + 2;
              const std::vector<float> a = random(m * lda), b = random((transpose_b ? n : k) * ldb), bias = random(n);
              std::vector<float> c = random(m * ldc);
              const std::vector<float> c0 = c;
              detail::streaming::gemm(m, n, k, a.data(), lda, b.data(), ldb, transpose_b, c.data(), ldc, accumulate,
                                      with_bias ? bias.data() : nullptr, relu);
              double worst = 0;
              for (Index i = 0; i < m; ++i)
                for (Index j = 0; j < n; ++j) {
                  double want = accumulate ? c0[static_cast<std::size_t>(i * ldc + j)] : 0.0;
                  for (Index p = 0; p < k; ++p)
                    want += double(a[static_cast<std::size_t>(i * lda + p)]) *
                            b[static_cast<std::size_t>(transpose_b ? j * ldb + p : p * ldb + j)];
                  if (with_bias) want += bias[static_cast<std::size_t>(j)];
                  if (relu && want < 0) want = 0;
                  worst = std::max(worst, std::abs(c[static_cast<std::size_t>(i * ldc + j)] - want));
                }
              EXPECT_LT(worst, 1e-4) << "m " << m << " n " << n << " k " << k << " transpose_b " << transpose_b
                                     << " threads " << threads << " avx512 " << wide;
              // Padding between rows of C is never written.
              for (Index i = 0; i < m; ++i)
                for (Index j = n; j < ldc; ++j)
                  EXPECT_EQ(c[static_cast<std::size_t>(i * ldc + j)], c0[static_cast<std::size_t>(i * ldc + j)]);
            }
    }
  }
  detail::gemm_avx2::avx512_enabled().store(true);
  set_num_threads(1);
}
#endif

TEST(StreamingGemmKernel, ProductsOfFewRowsAndALargeWeightGoToIt) {
  detail::GemmSituation s;
  s.blas_build = true;
  s.blas_threads = 1;
  s.packed_kernel = true;
  const auto with = [&](Index m, Index n, Index k, bool ta, bool tb, int threads) {
    detail::GemmSituation x = s;
    x.m = m;
    x.n = n;
    x.k = k;
    x.transpose_a = ta;
    x.transpose_b = tb;
    x.threads = threads;
    return detail::choose_gemm_backend(x);
  };
  using B = detail::GemmBackend;
  EXPECT_EQ(with(1, 2304, 768, false, false, 1), B::streaming);  // GPT-2's c_attn at batch 1
  EXPECT_EQ(with(8, 50257, 768, false, true, 2), B::streaming);  // the tied language-model head at batch 8
  EXPECT_EQ(with(9, 2304, 768, false, false, 1), B::blas);       // more rows: a blocking kernel
  EXPECT_EQ(with(1, 2304, 768, true, false, 1), B::blas);        // A transposed
  EXPECT_EQ(with(4, 256, 256, false, false, 1), B::blas);        // a weight of 256 KiB stays in cache
  detail::GemmSituation d = s;
  d.m = 1;
  d.n = 4096;
  d.k = 4096;
  d.scalar_bytes = 8;
  d.packed_kernel = false;
  EXPECT_EQ(detail::choose_gemm_backend(d), B::blas);  // double: no streaming kernel
}

}  // namespace streaming_gemm_kernel_test
