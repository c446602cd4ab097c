// Heap traffic of a training step in the steady state: none. A counting global operator new (this test executable
// only) counts the small allocations that ops used to make (graph nodes, shapes, parent lists, backward closures,
// shared_ptr control blocks); on glibc without a sanitizer, malloc and its siblings are counted too (they forward to
// glibc's __libc_* entry points), which covers Eigen's temporaries and the buffer cache's aligned_alloc.
// BufferCache::system_allocations counts tensor buffers taken from the system rather than from the cache.
#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <new>
#include <vector>

#include "eigenformer/eigenformer.hpp"

namespace {
std::atomic<long> g_new_calls{0};
std::atomic<long> g_malloc_calls{0};
}  // namespace

// GCC 12 flags the free() in the replacement operator delete as mismatched with operator new once both are inlined
// into a caller (-Wmismatched-new-delete); they are a matching malloc/free pair.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
void* operator new(std::size_t n) {
  g_new_calls.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
// Every other form of new and delete is replaced too, so that each allocation meets its own deallocation (the
// standard library's nothrow new, e.g. std::stable_sort's buffer, would otherwise pair the sanitizer's new with
// this free).
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  g_new_calls.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n ? n : 1);
}
void* operator new[](std::size_t n) { return operator new(n); }
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept { return operator new(n, t); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define EIGENFORMER_TEST_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define EIGENFORMER_TEST_SANITIZED 1
#endif
#if defined(__GLIBC__) && !defined(EIGENFORMER_TEST_SANITIZED)
#define EIGENFORMER_TEST_COUNTS_MALLOC 1
extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);
void* malloc(std::size_t n) {
  g_malloc_calls.fetch_add(1, std::memory_order_relaxed);
  return __libc_malloc(n);
}
void* calloc(std::size_t count, std::size_t n) {
  g_malloc_calls.fetch_add(1, std::memory_order_relaxed);
  return __libc_calloc(count, n);
}
void* realloc(void* p, std::size_t n) {
  g_malloc_calls.fetch_add(1, std::memory_order_relaxed);
  return __libc_realloc(p, n);
}
void* aligned_alloc(std::size_t alignment, std::size_t n) {
  g_malloc_calls.fetch_add(1, std::memory_order_relaxed);
  return __libc_memalign(alignment, n);
}
int posix_memalign(void** out, std::size_t alignment, std::size_t n) {
  g_malloc_calls.fetch_add(1, std::memory_order_relaxed);
  void* p = __libc_memalign(alignment, n);
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}
}  // extern "C"
#endif

