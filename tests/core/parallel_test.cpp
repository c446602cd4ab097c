#include "eigenformer/core/parallel.hpp"

#include <atomic>
#include <stdexcept>
#include <vector>

#include "support/test_support.hpp"

using namespace eigenformer;

namespace parallel_test {

namespace {

// Sets eigenformer's thread count for a scope.
class ThreadCount {
 public:
  explicit ThreadCount(int n) : previous_(num_threads()) { set_num_threads(n); }
  ~ThreadCount() { set_num_threads(previous_); }

 private:
  int previous_;
};

}  // namespace

TEST(Parallel, AnExceptionInsideALoopReachesTheCallerAtEveryThreadCount) {
  // Enough work to fork: an iteration's exception must be rethrown on the calling thread after the loop, not
  // escape the OpenMP region (which would terminate the process).
  for (int threads : {1, 2, 4}) {
    SCOPED_TRACE(std::to_string(threads) + " threads");
    ThreadCount count(threads);
    std::atomic<Index> ran{0};
    EXPECT_THROW_WITH(detail::parallel_for(1000, 1e6,
                                           [&](Index i) {
                                             ran.fetch_add(1);
                                             if (i == 537) throw std::length_error("iteration 537");
                                           }),
                      std::length_error, {"iteration 537"});
    EXPECT_GE(ran.load(), 1);
    EXPECT_THROW_WITH(detail::parallel_chunks(100000, 1e3,
                                              [](Index begin, Index end) {
                                                if (begin <= 77777 && 77777 < end) throw ValueError("chunk");
                                              }),
                      ValueError, {"chunk"});
    const detail::ChunkPlan plan = detail::chunk_plan(100000, 1e3);
    EXPECT_THROW(detail::run_chunks(100000, plan, [](Index k, Index, Index) { if (k == 0) throw std::bad_alloc(); }),
                 std::bad_alloc);
    // And the loops still work afterwards.
    std::vector<int> seen(1000, 0);
    detail::parallel_for(1000, 1e6, [&](Index i) { seen[static_cast<std::size_t>(i)] = 1; });
    for (int s : seen) ASSERT_EQ(s, 1);
  }
}

TEST(Parallel, FirstExceptionKeepsTheFirstAndSkipsTheRest) {
  detail::FirstException error;
  int runs = 0;
  error.run([&] {
    ++runs;
    throw std::runtime_error("first");
  });
  error.run([&] {
    ++runs;
    throw std::runtime_error("second");
  });
  EXPECT_EQ(runs, 1);
  EXPECT_TRUE(error.failed());
  EXPECT_THROW_WITH(error.rethrow(), std::runtime_error, {"first"});
  detail::FirstException none;
  none.run([] {});
  EXPECT_NO_THROW(none.rethrow());
}

}  // namespace parallel_test
