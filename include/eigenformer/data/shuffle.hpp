// Portable seeded shuffling (the role of torch.randperm): Fisher-Yates over std::mt19937_64's raw output, so a
// seed gives the same permutation with every standard library (std::shuffle and std::uniform_int_distribution
// are implementation-defined and differ between libstdc++, libc++ and MSVC).
#pragma once

#include <cstdint>
#include <random>
#include <utility>
#include <vector>

#include "eigenformer/core/config.hpp"
#include "eigenformer/core/error.hpp"

namespace eigenformer::data {

/// A uniform integer in [0, bound) from raw 64-bit draws; throws ValueError if bound is 0.
inline std::uint64_t uniform_below(std::mt19937_64& gen, std::uint64_t bound) {
  if (bound == 0) throw ValueError("uniform_below: bound is 0, expected at least 1");
  // r % bound is biased towards small values unless the draws are cut to a multiple of bound: reject the
  // 2^64 mod bound smallest draws (OpenBSD's arc4random_uniform). (-bound) % bound == 2^64 mod bound.
  const std::uint64_t threshold = (0 - bound) % bound;
  std::uint64_t r = gen();
  while (r < threshold) r = gen();
  return r % bound;
}

/// Shuffles v in place: Fisher-Yates from the back, element i swapped with element uniform_below(gen, i + 1).
template <typename T>
void shuffle(std::vector<T>& v, std::mt19937_64& gen) {
  for (std::size_t i = v.size(); i > 1; --i) {
    const auto j = static_cast<std::size_t>(uniform_below(gen, static_cast<std::uint64_t>(i)));
    std::swap(v[i - 1], v[j]);
  }
}

/// A random permutation of 0, ..., n - 1 (torch.randperm with a seeded generator); throws ValueError if n < 0.
inline std::vector<Index> permutation(Index n, std::mt19937_64& gen) {
  if (n < 0) throw ValueError(detail::concat("permutation: n is ", n, ", expected n >= 0"));
  std::vector<Index> p(static_cast<std::size_t>(n));
  for (Index i = 0; i < n; ++i) p[static_cast<std::size_t>(i)] = i;
  shuffle(p, gen);
  return p;
}

/// SplitMix64's output function (Steele et al. 2014): a bijection that scrambles every input bit.
inline std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

/// An engine seed for stream `stream` (e.g. an epoch) of a base seed: neighbouring seeds and streams give
/// unrelated engines, and (seed, stream) never shares a value with (seed, other stream).
inline std::uint64_t mix_seed(std::uint64_t seed, std::uint64_t stream) {
  return splitmix64(splitmix64(seed) ^ stream);  // splitmix64 is a bijection: fixed seed, distinct streams differ
}

}  // namespace eigenformer::data
