// Aligned, reference-counted element buffers shared by tensors and their reshaped views.
#pragma once

#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <type_traits>

#include "eigenformer/core/config.hpp"

namespace eigenformer {
namespace detail {

/// Buffers are aligned to a cache line, which also satisfies every SIMD width Eigen uses (AVX-512 included).
inline constexpr std::size_t kBufferAlignment = 64;

/// Allocates n uninitialized elements; n == 0 gives an empty, non-null buffer.
template <typename T>
std::shared_ptr<T> allocate_buffer(Index n) {
  static_assert(std::is_trivially_copyable_v<T>, "tensor elements must be trivially copyable");
  std::size_t bytes = static_cast<std::size_t>(n > 0 ? n : 1) * sizeof(T);
  bytes = (bytes + kBufferAlignment - 1) / kBufferAlignment * kBufferAlignment;  // aligned_alloc requires it
  void* p = std::aligned_alloc(kBufferAlignment, bytes);
  if (!p) throw std::bad_alloc();
  return std::shared_ptr<T>(static_cast<T*>(p), [](T* q) { std::free(q); });
}

}  // namespace detail
}  // namespace eigenformer
