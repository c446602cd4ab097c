// Recycled small heap blocks: the shapes, graph nodes, parent lists, backward closures and buffer control blocks
// that every op of a training step makes and frees again, taken from free lists per thread instead of the system.
#pragma once

#include <cstddef>
#include <memory>
#include <new>

namespace eigenformer {
namespace detail {

/// Free lists per thread of blocks of 16, 32, ..., 4096 bytes (a power of two per class). A block may be freed on
/// another thread than the one that made it; it then joins that thread's list. Each list keeps at most
/// kMaxBytesPerClass bytes (and kMaxBlocksPerClass blocks); the rest goes back to the system, as does every list
/// when its thread ends. In the steady state of a training step the step's own frees refill the lists it takes
/// from, so no block comes from the system (tests/nn/allocation_test.cpp counts them).
class SmallObjectPool {
 public:
  static constexpr std::size_t kMinBlock = 16, kMaxBlock = 4096, kClasses = 9;
  static constexpr std::size_t kMaxBytesPerClass = std::size_t(1) << 20, kMaxBlocksPerClass = std::size_t(1) << 14;

  /// Whether a request of bytes is served by the pool (else the caller uses the system).
  static constexpr bool fits(std::size_t bytes) { return bytes <= kMaxBlock; }

  /// A block of at least bytes (bytes <= kMaxBlock), aligned to alignof(std::max_align_t).
  static void* take(std::size_t bytes) {
    const std::size_t c = class_of(bytes);
    if (alive()) {
      List& list = local().lists_[c];
      if (FreeBlock* b = list.head) {
        list.head = b->next;
        --list.count;
        return b;
      }
    }
    return ::operator new(block_size(c));
  }

  /// Gives back a block that take(bytes) returned, with the same bytes.
  static void give(void* p, std::size_t bytes) noexcept {
    const std::size_t c = class_of(bytes);
    if (alive()) {
      List& list = local().lists_[c];
      if (list.count < max_blocks(c)) {
        list.head = new (p) FreeBlock{list.head};
        ++list.count;
        return;
      }
    }
    ::operator delete(p);
  }

  SmallObjectPool() = default;
  SmallObjectPool(const SmallObjectPool&) = delete;
  SmallObjectPool& operator=(const SmallObjectPool&) = delete;
  ~SmallObjectPool() {
    alive() = false;  // blocks freed later on this thread (by other thread_local destructors) go to the system
    for (List& list : lists_) {
      while (list.head) {
        FreeBlock* next = list.head->next;
        ::operator delete(list.head);
        list.head = next;
      }
    }
  }

 private:
  struct FreeBlock {
    FreeBlock* next;
  };
  struct List {
    FreeBlock* head = nullptr;
    std::size_t count = 0;
  };

  static constexpr std::size_t block_size(std::size_t c) { return kMinBlock << c; }
  static constexpr std::size_t max_blocks(std::size_t c) {
    return kMaxBytesPerClass / block_size(c) < kMaxBlocksPerClass ? kMaxBytesPerClass / block_size(c)
                                                                  : kMaxBlocksPerClass;
  }
  static std::size_t class_of(std::size_t bytes) {
    std::size_t c = 0;
    while (block_size(c) < bytes) ++c;
    return c;
  }
  static SmallObjectPool& local() {
    thread_local SmallObjectPool pool;
    return pool;
  }
  static bool& alive() {  // trivially destructible, so readable at any point of thread exit
    thread_local bool on = true;
    return on;
  }

  List lists_[kClasses];
};

/// A standard allocator over SmallObjectPool (the system for requests larger than a pool block or over-aligned).
/// Stateless: any two compare equal, so containers move and swap their storage freely.
template <typename U>
struct PoolAllocator {
  using value_type = U;
  PoolAllocator() = default;
  template <typename V>
  PoolAllocator(const PoolAllocator<V>&) noexcept {}

  U* allocate(std::size_t n) {
    if (pooled(n)) return static_cast<U*>(SmallObjectPool::take(n * sizeof(U)));
    return std::allocator<U>().allocate(n);
  }
  void deallocate(U* p, std::size_t n) noexcept {
    if (pooled(n))
      SmallObjectPool::give(p, n * sizeof(U));
    else
      std::allocator<U>().deallocate(p, n);
  }
  template <typename V>
  bool operator==(const PoolAllocator<V>&) const noexcept {
    return true;
  }
  template <typename V>
  bool operator!=(const PoolAllocator<V>&) const noexcept {
    return false;
  }

 private:
  static bool pooled(std::size_t n) {
    return alignof(U) <= alignof(std::max_align_t) && n <= SmallObjectPool::kMaxBlock / sizeof(U);
  }
};

}  // namespace detail
}  // namespace eigenformer
