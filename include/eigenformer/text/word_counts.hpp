// The word-counting front end that the vocabulary trainers share: texts in, distinct words and their counts out,
// then the trainer's build() over them.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "eigenformer/core/config.hpp"
#include "eigenformer/text/vocab.hpp"

namespace eigenformer::text::detail {

/// Base of a trainer (CRTP): Derived::add(text) splits a text into words and counts each with count_word;
/// Derived::build() learns from words_ and counts_.
template <class Derived>
class WordCountingTrainer {
 public:
  /// Counts the words of each text of a range of strings (std::string, std::string_view or const char*).
  template <typename Range>
  void add_all(const Range& texts) {
    for (const auto& text : texts) static_cast<Derived&>(*this).add(std::string_view(text));
  }

  /// The number of distinct words counted so far.
  Index distinct_words() const { return words_.size(); }

  /// add_all(texts), then build().
  template <typename Range>
  auto train(const Range& texts) {
    add_all(texts);
    return static_cast<const Derived&>(*this).build();
  }

 protected:
  void count_word(std::string_view word) {
    const auto [i, added] = words_.insert(word);
    if (added) counts_.push_back(0);
    ++counts_[static_cast<std::size_t>(i)];
  }

  StringTable words_;                 // distinct words, numbered in order of appearance
  std::vector<std::int64_t> counts_;  // how often each was counted
};

}  // namespace eigenformer::text::detail
