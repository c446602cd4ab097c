// Forward and backward of the transformer's hot ops (matmul, softmax, layer_norm, gelu) in float, at the token
// and channel counts of small to base-size models: (rows, C) = (4096, 128), (2048, 256), (1024, 768); matmul at
// the projection and MLP shapes (M, K, N) = (4096, 128, 384), (2048, 256, 1024), (1024, 768, 3072); the GEMM
// kernels alone (BM_gemm_kernel: Eigen or BLAS, AVX2 tiles, AVX-512 tiles) at those and at attention-head shapes.
//
// Run: build/release/benchmarks/ops_bench [--benchmark_filter=softmax] [--benchmark_min_time=0.05]
//
// Counters: items/s = rows (tokens) per second; GFLOP/s for matmul; GB/s for the memory-bound ops, counting the
// compulsory traffic only (every input read once, every output written once). Times are wall-clock
// (UseRealTime) because the kernels may run on several OpenMP threads.
//
// Forward benchmarks record the graph as training does (inputs require grad), so they include saving what the
// backward needs. Backward benchmarks build the graph once outside the timed loop and time
// y.backward(dy, retain_graph = true): the op's backward plus the engine's work (a topological sort and one copy
// of the seed dy), with the input gradients dropped before each pass so that no pass pays for accumulation.
#include <benchmark/benchmark.h>

#include <array>
#include <cstdint>

#include "eigenformer/autograd/var.hpp"
#include "eigenformer/ops/activation.hpp"
#include "eigenformer/ops/attention.hpp"
#include "eigenformer/ops/gemm.hpp"
#include "eigenformer/ops/layer_norm.hpp"
#include "eigenformer/ops/linear.hpp"
#include "eigenformer/ops/matmul.hpp"
#include "eigenformer/ops/softmax.hpp"

