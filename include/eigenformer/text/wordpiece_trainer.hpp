// WordPieceTrainer: learns a WordPiece vocabulary from a corpus, the way HuggingFace tokenizers'
// WordPieceTrainer does (byte-pair-encoding merges over word types with a "##" continuation prefix; Sennrich et
// al. 2016): special tokens first, then the characters, then merged pieces until the requested size.
//
// Merge score: the pair with the highest count (BPE), not WordPiece's likelihood score count(ab) / (count(a) *
// count(b)). The likelihood score favours pairs of rare symbols (two characters seen once, always together, score
// higher than "t" + "##h"), so a vocabulary of a given size spends its slots on rare strings and encodes typical
// text into more pieces, which costs sequence length under max_length. The count also changes only for the pairs
// next to a merge, so the best pair comes from a lazily updated heap; the likelihood score changes for every pair
// that shares a symbol with the merge. Both produce a WordPiece vocabulary that the greedy longest-match encoder
// uses unchanged.
#pragma once

#include <algorithm>
#include <cstdint>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "eigenformer/core/config.hpp"
#include "eigenformer/core/error.hpp"
#include "eigenformer/text/basic_tokenizer.hpp"
#include "eigenformer/text/unicode.hpp"
#include "eigenformer/text/vocab.hpp"
#include "eigenformer/text/word_counts.hpp"
#include "eigenformer/text/wordpiece.hpp"

namespace eigenformer::text {

namespace detail {

/// An open-addressing map from 64-bit keys (two packed 32-bit ids) to dense numbers 0, 1, 2, ... in insertion
/// order, for the trainer's pair statistics (std::unordered_map's nodes dominated its profile).
class PairTable {
 public:
  std::int32_t size() const { return static_cast<std::int32_t>(keys_.size()); }
  std::uint64_t key(std::int32_t p) const { return keys_[static_cast<std::size_t>(p)]; }

  /// The number of k, added if absent.
  std::int32_t index(std::uint64_t k) {
    if (slots_.empty() || (keys_.size() + 1) * 2 > slots_.size()) grow();
    std::size_t i = slot_of(k);
    while (slots_[i] >= 0) {
      if (keys_[static_cast<std::size_t>(slots_[i])] == k) return slots_[i];
      i = (i + 1) & mask_;
    }
    slots_[i] = size();
    keys_.push_back(k);
    return slots_[i];
  }

 private:
  // The slot is the hash's low bits, and both ids must reach them: fold the high half (the first id) in,
  // multiply, fold again.
  std::size_t slot_of(std::uint64_t k) const {
    k ^= k >> 32;
    k *= 0x9E3779B97F4A7C15ull;
    return static_cast<std::size_t>(k ^ (k >> 29)) & mask_;
  }

  void grow() {
    const std::size_t n = slots_.empty() ? 1024 : slots_.size() * 2;
    slots_.assign(n, -1);
    mask_ = n - 1;
    for (std::int32_t p = 0; p < size(); ++p) {
      std::size_t i = slot_of(keys_[static_cast<std::size_t>(p)]);
      while (slots_[i] >= 0) i = (i + 1) & mask_;
      slots_[i] = p;
    }
  }

  std::vector<std::int32_t> slots_;  // pair number or -1
  std::size_t mask_ = 0;
  std::vector<std::uint64_t> keys_;
};

}  // namespace detail

/// Counts the words of a corpus (through BasicTokenizer), then builds a vocabulary of at most vocab_size tokens:
/// [PAD] [UNK] [CLS] [SEP] [MASK] (ids 0-4), the characters seen at least min_frequency times (each as "c" and,
/// unless the basic tokenizer always isolates it, as "##c"), then merges of adjacent pieces in order of count.
/// The size is exactly vocab_size unless the corpus runs out of pairs seen min_frequency times.
class WordPieceTrainer : public detail::WordCountingTrainer<WordPieceTrainer> {
 public:
  struct Options {
    Index vocab_size = 8000;
    Index min_frequency = 2;  // a character or a merged pair seen fewer times (over the corpus) is left out
    Vocab::SpecialTokens special_tokens;
    BasicTokenizer::Options basic;  // must match the Tokenizer that will use the vocabulary
    WordPiece::Options wordpiece;   // continuation prefix; longer words are skipped (they encode as [UNK])
  };

  /// Throws ValueError for an option out of range.
  WordPieceTrainer() : WordPieceTrainer(Options()) {}
  explicit WordPieceTrainer(Options options) : options_(std::move(options)), basic_(options_.basic) {
    const Vocab::SpecialTokens& s = options_.special_tokens;
    const std::vector<std::string> specials = {s.pad, s.unk, s.cls, s.sep, s.mask};
    if (options_.vocab_size < static_cast<Index>(specials.size()))
      throw ValueError(detail::concat("WordPieceTrainer: vocab_size is ", options_.vocab_size, ", expected at least ",
                                      specials.size(), " (the special tokens)"));
    if (options_.min_frequency < 1)
      throw ValueError(detail::concat("WordPieceTrainer: min_frequency is ", options_.min_frequency,
                                      ", expected at least 1"));
    if (options_.wordpiece.continuation_prefix.empty())
      throw ValueError("WordPieceTrainer: continuation_prefix is empty, expected a marker such as \"##\"");
    if (options_.wordpiece.max_input_chars_per_word < 1)
      throw ValueError(detail::concat("WordPieceTrainer: max_input_chars_per_word is ",
                                      options_.wordpiece.max_input_chars_per_word, ", expected at least 1"));
    static_cast<void>(Vocab(specials, s));  // throws ValueError for an empty, duplicate or malformed special token
  }

