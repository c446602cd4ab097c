// Throughput of the BERT tokenizer (text/tokenizer.hpp) and GPT-2's byte-level BPE (text/byte_level_bpe.hpp) on a
// synthetic e-mail corpus of about 4 MB made here: headers (From, To, Subject, Date, Message-ID, Content-Type), body
// sentences over a Zipf-distributed lexicon of pseudo-words, numbers, URLs and punctuation, and about 2% non-ASCII
// words (accented Latin, Greek, CJK, emoji). The vocabularies (8,000 pieces each) are trained once on that corpus.
//
// The BM_*_spam cases encode real e-mails with real vocabularies when the data is there (else they are skipped):
// data/spam/test.jsonl (scripts/fetch_spam_assassin.sh) with bert-base-uncased's and GPT-2's tokenizer.json
// (scripts/fetch_tokenizer_data.sh), the texts and files tests/text/fixtures/time_reference_tokenizers.js times
// Hugging Face tokenizers on. The data folder is $EIGENFORMER_DATA_DIR, else ./data (run from the repository root).
//
// Run: build/release/benchmarks/tokenizer_bench [--benchmark_filter=encode] [--benchmark_min_time=0.5]
//
// Counters: bytes/s = input text per second (SetBytesProcessed); items/s = e-mails per second. Single thread.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "eigenformer/text/bert_pretrained.hpp"
#include "eigenformer/text/bpe_trainer.hpp"
#include "eigenformer/text/byte_level_bpe.hpp"
#include "eigenformer/text/tokenizer.hpp"
#include "eigenformer/text/wordpiece_trainer.hpp"

namespace {

using namespace eigenformer::text;

std::vector<std::string> make_lexicon(std::mt19937_64& gen, int n) {
  static const char* syllables[] = {"al", "be", "con", "de", "en", "for", "ge", "in", "ing", "ly", "ment", "no",
                                    "or", "pre", "pro", "re", "sta", "ter", "tion", "un", "ver", "wa", "th", "ex"};
  const auto count = std::size(syllables);
  std::vector<std::string> words;
  for (int i = 0; i < n; ++i) {
    std::string w;
    const int parts = 1 + static_cast<int>(gen() % 3) + (i > n / 4 ? 1 : 0);
    for (int p = 0; p < parts; ++p) w += syllables[gen() % count];
    words.push_back(w);
  }
  return words;
}

std::vector<std::string> make_emails(int n, std::uint64_t seed) {
  std::mt19937_64 gen(seed);
  const std::vector<std::string> lexicon = make_lexicon(gen, 5000);
  static const char* foreign[] = {"caf\u00E9", "na\u00EFve", "\u00FCbermorgen", "Stra\u00DFe", "se\u00F1or",
                                  "\u03BA\u03B1\u03BB\u03B7\u03BC\u03AD\u03C1\u03B1", "\u4F60\u597D\u4E16\u754C",
                                  "\U0001F600", "\u00A0\u2014", "\u041F\u0440\u0438\u0432\u0435\u0442"};
  static const char* punct[] = {". ", ", ", "! ", "? ", ": ", "; ", " - ", " (", ") "};
  std::uniform_real_distribution<double> u(0.0, 1.0);
  // Zipf(1) over the lexicon by inverse transform on a log scale: rank ~ exp(u * log(n)).
  const auto word = [&]() -> const std::string& {
    const auto r = static_cast<std::size_t>(std::exp(u(gen) * std::log(static_cast<double>(lexicon.size()))));
    return lexicon[std::min(r, lexicon.size()) - 1];
  };
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) {
    std::string t;
    t += "From: \"" + word() + " " + word() + "\" <" + word() + std::to_string(gen() % 1000) + "@" + word() +
         ".com>\r\n";
    t += "To: " + word() + "@example.org\r\nSubject: Re: " + word() + " " + word() + " " + word() + "\r\n";
    t += "Date: Mon, " + std::to_string(1 + gen() % 28) + " Jan 2024 10:" + std::to_string(10 + gen() % 50) +
         ":00 +0100\r\nMessage-ID: <" + std::to_string(gen()) + "@mail." + word() + ".net>\r\n";
    t += "Content-Type: text/plain; charset=\"utf-8\"\r\n\r\n";
    const std::size_t target = 3000 + gen() % 4000;  // about 5 kB per e-mail
    while (t.size() < target) {
      const double x = u(gen);
      if (x < 0.02) {
        t += foreign[gen() % std::size(foreign)];
      } else if (x < 0.03) {
        t += "http://www." + word() + ".com/" + word() + "?id=" + std::to_string(gen() % 100000);
      } else if (x < 0.05) {
        t += std::to_string(gen() % 10000);
      } else {
        std::string w = word();
        if (u(gen) < 0.05) w[0] = static_cast<char>(w[0] - 32);  // capitalized
        t += w;
      }
      t += u(gen) < 0.1 ? punct[gen() % std::size(punct)] : (u(gen) < 0.05 ? "\r\n" : " ");
    }
    out.push_back(std::move(t));
  }
  return out;
}

