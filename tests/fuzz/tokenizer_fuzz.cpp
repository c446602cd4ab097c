// libFuzzer harness for the text tokenizers (include/eigenformer/text/): arbitrary bytes, valid UTF-8 or not.
//
// The first byte picks the encode options; the rest is the text. No exception may escape (the options chosen are
// valid), and the results must hold these properties: every id in [0, V); the length, [CLS]/[SEP] and padding
// as the options say; head truncation equals the prefix of the full encoding and head_tail its first and last
// pieces; every basic token is non-empty, valid UTF-8 without whitespace; decode returns valid UTF-8; a
// vocabulary trained on the input itself has at most the requested size and encodes the input. A failed
// property aborts. The seeds in tests/fuzz/corpus/tokenizer start with that options byte. Build and run: see
// tests/fuzz/CMakeLists.txt.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "eigenformer/text/tokenizer.hpp"
#include "eigenformer/text/wordpiece_trainer.hpp"

namespace {

using namespace eigenformer;
using namespace eigenformer::text;

void check(bool ok) {
  if (!ok) std::abort();
}

// A fixed text covering ASCII words and punctuation, accents, Greek, CJK, Hangul and emoji.
const char* const kTrainingText =
    "From: alice@example.com\nSubject: Re: your account (urgent!)\n\n"
    "Dear customer, please verify your password at http://example.com/login?id=42 before 5:00 PM. "
    "Thanks & regards -- the team. Caf\u00E9 na\u00EFve r\u00E9sum\u00E9 \u00FCber Stra\u00DFe se\u00F1or. "
    "\u039A\u03B1\u03BB\u03B7\u03BC\u03AD\u03C1\u03B1 \u03BA\u03CC\u03C3\u03BC\u03B5! \u4F60\u597D\u4E16\u754C "
    "\uD55C\uAD6D\uC5B4 \U0001F600 running jumped unwanted wanted want running runner 1234567890 $100.00";

std::vector<Tokenizer> make_tokenizers() {
  const std::vector<std::string> corpus = {kTrainingText, kTrainingText};
  std::vector<Tokenizer> out;
  for (int variant = 0; variant < 3; ++variant) {
    Tokenizer::Options o;
    o.basic.lowercase = variant != 1;          // 1: cased
    o.basic.strip_accents = variant == 0;      // 2: lower-cased, accents kept
    o.basic.split_cjk = variant != 2;
    o.wordpiece.max_input_chars_per_word = 20;
    WordPieceTrainer::Options t;
    t.vocab_size = 200;
    t.min_frequency = 1;
    t.basic = o.basic;
    t.wordpiece = o.wordpiece;
    out.emplace_back(WordPieceTrainer(t).train(corpus), o);
  }
  return out;
}

bool has_whitespace(std::string_view t) {
  for (const char32_t c : decode_utf8(t))
    if (is_whitespace(c) || c == 0x2028 || c == 0x2029) return true;
  return false;
}

void check_encoding(const Tokenizer& tok, std::string_view text, const EncodeOptions& o) {
  const Index V = tok.vocab().size();
  const std::vector<std::int64_t> ids = tok.encode(text, o);
  for (const std::int64_t id : ids) check(id >= 0 && id < V);

  EncodeOptions unlimited = o;
  unlimited.max_length = 0;
  unlimited.pad_to_max_length = false;
  const std::vector<std::int64_t> full = tok.encode(text, unlimited);
  const std::size_t specials = o.add_special_tokens ? 2 : 0;
  check(full.size() >= specials);
  if (o.add_special_tokens) check(full.front() == tok.vocab().cls_id() && full.back() == tok.vocab().sep_id());
  const std::size_t pieces = full.size() - specials;
  if (o.max_length == 0) {
    check(ids == full);
    return;
  }
  const auto max_length = static_cast<std::size_t>(o.max_length);
  const std::size_t budget = max_length - specials;
  const std::size_t kept = std::min(pieces, budget);
  check(ids.size() == (o.pad_to_max_length ? max_length : kept + specials));
  for (std::size_t i = kept + specials; i < ids.size(); ++i) check(ids[i] == tok.vocab().pad_id());
  const std::size_t first = o.add_special_tokens ? 1 : 0;
  const std::size_t head = pieces <= budget || o.truncation == Truncation::head
                               ? kept
                               : static_cast<std::size_t>(o.head_tokens >= 0 ? o.head_tokens : Index(budget / 4));
  for (std::size_t i = 0; i < head; ++i) check(ids[first + i] == full[first + i]);
  for (std::size_t i = head; i < kept; ++i)  // the tail: the last kept - head pieces of the full encoding
    check(ids[first + i] == full[first + pieces - (kept - i)]);
  if (o.add_special_tokens) check(ids[first + kept] == tok.vocab().sep_id());

  const Encoding e = tok.encode_with_mask(text, o);
  check(e.ids == ids && e.attention_mask.size() == ids.size());
  check(is_valid_utf8(tok.decode(ids)));
  check(is_valid_utf8(tok.decode(ids, false)));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::vector<Tokenizer> tokenizers = make_tokenizers();
  if (size == 0) return 0;
  const std::uint8_t flags = data[0];
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);

