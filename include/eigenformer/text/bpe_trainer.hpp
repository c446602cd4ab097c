// BpeTrainer: learns a byte-level BPE vocabulary and its merges from a corpus (Sennrich et al. 2016, "Neural Machine
// Translation of Rare Words with Subword Units"; GPT-2's byte-level variant), step for step as Hugging Face
// tokenizers' BpeTrainer does, so that both learn the same merges from the same words:
//   1. the special tokens take ids 0, 1, ... in the order given;
//   2. the alphabet follows: the byte-level characters of the bytes seen (or all 256), in code point order;
//   3. words are counted after GPT-2's pre-tokenization, and the most frequent adjacent pair of tokens is merged
//      into a new token, again and again, until the vocabulary has vocab_size tokens or no pair is seen
//      min_frequency times. Ties go to the pair of smallest ids (first id, then second).
// As in tokenizers, each queued pair carries the words it was counted in, and the queue entries whose count went
// stale are re-queued with the current count when they surface (a max-heap with lazy updates), so that only the
// words holding a pair are visited when it is merged.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "eigenformer/core/config.hpp"
#include "eigenformer/core/error.hpp"
#include "eigenformer/text/byte_level.hpp"
#include "eigenformer/text/byte_level_bpe.hpp"
#include "eigenformer/text/gpt2_pre_tokenizer.hpp"
#include "eigenformer/text/vocab.hpp"
#include "eigenformer/text/word_counts.hpp"
#include "eigenformer/text/wordpiece_trainer.hpp"

namespace eigenformer::text {

/// The options of BpeTrainer (tokenizers' BpeTrainer defaults, but the full byte alphabet).
struct BpeTrainerOptions {
  Index vocab_size = 30000;                 // special tokens and alphabet included; the alphabet is never cut
  Index min_frequency = 0;                  // a pair seen fewer times over the corpus is never merged
  std::vector<std::string> special_tokens;  // e.g. {"<|endoftext|>"}: ids 0, 1, ..., special added tokens
  // All 256 byte tokens whether seen or not (tokenizers' initial_alphabet = ByteLevel.alphabet()), so that every
  // byte string encodes; false: only the bytes seen (tokenizers' default).
  bool full_byte_alphabet = true;
  bool add_prefix_space = false;  // as ByteLevelBpe::Options, for the words counted and the tokenizer built
  bool use_regex = true;
};

/// Counts words, then learns merges.
class BpeTrainer : public detail::WordCountingTrainer<BpeTrainer> {
 public:
  using Options = BpeTrainerOptions;

  /// Throws ValueError for an option out of range or an empty or repeated special token.
  BpeTrainer() : BpeTrainer(Options()) {}
  explicit BpeTrainer(Options options) : options_(std::move(options)) {
    if (options_.vocab_size < 0)
      throw ValueError(detail::concat("BpeTrainer: vocab_size is ", options_.vocab_size, ", expected >= 0"));
    if (options_.min_frequency < 0)
      throw ValueError(detail::concat("BpeTrainer: min_frequency is ", options_.min_frequency, ", expected >= 0"));
    const auto& s = options_.special_tokens;
    for (std::size_t i = 0; i < s.size(); ++i) {
      if (s[i].empty()) throw ValueError(detail::concat("BpeTrainer: special token ", i, " is empty"));
      for (std::size_t j = 0; j < i; ++j)
        if (s[j] == s[i])
          throw ValueError(detail::concat("BpeTrainer: special token ", i, " ", detail::quoted(s[i]),
                                          " repeats special token ", j));
    }
  }

  const Options& options() const { return options_; }

  /// Counts the words of one text (any bytes).
  void add(std::string_view text) {
    if (text.empty()) return;
    std::string prefixed;
    if (options_.add_prefix_space && text.front() != ' ') {
      prefixed.reserve(text.size() + 1);
      prefixed.push_back(' ');
      prefixed.append(text);
      text = prefixed;
    }
    const auto count = [this](std::string_view word) { count_word(word); };
    if (options_.use_regex)
      gpt2_pre_tokenize(text, count);
    else
      count(text);
  }

  /// The tokenizer learned from the words counted so far: vocabulary, merges, special tokens as added tokens.
  ByteLevelBpe build() const {
    Learner l(*this);
    l.run();
    ByteLevelBpe::Options o;
    o.add_prefix_space = options_.add_prefix_space;
    o.use_regex = options_.use_regex;
    std::vector<AddedToken> specials;
    for (std::size_t i = 0; i < options_.special_tokens.size(); ++i) {
      AddedToken t;
      t.content = options_.special_tokens[i];
      t.id = static_cast<std::int64_t>(i);
      specials.push_back(std::move(t));
    }
    return ByteLevelBpe(l.tokens(), l.merges(), std::move(specials), std::move(o));
  }

 private:
  // One training run over the counted words.
  class Learner {
   public:
    explicit Learner(const BpeTrainer& t) : t_(t) {}

