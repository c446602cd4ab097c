// Aligned, reference-counted element buffers shared by tensors and their reshaped views, recycled through a
// process-wide cache so that a training step that repeats the same shapes stops asking the system for memory
// (large allocations would otherwise be fresh mmap'ed pages, zero-filled by the kernel on every step).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <map>
#include <type_traits>
#include <utility>
#include <vector>

#include "eigenformer/core/config.hpp"
#include "eigenformer/core/execution.hpp"
#include "eigenformer/core/small_object_pool.hpp"

namespace eigenformer {
namespace detail {

/// Buffers are aligned to a cache line, which also satisfies every SIMD width Eigen uses (AVX-512 included).
inline constexpr std::size_t kBufferAlignment = 64;

/// A thread-safe cache of freed buffers, by size class. Size classes are the multiples of 64 bytes up to 4 KiB,
/// then four per power of two (at most 25% slack), so that sequences of slightly different lengths share buffers.
/// A request with no cached buffer of its class takes the smallest cached one of up to three times its size:
/// buffers whose pages are resident already serve other sizes, so the cache does not keep every class's own
/// high-water mark at once (docs/memory.md has the measurements behind the factor).
class BufferCache {
 public:
  static std::size_t size_class(std::size_t bytes) {
    bytes = (bytes + kBufferAlignment - 1) / kBufferAlignment * kBufferAlignment;
    if (bytes <= 4096) return bytes;
    std::size_t p = 4096;
    while (p * 2 < bytes) p *= 2;  // p < bytes <= 2p
    const std::size_t step = p / 4;
    return (bytes + step - 1) / step * step;
  }

  /// A buffer of at least bytes (a size class): a cached one of that class, else the smallest cached one of up to
  /// three times the size (its pages are resident already, so reusing it costs no memory, where a fresh buffer
  /// would), else a new one. bytes is set to the class of the buffer returned, which put() must be given back.
  void* get(std::size_t& bytes) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (auto it = free_.lower_bound(bytes); it != free_.end() && it->first <= 3 * bytes; ++it) {
        if (it->second.empty()) continue;
        void* p = it->second.back();
        it->second.pop_back();
        bytes = it->first;
        cached_ -= bytes;
        return p;
      }
    }
    system_allocations_.fetch_add(1, std::memory_order_relaxed);
    void* p = std::aligned_alloc(kBufferAlignment, bytes);
    if (!p) {
      release();  // give the cache back to the system and try once more
      p = std::aligned_alloc(kBufferAlignment, bytes);
      if (!p) throw std::bad_alloc();
    }
    return p;
  }

  void put(void* p, std::size_t bytes) noexcept {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (cached_ + bytes <= limit_) {
        try {
          free_[bytes].push_back(p);
          cached_ += bytes;
          return;
        } catch (...) {  // no memory for the bookkeeping: free the buffer instead
        }
      }
    }
    std::free(p);
  }

  /// Frees every cached buffer.
  void release() noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& [bytes, list] : free_)
      for (void* p : list) std::free(p);
    free_.clear();
    cached_ = 0;
  }

  void set_limit(std::size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      limit_ = bytes;
      if (cached_ <= limit_) return;
    }
    release();
  }
  std::size_t limit() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return limit_;
  }
  std::size_t cached_bytes() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return cached_;
  }

  /// Buffers taken from the system (not from the cache) since the process started: constant over a training step
  /// once every buffer size the step needs is cached.
  std::size_t system_allocations() const noexcept { return system_allocations_.load(std::memory_order_relaxed); }

 private:
  mutable std::mutex mutex_;
  std::atomic<std::size_t> system_allocations_{0};
  std::map<std::size_t, std::vector<void*>> free_;  // by size class, ordered for the best-fit search
  std::size_t cached_ = 0;
  std::size_t limit_ = std::size_t(1) << 30;
};

/// The process-wide cache. Never destroyed (buffers may be released during static destruction); what it holds
/// at exit stays reachable, so leak checkers do not report it.
inline BufferCache& buffer_cache() {
  static BufferCache* cache = new BufferCache();
  return *cache;
}