  const Options& options() const { return options_; }

  /// Counts the words of one text.
  void add(std::string_view text) {
    basic_.tokenize(text, [this](std::string_view word) { count_word(word); });
  }

  /// The vocabulary learned from the words counted so far.
  Vocab build() const {
    const Options& o = options_;
    const std::string& prefix = o.wordpiece.continuation_prefix;
    const auto vocab_size = static_cast<std::size_t>(o.vocab_size);
    const auto max_chars = static_cast<std::size_t>(o.wordpiece.max_input_chars_per_word);
    detail::StringTable table;  // token -> id, in id order
    for (const std::string* s : {&o.special_tokens.pad, &o.special_tokens.unk, &o.special_tokens.cls,
                                 &o.special_tokens.sep, &o.special_tokens.mask})
      table.insert(*s);

    // Characters by count over the corpus, most frequent first.
    std::unordered_map<char32_t, std::int64_t> char_counts;
    for (std::int32_t w = 0; w < words_.size(); ++w) {
      const std::string_view word = words_.key(w);
      if (count_code_points(word) > max_chars) continue;
      for (const char32_t c : decode_utf8(word)) char_counts[c] += counts_[static_cast<std::size_t>(w)];
    }
    std::vector<std::pair<std::int64_t, char32_t>> chars;
    for (const auto& [c, n] : char_counts)
      if (n >= o.min_frequency) chars.emplace_back(n, c);
    std::sort(chars.begin(), chars.end(), [](const auto& a, const auto& b) {
      return a.first != b.first ? a.first > b.first : a.second < b.second;
    });
    // Take characters while they fit: "c" first, "##c" too when a word can continue with c.
    std::vector<char32_t> starts, continues;
    std::size_t room = vocab_size - static_cast<std::size_t>(table.size());
    for (const auto& [n, c] : chars) {
      if (room == 0) break;
      starts.push_back(c);
      --room;
      if (room > 0 && !basic_.is_isolated(c)) {
        continues.push_back(c);
        --room;
      }
    }
    std::sort(starts.begin(), starts.end());
    std::sort(continues.begin(), continues.end());
    std::unordered_map<char32_t, std::int32_t> start_id, continue_id;
    std::string piece;
    for (const char32_t c : starts) {
      piece.clear();
      append_utf8(piece, c);
      start_id[c] = table.insert(piece).first;
    }
    for (const char32_t c : continues) {
      piece = prefix;
      append_utf8(piece, c);
      continue_id[c] = table.insert(piece).first;
    }

    Merger merger(table, prefix);
    const bool has_room = static_cast<std::size_t>(table.size()) < vocab_size;
    for (std::int32_t w = 0; has_room && w < words_.size(); ++w) {
      const std::string_view word = words_.key(w);
      const std::u32string cs = decode_utf8(word);
      if (cs.size() < 2 || cs.size() > max_chars) continue;  // nothing to merge, or [UNK] anyway
      std::vector<std::int32_t> symbols;
      symbols.reserve(cs.size());
      for (std::size_t i = 0; i < cs.size(); ++i) {
        const auto& ids = i == 0 ? start_id : continue_id;
        const auto it = ids.find(cs[i]);
        if (it == ids.end()) break;  // a rare character: the word encodes as [UNK], its pairs do not count
        symbols.push_back(it->second);
      }
      if (symbols.size() == cs.size()) merger.add_word(symbols, counts_[static_cast<std::size_t>(w)]);
    }
    merger.run(vocab_size, o.min_frequency);

    std::vector<std::string> tokens;
    tokens.reserve(static_cast<std::size_t>(table.size()));
    for (std::int32_t i = 0; i < table.size(); ++i) tokens.emplace_back(table.key(i));
    return Vocab(tokens, o.special_tokens);
  }

 private:
  // BPE merges over word types: each word is a run of piece ids with a count; pair counts are kept up to date
  // at every merge, and a max-heap with lazy deletion yields the most frequent pair.
  class Merger {
   public:
    Merger(detail::StringTable& table, const std::string& prefix) : table_(table), prefix_(prefix) {}

    void add_word(const std::vector<std::int32_t>& symbols, std::int64_t count) {
      const auto w = static_cast<std::int32_t>(begin_.size());
      begin_.push_back(symbols_.size());
      length_.push_back(static_cast<std::uint32_t>(symbols.size()));
      count_.push_back(count);
      symbols_.insert(symbols_.end(), symbols.begin(), symbols.end());
      for (std::size_t i = 0; i + 1 < symbols.size(); ++i) {
        const std::int32_t p = pairs_.index(key(symbols[i], symbols[i + 1]));
        pair_count(p) += count;
        auto& list = where_[static_cast<std::size_t>(p)];
        if (list.empty() || list.back() != w) list.push_back(w);
      }
    }