    void run() {
      for (const std::string& s : t_.options_.special_tokens) table_.insert(s);
      add_alphabet();
      add_words();
      merge();
    }

    std::vector<std::string> tokens() const {
      std::vector<std::string> out;
      out.reserve(static_cast<std::size_t>(table_.size()));
      for (std::int32_t i = 0; i < table_.size(); ++i) out.emplace_back(table_.key(i));
      return out;
    }

    // The merges in rank order; a pair merged twice (tokenizers can queue one pair twice) keeps its last rank.
    std::vector<ByteLevelBpe::Merge> merges() const {
      detail::PairTable last;
      std::vector<std::size_t> rank_of;
      for (std::size_t r = 0; r < merges_.size(); ++r) {
        const std::int32_t p = last.index(merges_[r]);
        if (static_cast<std::size_t>(p) >= rank_of.size()) rank_of.resize(static_cast<std::size_t>(p) + 1);
        rank_of[static_cast<std::size_t>(p)] = r;
      }
      std::vector<ByteLevelBpe::Merge> out;
      out.reserve(merges_.size());
      for (std::size_t r = 0; r < merges_.size(); ++r) {
        if (rank_of[static_cast<std::size_t>(last.index(merges_[r]))] != r) continue;
        out.emplace_back(table_.key(static_cast<std::int32_t>(merges_[r] >> 32)),
                         table_.key(static_cast<std::int32_t>(merges_[r] & 0xFFFFFFFFu)));
      }
      return out;
    }

   private:
    static std::uint64_t key(std::int32_t a, std::int32_t b) {
      return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) | static_cast<std::uint32_t>(b);
    }

    void add_alphabet() {
      bool seen[256] = {};
      if (t_.options_.full_byte_alphabet) {
        std::fill(std::begin(seen), std::end(seen), true);
      } else {
        for (std::int32_t w = 0; w < t_.words_.size(); ++w)
          for (const char c : t_.words_.key(w)) seen[static_cast<unsigned char>(c)] = true;
      }
      // Code point order of the byte-level characters, not byte order.
      std::vector<std::pair<char32_t, int>> chars;
      for (int b = 0; b < 256; ++b)
        if (seen[b]) chars.emplace_back(byte_level_char(static_cast<unsigned char>(b)), b);
      std::sort(chars.begin(), chars.end());
      std::string s;
      for (const auto& [c, b] : chars) {
        s.clear();
        append_utf8(s, c);
        byte_ids_[b] = table_.insert(s).first;
      }
    }

    void add_words() {
      const auto& words = t_.words_;
      for (std::int32_t w = 0; w < words.size(); ++w) {
        const std::string_view word = words.key(w);
        begin_.push_back(symbols_.size());
        for (const char c : word) symbols_.push_back(byte_ids_[static_cast<unsigned char>(c)]);
        length_.push_back(static_cast<std::uint32_t>(word.size()));
        count_.push_back(t_.counts_[static_cast<std::size_t>(w)]);
      }
      // Pair counts and the words of each pair; then one queue entry per pair seen.
      for (std::size_t w = 0; w < begin_.size(); ++w) {
        const std::int32_t* s = symbols_.data() + begin_[w];
        for (std::size_t i = 0; i + 1 < length_[w]; ++i) {
          const std::int32_t p = pair(key(s[i], s[i + 1]));
          counts_[static_cast<std::size_t>(p)] += count_[w];
          note_word(p, static_cast<std::int32_t>(w));
        }
      }
      for (std::int32_t p = 0; p < pairs_.size(); ++p) queue_pair(p);
      fresh_.clear();
    }

    void merge() {
      const auto vocab_size = static_cast<std::int64_t>(t_.options_.vocab_size);
      const std::int64_t min_frequency = t_.options_.min_frequency;
      std::string joined;
      while (table_.size() < vocab_size && !heap_.empty()) {
        std::pop_heap(heap_.begin(), heap_.end());
        Entry top = heap_.back();
        heap_.pop_back();
        const std::int64_t current = counts_[static_cast<std::size_t>(top.pair)];
        if (top.count != current) {  // stale: back in the queue with the count of now
          top.count = current;
          push(top);
          continue;
        }
        if (top.count < 1 || min_frequency > top.count) break;
        const std::uint64_t k = pairs_.key(top.pair);
        const auto a = static_cast<std::int32_t>(k >> 32);
        const auto b = static_cast<std::int32_t>(k & 0xFFFFFFFFu);
        joined.assign(table_.key(a)).append(table_.key(b));
        const std::int32_t id = table_.insert(joined).first;  // an existing token (another split) is reused
        merges_.push_back(k);
        std::vector<std::int32_t> words = std::move(positions_[static_cast<std::size_t>(top.words)]);
        release(top.words);
        for (const std::int32_t w : words) merge_in_word(w, a, b, id);
        for (const std::int32_t p : fresh_) queue_pair(p);
        fresh_.clear();
      }
    }

