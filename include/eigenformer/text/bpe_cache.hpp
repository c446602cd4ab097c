// Per-thread memory for byte-level BPE encoding: a word -> ids cache and the scratch buffers of the merge loop, one
// set per thread and tokenizer instance, so that encoding from several threads takes no lock at all.
//
// The cache is direct-mapped (a word's hash picks its one slot; a newer word takes the slot over), holds words of
// up to kMaxWordBytes bytes that encode to at most kMaxIds ids, and never allocates after its creation. A thread
// keeps the caches of the kInstances tokenizers it used last; the least recently used is recycled for the next.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string_view>
#include <vector>

namespace eigenformer::text::detail {

class BpeWordCache {
 public:
  static constexpr std::size_t kSlots = std::size_t(1) << 14;  // 16,384 slots of 64 bytes: 1 MiB
  static constexpr std::size_t kMaxWordBytes = 22;
  static constexpr std::size_t kMaxIds = 8;

  static std::uint64_t hash(std::string_view word) noexcept {
    return std::hash<std::string_view>()(word) | 1;  // 0 marks an empty slot
  }

  /// Appends the cached ids of word (whose hash is h) to ids; false when it is not cached.
  template <typename Id>
  bool find(std::string_view word, std::uint64_t h, std::vector<Id>& ids) const {
    const Slot& s = slots_[h & (kSlots - 1)];
    if (s.hash != h || s.word_bytes != word.size() ||
        (!word.empty() && std::memcmp(s.word, word.data(), word.size()) != 0))
      return false;
    for (std::size_t i = 0; i < s.id_count; ++i) ids.push_back(static_cast<Id>(s.ids[i]));
    return true;
  }

  /// Stores the n ids of word when both fit a slot.
  void insert(std::string_view word, std::uint64_t h, const std::int32_t* ids, std::size_t n) noexcept {
    if (word.size() > kMaxWordBytes || n > kMaxIds) return;
    Slot& s = slots_[h & (kSlots - 1)];
    s.hash = h;
    s.word_bytes = static_cast<std::uint8_t>(word.size());
    s.id_count = static_cast<std::uint8_t>(n);
    // memcpy's pointers must not be null even for 0 bytes: an empty word or id list may come with a null one.
    if (!word.empty()) std::memcpy(s.word, word.data(), word.size());
    if (n > 0) std::memcpy(s.ids, ids, n * sizeof(std::int32_t));
  }

  void clear() noexcept { slots_.fill(Slot{}); }

 private:
  struct Slot {
    std::uint64_t hash = 0;
    std::uint8_t word_bytes = 0;
    std::uint8_t id_count = 0;
    char word[kMaxWordBytes];
    std::int32_t ids[kMaxIds];
  };
  static_assert(sizeof(Slot) == 64, "one slot per cache line");

  std::array<Slot, kSlots> slots_{};
};

/// One symbol of a word being merged (a doubly linked list over an array, as tokenizers' Word).
struct BpeSymbol {
  std::int32_t id;    // token id; -1 once merged into its left neighbour
  std::int32_t prev;  // index of the previous live symbol, -1 at the start
  std::int32_t next;  // index of the next live symbol, size at the end
};

/// A candidate merge: the pair starting at symbol pos would become new_id; lowest rank, then leftmost, first.
struct BpeCandidate {
  std::int32_t rank;
  std::int32_t pos;
  std::int32_t new_id;
  /// std::push_heap keeps the greatest on top: the greatest here is the lowest (rank, pos).
  bool operator<(const BpeCandidate& o) const noexcept {
    return rank != o.rank ? rank > o.rank : pos > o.pos;
  }
};

/// What one thread keeps for byte-level BPE.
class BpeThreadState {
 public:
  static constexpr std::size_t kInstances = 4;

  /// The cache of the tokenizer whose instance number is owner.
  BpeWordCache& cache_for(std::uint64_t owner) {
    ++clock_;
    Entry* victim = &entries_[0];
    for (Entry& e : entries_) {
      if (e.owner == owner && e.cache) {
        e.last_use = clock_;
        return *e.cache;
      }
      if (e.last_use < victim->last_use) victim = &e;
    }
    if (victim->cache)
      victim->cache->clear();  // recycled: forget the previous tokenizer's words
    else
      victim->cache = std::make_unique<BpeWordCache>();
    victim->owner = owner;
    victim->last_use = clock_;
    return *victim->cache;
  }

  std::vector<BpeSymbol> symbols;
  std::vector<BpeCandidate> heap;
  std::vector<std::int32_t> word_ids;

 private:
  struct Entry {
    std::uint64_t owner = 0;
    std::uint64_t last_use = 0;
    std::unique_ptr<BpeWordCache> cache;
  };
  std::array<Entry, kInstances> entries_;
  std::uint64_t clock_ = 0;
};

/// This thread's state.
inline BpeThreadState& bpe_thread_state() {
  thread_local BpeThreadState state;
  return state;
}

/// A number no other tokenizer instance of this process has (0 is never given).
inline std::uint64_t next_bpe_instance() {
  static std::atomic<std::uint64_t> counter{0};
  return counter.fetch_add(1, std::memory_order_relaxed) + 1;
}

}  // namespace eigenformer::text::detail
