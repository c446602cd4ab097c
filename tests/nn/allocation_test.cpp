// Heap traffic of a training step in the steady state. A counting global operator new (this test executable only)
// counts small allocations (graph nodes, shapes, shared_ptr control blocks); BufferCache::system_allocations counts
// tensor buffers taken from the system rather than from the cache.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "eigenformer/eigenformer.hpp"

namespace {
std::atomic<long> g_new_calls{0};
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
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

namespace allocation_test {

namespace {

using namespace eigenformer;

struct StepCounts {
  long new_calls = 0;
  std::size_t buffers = 0;
};

TEST(Allocation, SteadyStateTrainingStepTakesNoTensorBufferFromTheSystemAndTheSameSmallAllocationsEachStep) {
  nn::EncoderClassifier<float>::Options o;  // model_bench's "seed" configuration
  o.vocab_size = 50;
  o.d_model = 32;
  o.nhead = 4;
  o.num_layers = 2;
  o.dim_feedforward = 64;
  o.dropout = 0.0f;
  o.max_len = 4;
  o.positional = nn::PositionalKind::learned;
  o.num_classes = 2;
  nn::EncoderClassifier<float> model(o);
  model.train();
  optim::Adam<float> opt(model.named_parameters());
  const auto ids = Tensor<std::int64_t>::from({1, 7, 3, 9, 4, 4, 8, 2}, {2, 4});
  const auto labels = Tensor<std::int64_t>::from({0, 1}, {2});

  const auto step = [&] {
    Var<float> loss = cross_entropy(model.forward(ids), labels);
    loss.backward();
    opt.step();
    opt.zero_grad();
  };
  for (int i = 0; i < 3; ++i) step();  // warm-up: Adam's moments and every buffer size the step uses get cached

  std::vector<StepCounts> counts;
  for (int i = 0; i < 5; ++i) {
    const long n0 = g_new_calls.load();
    const std::size_t b0 = detail::buffer_cache().system_allocations();
    step();
    counts.push_back({g_new_calls.load() - n0, detail::buffer_cache().system_allocations() - b0});
  }
  for (const StepCounts& c : counts) {
    EXPECT_EQ(c.buffers, 0u) << "a steady-state step took a tensor buffer from the system";
    EXPECT_EQ(c.new_calls, counts.front().new_calls) << "small allocations per step must not grow";
  }
  EXPECT_GT(counts.front().new_calls, 0) << "the counting operator new is not in use";
  ::testing::Test::RecordProperty("operator_new_per_step", static_cast<int>(counts.front().new_calls));
  std::cout << "[ counts   ] steady-state training step (seed model): " << counts.front().new_calls
            << " operator new calls, 0 tensor buffers from the system\n";
}

}  // namespace

}  // namespace allocation_test
