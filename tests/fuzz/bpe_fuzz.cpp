// libFuzzer harness for byte-level BPE (text/byte_level_bpe.hpp, gpt2_pre_tokenizer.hpp, bpe_trainer.hpp):
// arbitrary bytes, valid UTF-8 or not.
//
// The first byte picks the tokenizer (trained on a fixed text with or without the full byte alphabet, with
// add_prefix_space or use_regex off); the rest is the text. No exception may escape, and these must hold: the
// pre-tokenizer's pieces are non-empty and concatenate to the text; every id is in [0, V); with the full byte
// alphabet and no prefix space, decode(encode(text)) is the text byte for byte; tokenize agrees with encode; a
// tokenizer trained on the input itself encodes it and decodes it back. A failed property aborts. Build and run:
// see tests/fuzz/CMakeLists.txt.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "eigenformer/text/bpe_trainer.hpp"
#include "eigenformer/text/byte_level_bpe.hpp"
#include "eigenformer/text/gpt2_pre_tokenizer.hpp"

namespace {

using namespace eigenformer;
using namespace eigenformer::text;

void check(bool ok) {
  if (!ok) std::abort();
}

const char* const kTrainingText =
    "From: alice@example.com\nSubject: Re: your account (urgent!)\n\nDear customer, please verify your "
    "password at http://example.com/login?id=42 before 5:00 PM. I'll say it's theirs; they're sure we've won. "
    "Caf\u00E9 na\u00EFve \u00FCber Stra\u00DFe \u039A\u03B1\u03BB\u03B7\u03BC\u03AD\u03C1\u03B1 \u4F60\u597D\u4E16"
    "\u754C \uD55C\uAD6D\uC5B4 \U0001F600 running jumped 1234567890 $100.00   \t\t spaces<|endoftext|>";

std::vector<ByteLevelBpe> make_tokenizers() {
  const std::vector<std::string> corpus = {kTrainingText, kTrainingText};
  std::vector<ByteLevelBpe> out;
  for (int variant = 0; variant < 4; ++variant) {
    BpeTrainer::Options o;
    o.vocab_size = 600;
    o.special_tokens = {"<|endoftext|>"};
    o.full_byte_alphabet = variant != 1;  // 1: only the bytes seen (others are dropped when encoding)
    o.add_prefix_space = variant == 2;
    o.use_regex = variant != 3;
    out.push_back(BpeTrainer(o).train(corpus));
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::vector<ByteLevelBpe> tokenizers = make_tokenizers();
  if (size == 0) return 0;
  const std::uint8_t flags = data[0];
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);

  std::string joined;
  gpt2_pre_tokenize(text, [&](std::string_view piece) {
    check(!piece.empty());
    joined.append(piece);
  });
  check(joined == text);

  const std::size_t variant = flags % tokenizers.size();
  const ByteLevelBpe& bpe = tokenizers[variant];
  const std::vector<std::int64_t> ids = bpe.encode(text);
  for (const std::int64_t id : ids) check(id >= 0 && id < bpe.size());
  if (variant == 0 || variant == 3) check(bpe.decode(ids) == text);
  const std::vector<std::string> tokens = bpe.tokenize(text);
  check(tokens.size() == ids.size());
  for (std::size_t i = 0; i < ids.size(); ++i) check(bpe.token(ids[i]) == tokens[i]);
  std::string without_specials = bpe.decode(ids, true);
  check(without_specials.size() <= bpe.decode(ids).size());

  if (text.size() <= 256) {
    BpeTrainer::Options o;
    o.vocab_size = 256 + (flags >> 2);
    o.min_frequency = flags & 1;
    const ByteLevelBpe own = BpeTrainer(o).train(std::vector<std::string_view>{text, text});
    check(own.size() <= std::max<Index>(o.vocab_size, 256));
    check(own.decode(own.encode(text)) == text);
  }
  return 0;
}