namespace {

using eigenformer::Index;
using eigenformer::Shape;
using T = float;
using Var = eigenformer::Var<T>;
using Tensor = eigenformer::Tensor<T>;

Tensor random_tensor(const Shape& shape, std::uint64_t seed) {
  eigenformer::Generator gen(seed);
  return Tensor::normal(shape, T(0), T(1), gen);
}

Var random_var(const Shape& shape, std::uint64_t seed, bool requires_grad = true) {
  return Var(random_tensor(shape, seed), requires_grad);
}

/// items/s (rows) and GB/s from the bytes one iteration must move at least.
void set_memory_counters(benchmark::State& state, Index rows, double bytes_per_iteration) {
  state.SetItemsProcessed(state.iterations() * rows);
  state.counters["GB/s"] =
      benchmark::Counter(bytes_per_iteration * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

/// items/s (rows of the output) and GFLOP/s.
void set_flop_counters(benchmark::State& state, Index rows, double flops_per_iteration) {
  state.SetItemsProcessed(state.iterations() * rows);
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops_per_iteration * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

/// Times y.backward(dy) on a graph built once; `inputs` are the leaves whose gradients each pass recomputes.
template <typename... Leaves>
void run_backward(benchmark::State& state, const Var& y, const Leaves&... inputs) {
  const Tensor dy = random_tensor(y.shape(), 99);
  for (auto _ : state) {
    (inputs.zero_grad(), ...);  // set_to_none: each pass writes fresh gradients
    y.backward(dy, /*retain_graph=*/true);
    (benchmark::DoNotOptimize(inputs.grad().data()), ...);
  }
}

constexpr double kFloatBytes = sizeof(T);

// --- matmul: y (M, N) = a (M, K) b (K, N); forward 2MKN flops, backward (da = dy b^T, db = a^T dy) 4MKN ----------

void BM_matmul_forward(benchmark::State& state) {
  const Index m = state.range(0), k = state.range(1), n = state.range(2);
  const Var a = random_var({m, k}, 1), b = random_var({k, n}, 2);
  for (auto _ : state) {
    Var y = eigenformer::matmul(a, b);
    benchmark::DoNotOptimize(y.value().data());
  }
  set_flop_counters(state, m, 2.0 * m * k * n);
}

void BM_matmul_backward(benchmark::State& state) {
  const Index m = state.range(0), k = state.range(1), n = state.range(2);
  const Var a = random_var({m, k}, 1), b = random_var({k, n}, 2);
  const Var y = eigenformer::matmul(a, b);
  run_backward(state, y, a, b);
  set_flop_counters(state, m, 4.0 * m * k * n);
}

void matmul_sizes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"M", "K", "N"});
  b->Args({4096, 128, 384});   // QKV projection, d_model 128
  b->Args({2048, 256, 1024});  // MLP up-projection, d_model 256
  b->Args({1024, 768, 3072});  // MLP up-projection, d_model 768 (BERT-base, GPT-2 small)
  b->Unit(benchmark::kMillisecond)->UseRealTime();
}

// --- the GEMM kernels alone: C (M, N) = A (M, K) B (K, N), one thread, by backend -----------------------------
// kernel 0 = detail::gemm_eigen (Eigen's product, or the BLAS's in an EIGEN_USE_BLAS build), 1 = our packed kernel
// with 6 x 16 AVX2 tiles, 2 = the same with 6 x 32 AVX-512 tiles (skipped on CPUs without AVX-512F), 3 = the BLAS
// called directly (EIGEN_USE_BLAS builds only), 4 = the packed kernel's bf16 mode (skipped on CPUs without
// AVX512_BF16). The BLAS may use its own threads (OPENBLAS_NUM_THREADS).

void BM_gemm_kernel(benchmark::State& state) {
  const Index m = state.range(0), k = state.range(1), n = state.range(2), kernel = state.range(3);
  const Tensor a = random_tensor({m, k}, 1), b = random_tensor({k, n}, 2);
  Tensor c = Tensor::zeros({m, n});
  const int saved_threads = eigenformer::num_threads();
  eigenformer::set_num_threads(1);
#ifdef EIGENFORMER_GEMM_AVX2
  namespace kernels = eigenformer::detail::gemm_avx2;
  if ((kernel == 1 || kernel == 2) && !kernels::cpu_supported()) state.SkipWithError("no AVX2+FMA on this CPU");
  if (kernel == 2 && !kernels::cpu_supports_avx512()) state.SkipWithError("no AVX-512F on this CPU");
  if (kernel == 4 && !kernels::cpu_supports_avx512_bf16()) state.SkipWithError("no AVX512_BF16 on this CPU");
  kernels::avx512_enabled() = kernel == 2;
#else
  if (kernel == 1 || kernel == 2 || kernel == 4)
    state.SkipWithError("built without the packed kernel (EIGENFORMER_NO_GEMM_KERNEL)");
#endif
#ifndef EIGEN_USE_BLAS
  if (kernel == 3) state.SkipWithError("built without a BLAS (EIGENFORMER_USE_BLAS=OFF)");
#endif
  const auto product = eigenformer::detail::GemmProduct<T>::sizes(m, n, k).lhs(a.data(), k).rhs(b.data(), n).out(
      c.data(), n);
  for (auto _ : state) {
#ifdef EIGEN_USE_BLAS
    if (kernel == 3) {
      eigenformer::detail::gemm_blas(product);
      benchmark::DoNotOptimize(c.data());
      continue;
    }
#endif
#ifdef EIGENFORMER_GEMM_AVX2
    if (kernel == 1 || kernel == 2 || kernel == 4) {
      kernels::gemm(m, n, k, a.data(), k, false, b.data(), n, false, c.data(), n, false, nullptr, false, kernel == 4);
      benchmark::DoNotOptimize(c.data());
      continue;
    }
#endif
    eigenformer::detail::gemm_eigen(product, false);
    benchmark::DoNotOptimize(c.data());
  }
#ifdef EIGENFORMER_GEMM_AVX2
  kernels::avx512_enabled() = true;
#endif
  eigenformer::set_num_threads(saved_threads);
  set_flop_counters(state, m, 2.0 * m * k * n);
}

void gemm_kernel_sizes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"M", "K", "N", "kernel"});
  for (const auto& [m, k, n] : {std::array<Index, 3>{4096, 128, 384}, std::array<Index, 3>{2048, 256, 1024},
                               std::array<Index, 3>{1024, 768, 3072}, std::array<Index, 3>{128, 64, 128},
                               std::array<Index, 3>{128, 128, 64}, std::array<Index, 3>{64, 64, 64},
                               std::array<Index, 3>{8, 32, 96}, std::array<Index, 3>{8, 32, 32},
                               std::array<Index, 3>{4, 8, 4}})
    for (Index kernel : {0, 1, 2, 3, 4}) b->Args({m, k, n, kernel});
  b->Unit(benchmark::kMicrosecond);
}

// --- row-wise ops on (rows, C) ----------------------------------------------------------------------------------

void row_sizes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"rows", "C"});
  b->Args({4096, 128});
  b->Args({2048, 256});
  b->Args({1024, 768});
  b->Unit(benchmark::kMicrosecond)->UseRealTime();
}

void BM_softmax_forward(benchmark::State& state) {
  const Index rows = state.range(0), c = state.range(1);
  const Var x = random_var({rows, c}, 3);
  for (auto _ : state) {
    Var y = eigenformer::softmax(x);
    benchmark::DoNotOptimize(y.value().data());
  }
  set_memory_counters(state, rows, 2.0 * rows * c * kFloatBytes);  // read x, write y
}

void BM_softmax_backward(benchmark::State& state) {
  const Index rows = state.range(0), c = state.range(1);
  const Var x = random_var({rows, c}, 3);
  const Var y = eigenformer::softmax(x);
  run_backward(state, y, x);
  set_memory_counters(state, rows, 3.0 * rows * c * kFloatBytes);  // read y and dy, write dx
}

void BM_layer_norm_forward(benchmark::State& state) {
  const Index rows = state.range(0), c = state.range(1);
  const Var x = random_var({rows, c}, 4), weight = random_var({c}, 5), bias = random_var({c}, 6);
  for (auto _ : state) {
    Var y = eigenformer::layer_norm(x, weight, bias, T(1e-5));
    benchmark::DoNotOptimize(y.value().data());
  }
  set_memory_counters(state, rows, (2.0 * rows * c + 2.0 * c) * kFloatBytes);  // read x, weight, bias; write y
}