  const Tokenizer& tok = tokenizers[flags % 3];
  EncodeOptions o;
  o.add_special_tokens = (flags & 0x04) == 0;
  o.pad_to_max_length = (flags & 0x08) != 0;
  o.truncation = (flags & 0x10) ? Truncation::head_tail : Truncation::head;
  const Index lengths[] = {0, 2, 3, 16};
  o.max_length = lengths[(flags >> 5) & 3];
  if (o.max_length == 0) o.pad_to_max_length = false;
  if (o.max_length > 0 && o.truncation == Truncation::head_tail)
    o.head_tokens = (flags & 0x80) ? Index(-1) : Index((size * 7) % static_cast<std::size_t>(o.max_length - 1));
  if (o.max_length > 0 && o.add_special_tokens && o.head_tokens > o.max_length - 2) o.head_tokens = -1;
  check_encoding(tok, text, o);

  tok.basic_tokenizer().tokenize(text, [](std::string_view t) {
    check(!t.empty() && is_valid_utf8(t) && !has_whitespace(t));
  });
  const std::string clean = sanitize_utf8(text);
  check(is_valid_utf8(clean));
  check(tok.tokenize(clean) == tok.tokenize(text));  // U+FFFD is dropped like the bytes it replaced

  // A batch of the text's lines, padded to the longest.
  std::vector<std::string_view> lines;
  for (std::size_t b = 0, e; b <= text.size(); b = e + 1) {
    e = text.find('\n', b);
    if (e == std::string_view::npos) e = text.size();
    lines.push_back(text.substr(b, e - b));
    if (lines.size() == 8) break;
  }
  const BatchEncoding batch = tok.encode_batch(lines, o);
  check(batch.ids.shape() == batch.padding_mask.shape() && batch.ids.shape()[0] == Index(lines.size()));
  for (Index i = 0; i < batch.ids.numel(); ++i)
    check(batch.ids.data()[i] >= 0 && batch.ids.data()[i] < tok.vocab().size());

  // Training on the input itself (small inputs only: the harness must stay fast).
  if (text.size() <= 512) {
    WordPieceTrainer::Options t;
    t.vocab_size = 5 + (flags % 40);
    t.min_frequency = 1;
    const Vocab v = WordPieceTrainer(t).train(std::vector<std::string_view>{text, text});
    check(v.size() <= t.vocab_size && v.size() >= 5 && v.unk_id() == 1);
    const Tokenizer own(v);
    for (const std::int64_t id : own.encode(text, EncodeOptions{0})) check(id >= 0 && id < v.size());
  }
  return 0;
}