struct Corpus {
  std::vector<std::string> emails = make_emails(800, 42);
  std::int64_t bytes = 0;
  Tokenizer tokenizer = train();
  ByteLevelBpe bpe = train_bpe();

  Tokenizer train() {
    for (const std::string& e : emails) bytes += static_cast<std::int64_t>(e.size());
    WordPieceTrainer::Options o;
    o.vocab_size = 8000;
    return Tokenizer(WordPieceTrainer(o).train(emails));
  }

  ByteLevelBpe train_bpe() const {
    BpeTrainer::Options o;
    o.vocab_size = 8000;
    o.special_tokens = {"<|endoftext|>"};
    return BpeTrainer(o).train(emails);
  }
};

const Corpus& corpus() {
  static const Corpus c;
  return c;
}

void BM_BasicTokenizer_tokenize(benchmark::State& state) {
  const Corpus& c = corpus();
  const BasicTokenizer& basic = c.tokenizer.basic_tokenizer();
  for (auto _ : state) {
    std::size_t n = 0;
    for (const std::string& e : c.emails) basic.tokenize(e, [&n](std::string_view w) { n += w.size(); });
    benchmark::DoNotOptimize(n);
  }
  state.SetBytesProcessed(state.iterations() * c.bytes);
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(c.emails.size()));
}
BENCHMARK(BM_BasicTokenizer_tokenize)->Unit(benchmark::kMillisecond);

// The whole text of each e-mail (max_length = 0: no truncation).
void BM_Tokenizer_encode(benchmark::State& state) {
  const Corpus& c = corpus();
  EncodeOptions o;
  o.max_length = 0;
  std::size_t pieces = 0;
  for (auto _ : state) {
    pieces = 0;
    for (const std::string& e : c.emails) pieces += c.tokenizer.encode(e, o).size();
    benchmark::DoNotOptimize(pieces);
  }
  state.SetBytesProcessed(state.iterations() * c.bytes);
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(c.emails.size()));
  state.counters["pieces/byte"] = static_cast<double>(pieces) / static_cast<double>(c.bytes);
}
BENCHMARK(BM_Tokenizer_encode)->Unit(benchmark::kMillisecond);

// What a classifier does: 512 pieces per e-mail, head + tail. bytes/s counts the whole input text.
void BM_Tokenizer_encode_head_tail_512(benchmark::State& state) {
  const Corpus& c = corpus();
  EncodeOptions o;
  o.max_length = 512;
  o.truncation = Truncation::head_tail;
  for (auto _ : state) {
    for (const std::string& e : c.emails) benchmark::DoNotOptimize(c.tokenizer.encode(e, o));
  }
  state.SetBytesProcessed(state.iterations() * c.bytes);
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(c.emails.size()));
}
BENCHMARK(BM_Tokenizer_encode_head_tail_512)->Unit(benchmark::kMillisecond);

// Training an 8,000-piece vocabulary on the 4 MB corpus (word counting plus merges), once.
void BM_WordPieceTrainer_train(benchmark::State& state) {
  const Corpus& c = corpus();
  WordPieceTrainer::Options o;
  o.vocab_size = 8000;
  for (auto _ : state) benchmark::DoNotOptimize(WordPieceTrainer(o).train(c.emails));
  state.SetBytesProcessed(state.iterations() * c.bytes);
}
BENCHMARK(BM_WordPieceTrainer_train)->Unit(benchmark::kMillisecond)->Iterations(1);

// Byte-level BPE over the whole text of each e-mail (the 8,000-token vocabulary trained on the corpus).
void BM_ByteLevelBpe_encode(benchmark::State& state) {
  const Corpus& c = corpus();
  std::size_t ids = 0;
  for (auto _ : state) {
    ids = 0;
    for (const std::string& e : c.emails) ids += c.bpe.encode(e).size();
    benchmark::DoNotOptimize(ids);
  }
  state.SetBytesProcessed(state.iterations() * c.bytes);
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(c.emails.size()));
  state.counters["ids/byte"] = static_cast<double>(ids) / static_cast<double>(c.bytes);
}
BENCHMARK(BM_ByteLevelBpe_encode)->Unit(benchmark::kMillisecond);

// Learning 8,000 byte-level BPE tokens from the 4 MB corpus (word counting plus merges), once.
void BM_BpeTrainer_train(benchmark::State& state) {
  const Corpus& c = corpus();
  for (auto _ : state) benchmark::DoNotOptimize(c.train_bpe());
  state.SetBytesProcessed(state.iterations() * c.bytes);
}
BENCHMARK(BM_BpeTrainer_train)->Unit(benchmark::kMillisecond)->Iterations(1);