void BM_layer_norm_backward(benchmark::State& state) {
  const Index rows = state.range(0), c = state.range(1);
  const Var x = random_var({rows, c}, 4), weight = random_var({c}, 5), bias = random_var({c}, 6);
  const Var y = eigenformer::layer_norm(x, weight, bias, T(1e-5));
  run_backward(state, y, x, weight, bias);
  // read x, dy and weight; write dx, dweight and dbias
  set_memory_counters(state, rows, (3.0 * rows * c + 3.0 * c) * kFloatBytes);
}

void BM_gelu_forward(benchmark::State& state) {
  const Index rows = state.range(0), c = state.range(1);
  const Var x = random_var({rows, c}, 7);
  for (auto _ : state) {
    Var y = eigenformer::gelu(x);  // exact (erf) form, torch's default
    benchmark::DoNotOptimize(y.value().data());
  }
  set_memory_counters(state, rows, 2.0 * rows * c * kFloatBytes);  // read x, write y
}

void BM_gelu_backward(benchmark::State& state) {
  const Index rows = state.range(0), c = state.range(1);
  const Var x = random_var({rows, c}, 7);
  const Var y = eigenformer::gelu(x);
  run_backward(state, y, x);
  set_memory_counters(state, rows, 3.0 * rows * c * kFloatBytes);  // read x and dy, write dx
}

// --- fused ops against their unfused equivalents (one training step's forward + backward each) -------------------

/// Forward and backward of relu(x W^T + b), fused (linear_relu: relu in the GEMM's store, backward from the
/// output) or as linear then relu; the feed-forward up-projection of model_bench's configurations.
void BM_linear_relu_step(benchmark::State& state) {
  const Index rows = state.range(0), in = state.range(1), out = state.range(2);
  const bool fused = state.range(3) != 0;
  const Var x = random_var({rows, in}, 8), w = random_var({out, in}, 9), b = random_var({out}, 10);
  const Tensor dy = random_tensor({rows, out}, 11);
  for (auto _ : state) {
    Var y = fused ? eigenformer::linear_relu(x, w, b) : eigenformer::relu(eigenformer::linear(x, w, b));
    y.backward(dy);
    for (const Var* p : {&x, &w, &b}) p->zero_grad();
  }
  set_flop_counters(state, rows, 6.0 * rows * in * out);
}

/// Forward and backward of self-attention from packed (B, T, 3C) projections to merged (B, T, C) heads: fused
/// (scaled_dot_product_attention_packed, heads read and written in place) or split_qkv_heads -> attention ->
/// merge_heads.
void BM_self_attention_step(benchmark::State& state) {
  const Index batch = state.range(0), t = state.range(1), c = state.range(2), heads = state.range(3);
  const bool fused = state.range(4) != 0;
  const Var qkv = random_var({batch, t, 3 * c}, 12);
  const Tensor dy = random_tensor({batch, t, c}, 13);
  for (auto _ : state) {
    Var y;
    if (fused) {
      y = eigenformer::scaled_dot_product_attention_packed(qkv, heads);
    } else {
      const auto parts = eigenformer::split_qkv_heads(qkv, heads);
      y = eigenformer::merge_heads(eigenformer::scaled_dot_product_attention(parts[0], parts[1], parts[2]));
    }
    y.backward(dy);
    qkv.zero_grad();
  }
  set_flop_counters(state, batch * t, 3.0 * 4.0 * batch * t * t * c);  // QK^T and PV forward, x3 for training
}

}  // namespace

BENCHMARK(BM_linear_relu_step)
    ->ArgNames({"rows", "in", "out", "fused"})
    ->Args({4096, 128, 512, 1})
    ->Args({4096, 128, 512, 0})
    ->Args({2048, 256, 1024, 1})
    ->Args({2048, 256, 1024, 0})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_self_attention_step)
    ->ArgNames({"B", "T", "C", "H", "fused"})
    ->Args({32, 128, 128, 2, 1})
    ->Args({32, 128, 128, 2, 0})
    ->Args({16, 128, 256, 4, 1})
    ->Args({16, 128, 256, 4, 0})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_gemm_kernel)->Apply(gemm_kernel_sizes);
BENCHMARK(BM_matmul_forward)->Apply(matmul_sizes);
BENCHMARK(BM_matmul_backward)->Apply(matmul_sizes);
BENCHMARK(BM_softmax_forward)->Apply(row_sizes);
BENCHMARK(BM_softmax_backward)->Apply(row_sizes);
BENCHMARK(BM_layer_norm_forward)->Apply(row_sizes);
BENCHMARK(BM_layer_norm_backward)->Apply(row_sizes);
BENCHMARK(BM_gelu_forward)->Apply(row_sizes);
BENCHMARK(BM_gelu_backward)->Apply(row_sizes);
