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

#ifdef _OPENMP
TEST(Parallel, ThreadSharesSplitARangeInOrderLikeAStaticSchedule) {
  // Each thread's share, for every n up to 12 and 1 to 4 threads: in thread order they tile [0, n), and their
  // sizes differ by at most one, the larger ones first (libgomp's static split).
  for (int threads : {1, 2, 3, 4}) {
    for (Index n = 0; n <= 12; ++n) {
      std::vector<std::pair<Index, Index>> shares(static_cast<std::size_t>(threads), {-1, -1});
      int team = 0;
#pragma omp parallel num_threads(threads)
      {
        shares[static_cast<std::size_t>(omp_get_thread_num())] = detail::thread_share(n);
#pragma omp single
        team = omp_get_num_threads();
      }
      Index next = 0, first_size = -1, previous_size = n;
      for (int t = 0; t < team; ++t) {
        const Index begin = shares[static_cast<std::size_t>(t)].first, end = shares[static_cast<std::size_t>(t)].second;
        EXPECT_EQ(begin, next) << "thread " << t << " of " << team << ", n = " << n;
        const Index size = end - begin;
        if (first_size < 0) first_size = size;
        EXPECT_LE(size, previous_size) << "thread " << t << " of " << team << ", n = " << n;
        EXPECT_GE(size, first_size - 1) << "thread " << t << " of " << team << ", n = " << n;
        previous_size = size;
        next = end;
      }
      EXPECT_EQ(next, n) << team << " threads, n = " << n;
    }
  }
}
#endif

}  // namespace parallel_test
