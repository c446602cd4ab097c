// Tokenizer: BERT's full tokenizer (basic tokenization, WordPiece, vocabulary; HuggingFace's BertTokenizer):
// text -> [CLS] ids [SEP] with truncation (head, or head + tail as in Sun et al. 2019, "How to Fine-Tune BERT for
// Text Classification"), padding and masks, batches as (B, T) tensors, and ids -> text.
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "eigenformer/core/config.hpp"
#include "eigenformer/core/error.hpp"
#include "eigenformer/tensor/tensor.hpp"
#include "eigenformer/text/basic_tokenizer.hpp"
#include "eigenformer/text/vocab.hpp"
#include "eigenformer/text/wordpiece.hpp"

namespace eigenformer::text {

/// Which tokens survive when a text has more than max_length - 2 of them.
enum class Truncation {
  head,       // the first max_length - 2 (HuggingFace's truncation=True)
  head_tail,  // the first head_tokens and the last max_length - 2 - head_tokens: an e-mail's headers and its end
};

struct EncodeOptions {
  Index max_length = 512;  // the most ids returned, [CLS] and [SEP] included; 0 = no limit
  Truncation truncation = Truncation::head;
  // head_tail only: tokens kept from the start; -1 = a quarter of max_length - 2 (Sun et al. keep 128 + 382 of 510).
  Index head_tokens = -1;
  bool pad_to_max_length = false;  // pad with [PAD] to max_length (encode_batch: instead of to the longest text)
  bool add_special_tokens = true;  // [CLS] first, [SEP] last
};

/// The ids of one text with HuggingFace's attention mask.
struct Encoding {
  std::vector<std::int64_t> ids;
  std::vector<std::int64_t> attention_mask;  // 1 = token, 0 = padding
};

/// The ids of a batch of texts, padded to one length T.
struct BatchEncoding {
  Tensor<std::int64_t> ids;   // (B, T)
  Tensor<bool> padding_mask;  // (B, T), true = padding (PyTorch's key_padding_mask convention)
};

/// BERT's tokenizer: BasicTokenizer, then WordPiece over the vocabulary. Immutable after construction, so one
/// instance may encode from several threads at once.
class Tokenizer {
 public:
  struct Options {
    BasicTokenizer::Options basic;
    WordPiece::Options wordpiece;
  };

  /// Throws ValueError when the vocabulary lacks [UNK] or an option is out of range.
  explicit Tokenizer(Vocab vocab) : Tokenizer(std::move(vocab), Options()) {}
  Tokenizer(Vocab vocab, Options options)
      : basic_(options.basic), wordpiece_(std::move(vocab), std::move(options.wordpiece)) {}

  /// A tokenizer over a vocab.txt (Vocab::load).
  static Tokenizer from_file(const std::filesystem::path& vocab_file) {
    return from_file(vocab_file, Options(), Vocab::SpecialTokens());
  }
  static Tokenizer from_file(const std::filesystem::path& vocab_file, Options options,
                             Vocab::SpecialTokens specials = {}) {
    return Tokenizer(Vocab::load(vocab_file, std::move(specials)), std::move(options));
  }

  const Vocab& vocab() const { return wordpiece_.vocab(); }
  const BasicTokenizer& basic_tokenizer() const { return basic_; }
  const WordPiece& wordpiece() const { return wordpiece_; }

  /// The ids of text: [CLS] pieces [SEP], truncated and padded as options say.
  std::vector<std::int64_t> encode(std::string_view text, const EncodeOptions& options = {}) const {
    static constexpr const char* fn = "Tokenizer::encode";
    const Index budget = check_options(fn, options);  // pieces allowed, -1 = no limit
    std::vector<std::int64_t> ids;
    if (options.add_special_tokens) ids.push_back(vocab().cls_id());
    const std::size_t first = ids.size();
    if (budget < 0 || options.truncation == Truncation::head) {
      append_pieces(text, ids, budget);
    } else {
      // head_tail needs the end of the text: encode all of it, then drop the middle.
      append_pieces(text, ids, -1);
      const auto total = static_cast<Index>(ids.size() - first);
      if (total > budget) {
        const Index head = head_tokens(options);
        const auto tail_begin = ids.begin() + static_cast<std::ptrdiff_t>(first) + (total - (budget - head));
        ids.erase(ids.begin() + static_cast<std::ptrdiff_t>(first) + head, tail_begin);
      }
    }
    if (options.add_special_tokens) ids.push_back(vocab().sep_id());
    if (options.pad_to_max_length && static_cast<Index>(ids.size()) < options.max_length)
      ids.resize(static_cast<std::size_t>(options.max_length), vocab().pad_id());
    return ids;
  }

  /// encode() with the attention mask (1 for each id from the text and the special tokens, 0 for padding).
  Encoding encode_with_mask(std::string_view text, const EncodeOptions& options = {}) const {
    EncodeOptions unpadded = options;
    unpadded.pad_to_max_length = false;
    Encoding e;
    e.ids = encode(text, unpadded);
    e.attention_mask.assign(e.ids.size(), 1);
    if (options.pad_to_max_length && static_cast<Index>(e.ids.size()) < options.max_length) {
      e.ids.resize(static_cast<std::size_t>(options.max_length), vocab().pad_id());
      e.attention_mask.resize(static_cast<std::size_t>(options.max_length), 0);
    }
    return e;
  }