/// The buffers of one part of work that a runner split across threads, kept apart from the shared cache while the
/// part runs: through the shared cache, which buffer a part gets would depend on how the parts interleave (a
/// request may take a larger buffer that the other part then misses), so the parts would now and then take a
/// buffer from the system long after the first call. Before the parts start, the calling thread gives each part,
/// one after the other, buffers of the size classes that part held at its end the last time; the part takes and
/// gives back buffers on its own thread (ExecutionContext::buffers), from the shared cache only for what it lacks;
/// afterwards the calling thread returns them all to the shared cache.
class PartBuffers {
 public:
  PartBuffers() = default;
  PartBuffers(const PartBuffers& other) : classes_(other.classes_) {}  // the classes: buffers only during a part
  PartBuffers& operator=(const PartBuffers&) = delete;
  ~PartBuffers() { release(); }

  /// On the calling thread, before the part: buffers of the classes the part held at its end the last time.
  void reserve() {
    for (std::size_t bytes : classes_) {
      void* p = buffer_cache().get(bytes);
      try {
        free_.push_back({bytes, p});  // the capacity stays from the last time: no allocation in the steady state
      } catch (...) {
        buffer_cache().put(p, bytes);
        throw;
      }
    }
  }

  /// On the part's thread: a buffer of at least bytes, best fit among the part's own of up to three times the size
  /// (as BufferCache::get), else from the shared cache. bytes is set to the class of the buffer returned.
  void* get(std::size_t& bytes) {
    std::size_t best = free_.size();
    for (std::size_t i = 0; i < free_.size(); ++i)
      if (free_[i].first >= bytes && free_[i].first <= 3 * bytes &&
          (best == free_.size() || free_[i].first < free_[best].first))
        best = i;
    if (best == free_.size()) return buffer_cache().get(bytes);
    const auto [size, p] = free_[best];
    free_[best] = free_.back();
    free_.pop_back();
    bytes = size;
    return p;
  }

  /// On the part's thread: gives a buffer of class bytes back to the part.
  void put(void* p, std::size_t bytes) noexcept {
    try {
      free_.push_back({bytes, p});
    } catch (...) {  // no memory for the bookkeeping: to the shared cache instead
      buffer_cache().put(p, bytes);
    }
  }

  /// On the calling thread, after the part: every buffer back to the shared cache, their classes kept.
  void release() noexcept {
    classes_.clear();
    for (const auto& [bytes, p] : free_) {
      buffer_cache().put(p, bytes);
      try {
        classes_.push_back(bytes);
      } catch (...) {  // the next reserve() takes fewer buffers: the part asks the shared cache for the rest
      }
    }
    free_.clear();
  }

 private:
  std::vector<std::pair<std::size_t, void*>> free_;  // a part holds a few dozen at most
  std::vector<std::size_t> classes_;
};

/// Allocates n uninitialized elements; n == 0 gives an empty, non-null buffer. The shared_ptr's control block
/// comes from SmallObjectPool: a training step frees hundreds of them at once, more than malloc's per-thread cache
/// keeps, which sent most frees down malloc's slow path.
template <typename T>
std::shared_ptr<T> allocate_buffer(Index n) {
  static_assert(std::is_trivially_copyable_v<T>, "tensor elements must be trivially copyable");
  std::size_t bytes = BufferCache::size_class(static_cast<std::size_t>(n > 0 ? n : 1) * sizeof(T));
  PartBuffers* part = execution_context().buffers;
  void* p = part ? part->get(bytes) : buffer_cache().get(bytes);
  // If the control block cannot be allocated, the constructor runs the deleter (the buffer goes back) and throws.
  return std::shared_ptr<T>(
      static_cast<T*>(p),
      [bytes](T* q) {
        if (PartBuffers* freeing_part = execution_context().buffers)
          freeing_part->put(q, bytes);
        else
          buffer_cache().put(q, bytes);
      },
      PoolAllocator<T>());
}

}  // namespace detail

/// Caps the memory that freed tensor buffers keep for reuse (default 1 GiB); 0 disables the cache.
inline void set_buffer_cache_limit(std::size_t bytes) { detail::buffer_cache().set_limit(bytes); }
/// Bytes currently held by the buffer cache.
inline std::size_t buffer_cache_bytes() { return detail::buffer_cache().cached_bytes(); }
/// Returns every cached buffer to the system.
inline void release_buffer_cache() { detail::buffer_cache().release(); }

}  // namespace eigenformer
