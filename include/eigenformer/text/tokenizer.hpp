// Tokenizer: BERT's full tokenizer (basic tokenization, WordPiece, vocabulary; HuggingFace's BertTokenizer):
// text -> [CLS] ids [SEP] with truncation (head, or head + tail as in Sun et al. 2019, "How to Fine-Tune BERT for
// Text Classification"), padding and masks, batches as (B, T) tensors, sentence pairs [CLS] a [SEP] b [SEP] with
// token type ids, and ids -> text. Added tokens (Options::added_tokens, such as [CLS] written in the text) are
// found before basic tokenization, as tokenizers' AddedVocabulary does. bert_pretrained.hpp loads it from Hugging
// Face files (tokenizer.json, or vocab.txt with tokenizer_config.json).
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
#include "eigenformer/text/added_tokens.hpp"
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

/// The ids of one text (or sentence pair) with HuggingFace's attention mask and token type ids.
struct Encoding {
  std::vector<std::int64_t> ids;
  std::vector<std::int64_t> attention_mask;  // 1 = token, 0 = padding
  std::vector<std::int64_t> token_type_ids;  // 0 = first segment (with its [CLS] and [SEP]) and padding, 1 = second
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
    std::vector<AddedToken> added_tokens;  // each id must be the vocabulary's id of its content
  };

  /// Throws ValueError when the vocabulary lacks [UNK], an option is out of range or an added token's id is not
  /// its content's id in the vocabulary.
  explicit Tokenizer(Vocab vocab) : Tokenizer(std::move(vocab), Options()) {}
  Tokenizer(Vocab vocab, Options options)
      : basic_(options.basic), wordpiece_(std::move(vocab), std::move(options.wordpiece)) {
    for (const AddedToken& t : options.added_tokens)
      if (t.id < 0 || t.id >= this->vocab().size() || this->vocab().token(t.id) != t.content)
        throw ValueError(detail::concat("Tokenizer: added token ", detail::quoted(t.content), " has id ", t.id,
                                        ", expected its id in the vocabulary (", this->vocab().find(t.content),
                                        "; -1 = absent)"));
    added_ = AddedTokenMatcher(std::move(options.added_tokens));
  }

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
  const std::vector<AddedToken>& added_tokens() const { return added_.tokens(); }

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
    e.token_type_ids.assign(e.ids.size(), 0);
    if (options.pad_to_max_length && static_cast<Index>(e.ids.size()) < options.max_length) {
      e.ids.resize(static_cast<std::size_t>(options.max_length), vocab().pad_id());
      e.attention_mask.resize(static_cast<std::size_t>(options.max_length), 0);
      e.token_type_ids.resize(static_cast<std::size_t>(options.max_length), 0);
    }
    return e;
  }

  /// A sentence pair: [CLS] a [SEP] b [SEP] (without add_special_tokens: a b), token type 0 for a's part and 1 for
  /// b's. Over max_length, truncation is tokenizers' "longest_first" (transformers' BertTokenizerFast), as
  /// tokenizers 0.23 computes it: each side is first read only up to the word that brings it to max_length pieces;
  /// then only the longer side is cut when keeping the shorter whole fits, else each keeps half of the room, the
  /// odd piece going to the side that was longer (to b when both were as long); each side keeps its first pieces.
  /// (transformers' Python BertTokenizer removes one piece at a time from the longer side and, on ties, from b:
  /// with both sides cut and an odd room, it may give the odd piece to the other side.) Truncation::head_tail is
  /// for single texts only: ValueError.
  Encoding encode_pair(std::string_view a, std::string_view b, const EncodeOptions& options = {}) const {
    static constexpr const char* fn = "Tokenizer::encode_pair";
    if (options.truncation != Truncation::head)
      throw ValueError(detail::concat(fn, ": options.truncation is Truncation::head_tail, expected Truncation::head ",
                                      "(longest_first): head_tail is for single texts"));
    const Index specials = options.add_special_tokens ? 3 : 0;
    if (options.max_length < 0)
      throw ValueError(detail::concat(fn, ": max_length is ", options.max_length, ", expected >= 0 (0 = no limit)"));
    if (options.max_length == 0 && options.pad_to_max_length)
      throw ValueError(detail::concat(fn, ": pad_to_max_length needs max_length > 0, got max_length 0"));
    if (options.max_length > 0 && options.max_length < specials)
      throw ValueError(detail::concat(fn, ": max_length is ", options.max_length, ", expected at least ", specials,
                                      " to hold [CLS] and two [SEP]"));
    std::vector<std::int64_t> first, second;
    append_pieces(a, first, options.max_length > 0 ? options.max_length : -1, true);
    append_pieces(b, second, options.max_length > 0 ? options.max_length : -1, true);
    if (options.max_length > 0) {
      const std::size_t room = static_cast<std::size_t>(options.max_length - specials);
      std::size_t n1 = first.size(), n2 = second.size();
      if (n1 + n2 > room) {
        // tokenizers' truncate_encodings, LongestFirst: with s the shorter and l the longer length, the longer
        // keeps max(s, room - s); when the two still do not fit, s keeps room / 2 and l the rest.
        const bool swap = n1 > n2;
        std::size_t s = swap ? n2 : n1, l = swap ? n1 : n2;
        l = s > room ? s : std::max(s, room - s);
        if (s + l > room) {
          s = room / 2;
          l = s + room % 2;
        }
        n1 = swap ? l : s;
        n2 = swap ? s : l;
        first.resize(std::min(first.size(), n1));
        second.resize(std::min(second.size(), n2));
      }
    }
    Encoding e;
    if (options.add_special_tokens) e.ids.push_back(vocab().cls_id());
    e.ids.insert(e.ids.end(), first.begin(), first.end());
    if (options.add_special_tokens) e.ids.push_back(vocab().sep_id());
    const std::size_t first_part = e.ids.size();
    e.ids.insert(e.ids.end(), second.begin(), second.end());
    if (options.add_special_tokens) e.ids.push_back(vocab().sep_id());
    e.attention_mask.assign(e.ids.size(), 1);
    e.token_type_ids.assign(first_part, 0);
    e.token_type_ids.resize(e.ids.size(), 1);
    if (options.pad_to_max_length && static_cast<Index>(e.ids.size()) < options.max_length) {
      const auto T = static_cast<std::size_t>(options.max_length);
      e.ids.resize(T, vocab().pad_id());
      e.attention_mask.resize(T, 0);
      e.token_type_ids.resize(T, 0);
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
  // Basic tokens through WordPiece into ids; with limit >= 0, stops once ids has limit pieces past its start,
  // cutting the last word (whole_words: keeping all of its pieces, as tokenizers' tokenize_with_limit).
  void append_pieces(std::string_view text, std::vector<std::int64_t>& ids, Index limit,
                     bool whole_words = false) const {
    if (!added_.empty()) {  // the stretches between added tokens, each tokenized on its own
      const std::size_t cap = limit < 0 ? std::size_t(-1) : ids.size() + static_cast<std::size_t>(limit);
      added_.split(
          text,
          [&](std::string_view part) {
            if (ids.size() < cap)
              append_text_pieces(part, ids, limit < 0 ? -1 : static_cast<Index>(cap - ids.size()), whole_words);
          },
          [&](const AddedToken& t) {
            if (ids.size() < cap) ids.push_back(t.id);
          });
      return;
    }
    append_text_pieces(text, ids, limit, whole_words);
  }

  void append_text_pieces(std::string_view text, std::vector<std::int64_t>& ids, Index limit,
                          bool whole_words = false) const {
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
    if (ids.size() > cap && !whole_words) ids.resize(cap);
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
  AddedTokenMatcher added_;
};

}  // namespace eigenformer::text