  /// Encodes each text of a range of strings (std::string, std::string_view or const char*) into a (B, T) batch:
  /// T is the longest encoding, or max_length with pad_to_max_length; the rest is [PAD], marked in padding_mask.
  template <typename Range>
  BatchEncoding encode_batch(const Range& texts, const EncodeOptions& options = {}) const {
    check_options("Tokenizer::encode_batch", options);
    EncodeOptions unpadded = options;
    unpadded.pad_to_max_length = false;
    std::vector<std::vector<std::int64_t>> rows;
    Index longest = 0;
    for (const auto& text : texts) {
      rows.push_back(encode(std::string_view(text), unpadded));
      longest = std::max(longest, static_cast<Index>(rows.back().size()));
    }
    const Index B = static_cast<Index>(rows.size());
    const Index T = options.pad_to_max_length ? options.max_length : longest;
    BatchEncoding out;
    out.ids = Tensor<std::int64_t>::zeros({B, T});
    out.padding_mask = Tensor<bool>::zeros({B, T});
    if (B == 0 || T == 0) return out;
    const bool needs_pad = std::any_of(rows.begin(), rows.end(),
                                       [T](const auto& r) { return static_cast<Index>(r.size()) < T; });
    const std::int64_t pad = needs_pad ? vocab().pad_id() : 0;
    std::int64_t* ids = out.ids.data();
    bool* mask = out.padding_mask.data();
    for (Index b = 0; b < B; ++b) {
      const auto& r = rows[static_cast<std::size_t>(b)];
      for (Index t = 0; t < T; ++t) {
        const bool is_pad = t >= static_cast<Index>(r.size());
        ids[b * T + t] = is_pad ? pad : r[static_cast<std::size_t>(t)];
        mask[b * T + t] = is_pad;
      }
    }
    return out;
  }

  /// The token strings of text, without special tokens or truncation (BertTokenizer.tokenize).
  std::vector<std::string> tokenize(std::string_view text) const {
    std::vector<std::int64_t> ids;
    append_pieces(text, ids, -1);
    std::vector<std::string> out;
    out.reserve(ids.size());
    for (const std::int64_t id : ids) out.emplace_back(vocab().token(id));
    return out;
  }

  /// The text of ids: tokens joined by spaces, "##" continuations glued to the piece before them (HuggingFace's
  /// convert_tokens_to_string, without clean_up_tokenization_spaces). Throws ValueError for an id out of range.
  std::string decode(const std::vector<std::int64_t>& ids, bool skip_special_tokens = true) const {
    const std::string_view prefix = wordpiece_.options().continuation_prefix;
    std::string out;
    for (const std::int64_t id : ids) {
      if (id < 0 || id >= vocab().size())
        throw ValueError(detail::concat("Tokenizer::decode: id ", id, " is out of range for a vocabulary of ",
                                        vocab().size(), " tokens"));
      if (skip_special_tokens && vocab().is_special(id)) continue;
      const std::string_view t = vocab().token(id);
      if (!out.empty() && t.size() > prefix.size() && t.compare(0, prefix.size(), prefix) == 0) {
        out.append(t.substr(prefix.size()));
      } else {
        if (!out.empty()) out.push_back(' ');
        out.append(t);
      }
    }
    return out;
  }

 private:
  // Basic tokens through WordPiece into ids; with limit >= 0, stops once ids has limit pieces past its start.
  void append_pieces(std::string_view text, std::vector<std::int64_t>& ids, Index limit) const {
    const std::size_t first = ids.size();
    if (limit < 0) {
      ids.reserve(first + text.size() / 4);
      basic_.tokenize(text, [&](std::string_view word) { wordpiece_.encode_word(word, ids); });
      return;
    }
    const std::size_t cap = first + static_cast<std::size_t>(limit);
    if (cap == first) return;
    // Stopping early makes head truncation cost O(max_length), not O(text): a long e-mail is read only as far
    // as its first max_length pieces.
    basic_.tokenize(text, [&](std::string_view word) {
      wordpiece_.encode_word(word, ids);
      return ids.size() < cap;
    });
    if (ids.size() > cap) ids.resize(cap);
  }

  // Validates options; returns the number of pieces allowed between the special tokens, or -1 for no limit.
  Index check_options(const char* fn, const EncodeOptions& o) const {
    if (o.max_length < 0)
      throw ValueError(detail::concat(fn, ": max_length is ", o.max_length, ", expected >= 0 (0 = no limit)"));
    const Index specials = o.add_special_tokens ? 2 : 0;
    if (o.max_length == 0) {
      if (o.pad_to_max_length)
        throw ValueError(detail::concat(fn, ": pad_to_max_length needs max_length > 0, got max_length 0"));
      return -1;
    }
    if (o.max_length < specials)
      throw ValueError(detail::concat(fn, ": max_length is ", o.max_length, ", expected at least ", specials,
                                      " to hold [CLS] and [SEP]"));
    const Index budget = o.max_length - specials;
    if (o.truncation == Truncation::head_tail && (o.head_tokens < -1 || o.head_tokens > budget))
      throw ValueError(detail::concat(fn, ": head_tokens is ", o.head_tokens, ", expected -1 (default) or 0..",
                                      budget, " (max_length ", o.max_length, " minus the special tokens)"));
    return budget;
  }

  static Index head_tokens(const EncodeOptions& o) {
    const Index budget = o.max_length - (o.add_special_tokens ? 2 : 0);
    return o.head_tokens >= 0 ? o.head_tokens : budget / 4;
  }

  BasicTokenizer basic_;
  WordPiece wordpiece_;
};

}  // namespace eigenformer::text