namespace allocation_test {

namespace {

using namespace eigenformer;

struct Counts {
  long new_calls = 0;
  long malloc_calls = 0;
  std::size_t buffers = 0;
};

/// The allocations f makes, by kind.
template <typename F>
Counts count_allocations(F&& f) {
  const std::size_t b0 = detail::buffer_cache().system_allocations();  // first: the cache is made on first use
  const long n0 = g_new_calls.load(), m0 = g_malloc_calls.load();
  f();
  return {g_new_calls.load() - n0, g_malloc_calls.load() - m0, detail::buffer_cache().system_allocations() - b0};
}

/// Expects that what was counted took nothing from the system: no tensor buffer, no operator new, no malloc.
void expect_no_allocation(const Counts& c, const char* what) {
  EXPECT_EQ(c.buffers, 0u) << "tensor buffers from the system in " << what;
  EXPECT_EQ(c.new_calls, 0) << "operator new calls in " << what;
#ifdef EIGENFORMER_TEST_COUNTS_MALLOC
  EXPECT_EQ(c.malloc_calls, 0) << "malloc calls in " << what;
#endif
}

void* volatile g_escape = nullptr;  // keeps the positive control's allocation from being optimized away

TEST(Allocation, TheCountersSeeAllocations) {
  const Counts object = count_allocations([] {  // operator new itself: sanitizers replace new[] with their own
    g_escape = ::operator new(8000);
    ::operator delete(g_escape);
  });
  EXPECT_EQ(object.new_calls, 1);
  release_buffer_cache();  // the tensor below must come from the system
  const Counts tensor = count_allocations([] { (void)Tensor<float>::empty({1000}); });
  EXPECT_EQ(tensor.buffers, 1u);
#ifdef EIGENFORMER_TEST_COUNTS_MALLOC
  EXPECT_EQ(object.malloc_calls, 1);  // the replacement operator new's malloc
  EXPECT_GE(tensor.malloc_calls, 1);  // the buffer's aligned_alloc (and the cold pool's blocks)
#endif
}

/// Small products in every layout, on one and two threads, allocate nothing once warm: OpenBLAS's small-matrix
/// kernels for AVX-512 cores malloc a buffer per call for some of them (untransposed operands, a column count
/// that is not a multiple of the vector width), so detail::gemm keeps those away from the BLAS.
template <typename T>
void expect_small_products_allocate_nothing() {
  const Index shapes[][3] = {{4, 8, 64}, {64, 8, 64}, {16, 24, 40}, {1, 9, 100}, {64, 40, 64},
                             {3, 2, 32}, {128, 8, 128}, {7, 33, 50}, {32, 16, 32}};
  std::vector<T> a(128 * 128, T(0.5)), b(128 * 128, T(0.25)), c(128 * 128), bias(128, T(1));
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (const auto& [m, n, k] : shapes)
      for (bool ta : {false, true})
        for (bool tb : {false, true})
          for (bool with_bias : {false, true}) {
            detail::GemmProduct<T> p = detail::GemmProduct<T>::sizes(m, n, k).out(c.data(), n);
            p.a = a.data();
            p.lda = ta ? m : k;
            p.transpose_a = ta;
            p.b = b.data();
            p.ldb = tb ? k : n;
            p.transpose_b = tb;
            p.add_bias(with_bias ? bias.data() : nullptr);
            const auto product = [&] { detail::gemm(p); };
            product();  // warm: the packed kernel's buffers, the BLAS's own
            const Counts counts = count_allocations(product);
            EXPECT_EQ(counts.new_calls + counts.malloc_calls, 0)
                << "m=" << m << " n=" << n << " k=" << k << " ta=" << ta << " tb=" << tb << " bias=" << with_bias
                << " threads=" << threads;
            // The product still ran: every element is k * 0.5 * 0.25 (+ 1 with the bias).
            EXPECT_EQ(c[static_cast<std::size_t>(m * n - 1)], T(k) * T(0.125) + (with_bias ? T(1) : T(0)));
          }
  }
}

TEST(Allocation, SmallProductsInEveryLayoutAllocateNothing) {
  const int threads_before = num_threads();
  expect_small_products_allocate_nothing<float>();
  expect_small_products_allocate_nothing<double>();
  set_num_threads(threads_before);
}

struct Config {
  const char* name;
  int threads;
  float dropout;
  BatchSplit split = BatchSplit::automatic;  // automatic does not split a model this small
};

class SteadyState : public ::testing::TestWithParam<Config> {};

TEST_P(SteadyState, TrainingStepAndInferenceAllocateNothing) {
  const Config cfg = GetParam();
  const int threads_before = num_threads();
  set_num_threads(cfg.threads);
  if (num_threads() != cfg.threads) {
    set_num_threads(threads_before);
    GTEST_SKIP() << "built without OpenMP: one thread only";
  }
  nn::EncoderClassifier<float>::Options o;  // model_bench's "seed" configuration, with dropout as the case says
  o.vocab_size = 50;
  o.encoder.layer.d_model = 32;
  o.encoder.layer.nhead = 4;
  o.encoder.num_layers = 2;
  o.encoder.layer.dim_feedforward = 64;
  o.encoder.layer.dropout = cfg.dropout;
  o.max_len = 64;
  o.positional = nn::PositionalKind::learned;
  o.head.num_classes = 2;
  nn::EncoderClassifier<float> model(o);
  model.train();
  optim::Adam<float> opt(model.named_parameters());
  // 16 sequences of 64 tokens: large enough that the layer norms, softmaxes and products split across threads.
  Tensor<std::int64_t> ids = Tensor<std::int64_t>::empty({16, 64});
  for (Index i = 0; i < ids.numel(); ++i) ids.data()[i] = (i * 7 + 3) % o.vocab_size;
  Tensor<std::int64_t> labels = Tensor<std::int64_t>::empty({16});
  for (Index i = 0; i < labels.numel(); ++i) labels.data()[i] = i % 2;

  const auto step = [&] {
    Var<float> loss = cross_entropy(model.forward(ids), labels);
    loss.backward();
    opt.step();
    opt.zero_grad();
  };
  const auto inference = [&] {
    model.eval();
    Var<float> logits = infer(model, cfg.split, ids);
    model.train();
  };
  for (int i = 0; i < 3; ++i) {  // warm-up: Adam's moments, every buffer size and pool block the step uses
    step();
    inference();
  }
  for (int i = 0; i < 3; ++i) {
    expect_no_allocation(count_allocations(step), "a steady-state training step");
    expect_no_allocation(count_allocations(inference), "a steady-state inference forward");
  }
  set_num_threads(threads_before);
}

INSTANTIATE_TEST_SUITE_P(Allocation, SteadyState,
                         ::testing::Values(Config{"one_thread", 1, 0.0f}, Config{"two_threads", 2, 0.0f},
                                           Config{"dropout_two_threads", 2, 0.1f},
                                           // inference with the batch split across the threads
                                           Config{"batch_split_two_threads", 2, 0.0f, BatchSplit::always},
                                           Config{"batch_split_dropout_two_threads", 2, 0.1f,
                                                  BatchSplit::always}),
                         [](const ::testing::TestParamInfo<Config>& info) { return std::string(info.param.name); });

}  // namespace

}  // namespace allocation_test