    // tokenizers' Word::merge: each non-overlapping (a, b) of word w, left to right, becomes id; the pairs around
    // it lose the word's count and the pairs with id gain it (the merged pair itself is left as it was, as in
    // tokenizers: it never forms again).
    void merge_in_word(std::int32_t w, std::int32_t a, std::int32_t b, std::int32_t id) {
      const auto wi = static_cast<std::size_t>(w);
      std::int32_t* s = symbols_.data() + begin_[wi];
      const std::size_t n = length_[wi];
      const std::int64_t f = count_[wi];
      std::size_t j = 0;  // s[0, j) is the merged prefix
      for (std::size_t i = 0; i < n;) {
        if (i + 1 < n && s[i] == a && s[i + 1] == b) {
          if (j > 0) {
            change(key(s[j - 1], a), -f, w);
            change(key(s[j - 1], id), f, w);
          }
          if (i + 2 < n) {
            change(key(b, s[i + 2]), -f, w);
            change(key(id, s[i + 2]), f, w);
          }
          s[j++] = id;
          i += 2;
        } else {
          s[j++] = s[i++];
        }
      }
      length_[wi] = static_cast<std::uint32_t>(j);
    }

    void change(std::uint64_t k, std::int64_t delta, std::int32_t w) {
      const std::int32_t p = pair(k);
      counts_[static_cast<std::size_t>(p)] += delta;
      if (delta > 0) note_word(p, w);
    }

    // The number of pair k, with its count and word list grown to hold it.
    std::int32_t pair(std::uint64_t k) {
      const std::int32_t p = pairs_.index(k);
      if (static_cast<std::size_t>(p) >= counts_.size()) {
        counts_.push_back(0);
        fresh_words_.emplace_back();
      }
      return p;
    }

    // Word w gained pair p in this step (tokenizers' where_to_update).
    void note_word(std::int32_t p, std::int32_t w) {
      auto& list = fresh_words_[static_cast<std::size_t>(p)];
      if (list.empty()) fresh_.push_back(p);
      if (list.empty() || list.back() != w) list.push_back(w);
    }

    // A queue entry for pair p with the words it gained in this step, when its count is positive.
    void queue_pair(std::int32_t p) {
      auto& list = fresh_words_[static_cast<std::size_t>(p)];
      if (list.empty()) return;
      const std::int64_t c = counts_[static_cast<std::size_t>(p)];
      // A word's notes are consecutive (one word is merged at a time), so the list holds each word once.
      if (c > 0) push({c, pairs_.key(p), p, keep(std::move(list))});
      list = {};
    }

    std::int32_t keep(std::vector<std::int32_t> words) {
      if (!free_.empty()) {
        const std::int32_t i = free_.back();
        free_.pop_back();
        positions_[static_cast<std::size_t>(i)] = std::move(words);
        return i;
      }
      positions_.push_back(std::move(words));
      return static_cast<std::int32_t>(positions_.size() - 1);
    }
    void release(std::int32_t i) {
      positions_[static_cast<std::size_t>(i)] = {};
      free_.push_back(i);
    }

    // Highest count on top; among equal counts the smallest pair (first id, then second), as tokenizers.
    struct Entry {
      std::int64_t count;
      std::uint64_t key;   // (a << 32) | b: its order is the order of the pairs
      std::int32_t pair;   // the pair's number in pairs_
      std::int32_t words;  // its words: positions_[words]
      bool operator<(const Entry& o) const { return count != o.count ? count < o.count : key > o.key; }
    };
    void push(const Entry& e) {
      heap_.push_back(e);
      std::push_heap(heap_.begin(), heap_.end());
    }

    const BpeTrainer& t_;
    detail::StringTable table_;  // token string (byte-level form) -> id
    std::int32_t byte_ids_[256] = {};
    std::vector<std::int32_t> symbols_;  // word w's tokens at [begin_[w], begin_[w] + length_[w])
    std::vector<std::size_t> begin_;
    std::vector<std::uint32_t> length_;
    std::vector<std::int64_t> count_;    // occurrences of word w
    detail::PairTable pairs_;            // (a, b) -> pair number
    std::vector<std::int64_t> counts_;   // count of each pair over the corpus
    std::vector<std::vector<std::int32_t>> fresh_words_;  // per pair: words that gained it in this step
    std::vector<std::int32_t> fresh_;                     // pairs with a non-empty fresh_words_ entry
    std::vector<std::vector<std::int32_t>> positions_;    // word lists of queue entries
    std::vector<std::int32_t> free_;                      // unused slots of positions_
    std::vector<Entry> heap_;
    std::vector<std::uint64_t> merges_;  // merged pairs in order, (a << 32) | b
  };

  Options options_;
};

}  // namespace eigenformer::text
