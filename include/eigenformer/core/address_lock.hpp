// A mutex for any object, picked by the object's address from a fixed set: for state that many threads may touch
// now and then (a leaf's gradient, a dropout generator), where a mutex of its own would cost bytes in every object
// and make it immovable.
#pragma once

#include <cstdint>
#include <mutex>

namespace eigenformer::detail {

/// The lock guarding the object at `object`. Distinct objects may share a lock (64 in all): hold it only around
/// short work on that one object, and never while taking another address lock.
inline std::mutex& address_lock(const void* object) {
  static std::mutex locks[64];
  const auto a = reinterpret_cast<std::uintptr_t>(object);
  return locks[((a >> 6) ^ (a >> 12)) % 64];
}

}  // namespace eigenformer::detail
