#include "eigenformer/core/small_object_pool.hpp"

#include <cstdint>
#include <thread>
#include <vector>

#include "support/test_support.hpp"

using namespace eigenformer;

namespace small_object_pool_test {

using detail::PoolAllocator;
using detail::SmallObjectPool;

TEST(SmallObjectPool, AFreedBlockServesTheNextRequestOfItsClassOnTheSameThread) {
  for (std::size_t bytes = 1; bytes <= SmallObjectPool::kMaxBlock; bytes = bytes * 2 + 1) {
    void* a = SmallObjectPool::take(bytes);
    SmallObjectPool::give(a, bytes);
    void* b = SmallObjectPool::take(bytes);
    EXPECT_EQ(b, a) << bytes << " bytes";
    SmallObjectPool::give(b, bytes);
  }
  void* a = SmallObjectPool::take(40);  // 40 and 64 bytes share the 64-byte class; 65 does not
  SmallObjectPool::give(a, 40);
  void* b = SmallObjectPool::take(64);
  EXPECT_EQ(b, a);
  void* c = SmallObjectPool::take(65);
  EXPECT_NE(c, a);
  SmallObjectPool::give(b, 64);
  SmallObjectPool::give(c, 65);
}

TEST(SmallObjectPool, BlocksAreAlignedForAnyFundamentalTypeAndWritableToTheirSize) {
  for (std::size_t bytes : {1u, 8u, 16u, 17u, 100u, 1000u, 4096u}) {
    auto* p = static_cast<unsigned char*>(SmallObjectPool::take(bytes));
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % alignof(std::max_align_t), 0u) << bytes;
    for (std::size_t i = 0; i < bytes; ++i) p[i] = static_cast<unsigned char>(i);
    for (std::size_t i = 0; i < bytes; ++i) ASSERT_EQ(p[i], static_cast<unsigned char>(i));
    SmallObjectPool::give(p, bytes);
  }
}

TEST(SmallObjectPool, ABlockFreedOnAnotherThreadJoinsThatThreadsList) {
  void* made = SmallObjectPool::take(200);
  void* reused = nullptr;
  std::thread other([&] {
    SmallObjectPool::give(made, 200);
    reused = SmallObjectPool::take(200);
    SmallObjectPool::give(reused, 200);
  });  // the other thread's list is freed when it ends (LSan checks it)
  other.join();
  EXPECT_EQ(reused, made);
}

TEST(SmallObjectPool, ListsKeepABoundedNumberOfBlocksAndTheRestGoesBack) {
  // 4096-byte blocks: a list keeps at most 1 MiB of them (256); the blocks given back beyond that go to the system.
  constexpr std::size_t bytes = 4096, kept = SmallObjectPool::kMaxBytesPerClass / bytes;
  static_assert(kept == 256);
  std::vector<void*> blocks;
  for (std::size_t i = 0; i < kept + 44; ++i) blocks.push_back(SmallObjectPool::take(bytes));  // empties the list
  for (void* p : blocks) SmallObjectPool::give(p, bytes);  // the first 256 are kept, the last 44 are not
  // The list is last in, first out: it serves the 256th block given first (the 300th, had it kept more), then the
  // ones before it.
  for (std::size_t i = kept; i-- > 0;) {
    void* p = SmallObjectPool::take(bytes);
    ASSERT_EQ(p, blocks[i]) << "take number " << kept - i;
  }
  for (std::size_t i = 0; i < kept; ++i) SmallObjectPool::give(blocks[i], bytes);
}

TEST(PoolAllocator, ServesContainersOfAnySizeBelowAndAboveThePoolsLargestBlock) {
  std::vector<std::int64_t, PoolAllocator<std::int64_t>> v;
  for (std::int64_t i = 0; i < 100000; ++i) v.push_back(i);  // grows through every pool class, then beyond
  std::int64_t sum = 0;
  for (std::int64_t x : v) sum += x;
  EXPECT_EQ(sum, std::int64_t(100000) * 99999 / 2);
  auto w = v;  // copies and moves keep working across allocators that all compare equal
  auto moved = std::move(w);
  EXPECT_EQ(moved, v);
  EXPECT_TRUE(PoolAllocator<int>() == PoolAllocator<double>());
}

TEST(PoolAllocator, OverAlignedTypesComeFromTheSystemWithTheirAlignment) {
  struct alignas(64) Line {
    char bytes[64];
  };
  std::vector<Line, PoolAllocator<Line>> lines(3);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(lines.data()) % 64, 0u);
}

}  // namespace small_object_pool_test