    void run(std::size_t vocab_size, std::int64_t min_frequency) {
      for (std::int32_t p = 0; p < pairs_.size(); ++p) heap_.push({pair_count(p), p});
      std::string merged;
      std::vector<std::int32_t> touched;
      while (static_cast<std::size_t>(table_.size()) < vocab_size && !heap_.empty()) {
        const auto [n, p] = heap_.top();
        heap_.pop();
        const std::int64_t current = pair_count(p);
        if (current != n) {  // stale entry: counts only fall, so re-queue it with its true count
          if (current > 0) heap_.push({current, p});
          continue;
        }
        if (n < min_frequency) break;  // every other pair has a count of at most n
        const std::uint64_t k = pairs_.key(p);
        const auto a = static_cast<std::int32_t>(k >> 32);
        const auto b = static_cast<std::int32_t>(k & 0xFFFFFFFFu);
        merged.assign(table_.key(a));
        merged.append(table_.key(b).substr(prefix_.size()));  // b never starts a word, so it has the prefix
        const std::int32_t id = table_.insert(merged).first;   // an existing token (another split) is reused
        touched.clear();
        const std::vector<std::int32_t> words = std::move(where_[static_cast<std::size_t>(p)]);
        where_[static_cast<std::size_t>(p)] = {};
        for (const std::int32_t w : words) merge_in_word(w, a, b, id, touched);
        std::sort(touched.begin(), touched.end());
        touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
        for (const std::int32_t q : touched) {
          const std::int64_t c = pair_count(q);
          if (c > 0) heap_.push({c, q});
        }
      }
    }

   private:
    static std::uint64_t key(std::int32_t a, std::int32_t b) {
      return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) | static_cast<std::uint32_t>(b);
    }

    // Replaces each non-overlapping (a, b) of word w, left to right, by id, moving the counts of the pairs around
    // each occurrence to the pairs with id; the new pairs are appended to touched.
    void merge_in_word(std::int32_t w, std::int32_t a, std::int32_t b, std::int32_t id,
                       std::vector<std::int32_t>& touched) {
      std::int32_t* s = symbols_.data() + begin_[static_cast<std::size_t>(w)];
      const std::size_t n = length_[static_cast<std::size_t>(w)];
      const std::int64_t f = count_[static_cast<std::size_t>(w)];
      std::size_t j = 0;  // write position: s[0, j) is the merged prefix
      for (std::size_t i = 0; i < n;) {
        if (i + 1 < n && s[i] == a && s[i + 1] == b) {
          if (j > 0) {
            pair_count(pairs_.index(key(s[j - 1], a))) -= f;
            add_pair(key(s[j - 1], id), f, w, touched);
          }
          if (i + 2 < n) {
            pair_count(pairs_.index(key(b, s[i + 2]))) -= f;
            add_pair(key(id, s[i + 2]), f, w, touched);
          }
          pair_count(pairs_.index(key(a, b))) -= f;
          s[j++] = id;
          i += 2;
        } else {
          s[j++] = s[i++];
        }
      }
      length_[static_cast<std::size_t>(w)] = static_cast<std::uint32_t>(j);
    }

    void add_pair(std::uint64_t k, std::int64_t f, std::int32_t w, std::vector<std::int32_t>& touched) {
      const std::int32_t p = pairs_.index(k);
      pair_count(p) += f;
      auto& list = where_[static_cast<std::size_t>(p)];
      if (list.empty() || list.back() != w) list.push_back(w);
      touched.push_back(p);
    }

    // The count of pair number p; pairs_.index() may have just created it.
    std::int64_t& pair_count(std::int32_t p) {
      const auto i = static_cast<std::size_t>(p);
      if (i >= counts_.size()) {
        counts_.resize(i + 1, 0);
        where_.resize(i + 1);
      }
      return counts_[i];
    }

    // Highest count first; ties go to the pair met first in the corpus, so training is deterministic.
    struct Entry {
      std::int64_t count;
      std::int32_t pair;
      bool operator<(const Entry& o) const { return count != o.count ? count < o.count : pair > o.pair; }
    };

    detail::StringTable& table_;
    const std::string& prefix_;
    std::vector<std::int32_t> symbols_;  // all words' piece ids, word w at [begin_[w], begin_[w] + length_[w])
    std::vector<std::size_t> begin_;
    std::vector<std::uint32_t> length_;
    std::vector<std::int64_t> count_;
    detail::PairTable pairs_;                        // (a, b) -> pair number p
    std::vector<std::int64_t> counts_;               // count of pair p over the corpus
    std::vector<std::vector<std::int32_t>> where_;   // words that may hold pair p
    std::priority_queue<Entry> heap_;
  };

  Options options_;
  BasicTokenizer basic_;
};

}  // namespace eigenformer::text