// Real e-mails and real vocabularies, when fetched.
struct SpamData {
  std::vector<std::string> emails;
  std::int64_t bytes = 0;
  std::unique_ptr<ByteLevelBpe> gpt2;
  std::unique_ptr<Tokenizer> bert;
  std::string missing;  // why the data cannot be used, or empty

  SpamData() {
    const char* env = std::getenv("EIGENFORMER_DATA_DIR");
    const std::filesystem::path data = env ? env : "data";
    const std::filesystem::path spam = data / "spam" / "test.jsonl";
    const std::filesystem::path tok = data / "tokenizers";
    for (const auto& p : {spam, tok / "gpt2" / "tokenizer.json", tok / "bert-base-uncased" / "tokenizer.json"})
      if (!std::filesystem::exists(p)) missing += p.string() + " ";
    if (!missing.empty()) {
      missing += "missing: run scripts/fetch_spam_assassin.sh and scripts/fetch_tokenizer_data.sh";
      return;
    }
    std::ifstream in(spam);
    for (std::string line; std::getline(in, line);) {
      if (line.empty()) continue;
      emails.push_back(nlohmann::json::parse(line)["text"].get<std::string>());
      bytes += static_cast<std::int64_t>(emails.back().size());
    }
    gpt2 = std::make_unique<ByteLevelBpe>(ByteLevelBpe::from_tokenizer_json(tok / "gpt2" / "tokenizer.json"));
    bert = std::make_unique<Tokenizer>(load_bert_tokenizer_json(tok / "bert-base-uncased" / "tokenizer.json"));
  }
};

const SpamData& spam_data() {
  static const SpamData d;
  return d;
}

/// The data, or null after marking the benchmark skipped when it is not there.
const SpamData* spam_data_or_skip(benchmark::State& state) {
  const SpamData& d = spam_data();
  if (d.missing.empty()) return &d;
  state.SkipWithError(d.missing.c_str());
  return nullptr;
}

// GPT-2 over the 622 test e-mails of data/spam, whole texts: what time_reference_tokenizers.js times.
void BM_Gpt2_encode_spam(benchmark::State& state) {
  const SpamData* data = spam_data_or_skip(state);
  if (!data) return;
  const SpamData& d = *data;
  std::size_t ids = 0;
  for (auto _ : state) {
    ids = 0;
    for (const std::string& e : d.emails) ids += d.gpt2->encode(e).size();
    benchmark::DoNotOptimize(ids);
  }
  state.SetBytesProcessed(state.iterations() * d.bytes);
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(ids));
}
BENCHMARK(BM_Gpt2_encode_spam)->Unit(benchmark::kMillisecond);

// GPT-2's tokenizer.json (50,257 tokens, 50,000 merges) read, and written back into a temporary folder.
void BM_Gpt2_load_tokenizer_json(benchmark::State& state) {
  if (!spam_data_or_skip(state)) return;
  const char* env = std::getenv("EIGENFORMER_DATA_DIR");
  const std::filesystem::path path = std::filesystem::path(env ? env : "data") / "tokenizers" / "gpt2" / "tokenizer.json";
  for (auto _ : state) benchmark::DoNotOptimize(ByteLevelBpe::from_tokenizer_json(path));
}
BENCHMARK(BM_Gpt2_load_tokenizer_json)->Unit(benchmark::kMillisecond);

void BM_Gpt2_save_tokenizer_json(benchmark::State& state) {
  const SpamData* data = spam_data_or_skip(state);
  if (!data) return;
  const SpamData& d = *data;
  const std::filesystem::path folder = std::filesystem::temp_directory_path() / "eigenformer_tokenizer_bench";
  std::filesystem::create_directories(folder);
  for (auto _ : state) d.gpt2->save_tokenizer_json(folder / "tokenizer.json");
  std::filesystem::remove_all(folder);
}
BENCHMARK(BM_Gpt2_save_tokenizer_json)->Unit(benchmark::kMillisecond);

// bert-base-uncased (tokenizer.json) over the same e-mails, [CLS] and [SEP] added, no truncation.
void BM_BertUncased_encode_spam(benchmark::State& state) {
  const SpamData* data = spam_data_or_skip(state);
  if (!data) return;
  const SpamData& d = *data;
  EncodeOptions o;
  o.max_length = 0;
  std::size_t ids = 0;
  for (auto _ : state) {
    ids = 0;
    for (const std::string& e : d.emails) ids += d.bert->encode(e, o).size();
    benchmark::DoNotOptimize(ids);
  }
  state.SetBytesProcessed(state.iterations() * d.bytes);
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(ids));
}
BENCHMARK(BM_BertUncased_encode_spam)->Unit(benchmark::kMillisecond);

}  // namespace
