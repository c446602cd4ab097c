// train_gpt: trains a small GPT-2 from scratch on a text corpus, with eigenformer alone: a byte-level BPE learned
// from the training texts, the texts joined by <|endoftext|> and cut into blocks, next-token prediction with AdamW
// (warmup and decay, clipping), validation perplexity and sample generations after every epoch, the best epoch kept.
// The run folder holds fit's files (config.json, model.safetensors, metrics.csv, checkpoints for --resume,
// vocab.json and merges.txt) and hf/, a Hugging Face GPT-2 folder that `generate` and transformers both read.
//
//   train_gpt --fortunes /usr/share/games/fortunes --out runs/fortunes          (apt-get install fortunes)
//   train_gpt --jsonl data/spam/train.jsonl --label ham --body-only --out runs/ham
//   generate --model runs/fortunes/hf --prompt "The meaning of life"
//   mpirun -np 4 train_gpt --fortunes /usr/share/games/fortunes --out runs/fortunes   (data-parallel: --batch-size
//                                                                  per rank; rank 0 alone prints and writes)
// `train_gpt --help` lists the options (model size, block size, epochs, ...).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <eigenformer/data/token_blocks.hpp>
#include <eigenformer/eigenformer.hpp>
#include <eigenformer/nn/gpt2_pretrained.hpp>
#include <eigenformer/runtime/generation.hpp>
#include <eigenformer/text/bpe_trainer.hpp>
#include <eigenformer/text/byte_level_bpe.hpp>
#include <eigenformer/train/causal_lm.hpp>
#include <exception>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "corpus.hpp"

namespace {

namespace ef = eigenformer;
namespace fs = std::filesystem;
using ef::Index;
using Clock = std::chrono::steady_clock;

constexpr const char* kEndOfText = "<|endoftext|>";

/// The processes of a data-parallel run under mpirun or srun (null: this process alone).
ef::train::ProcessGroup* world = nullptr;
int world_size() { return world ? world->size() : 1; }

/// Every core the machine reports, shared among the ranks a launcher started on this machine.
int default_threads() {
  const int cores = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  for (const char* local : {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS_PER_NODE"})
    if (const char* v = std::getenv(local))
      if (std::atoi(v) > 1) return std::max(1, cores / std::atoi(v));
  return cores;
}

struct Args {
  std::string fortunes, jsonl, label, out, save_tokens;
  std::vector<std::string> text_files, sample_prompts;
  bool body_only = false;
  double valid_fraction = 0.05;
  Index max_documents = 0;
  Index vocab_size = 4096;
  Index block_size = 128;
  Index layers = 4;
  Index embd = 256;
  Index heads = 4;
  double dropout = 0.0;
  Index epochs = 5;
  Index batch_size = 16;
  double lr = 1e-3;
  double weight_decay = 0.01;
  double warmup = 0.05;
  std::string schedule = "cosine";
  double clip = 1.0;
  Index sample_tokens = 60;
  std::uint64_t seed = 0;
  int threads = default_threads();
  bool resume = false, overwrite = false;
  std::vector<std::string> allow_changes;
};

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

/// The corpus's documents, as the options name them.
std::vector<generate_example::Document> read_corpus(const Args& a) {
  std::vector<generate_example::Document> docs;
  if (!a.fortunes.empty()) docs = generate_example::read_fortunes(a.fortunes);
  if (!a.jsonl.empty()) {
    auto more = generate_example::read_jsonl_texts(a.jsonl, a.label, a.body_only);
    docs.insert(docs.end(), more.begin(), more.end());
  }
  for (const std::string& f : a.text_files) {
    std::string text = generate_example::read_file(f);
    if (text.find_first_not_of(" \t\r\n") != std::string::npos) docs.push_back({std::move(text), f});
  }
  if (a.max_documents > 0 && static_cast<Index>(docs.size()) > a.max_documents)
    docs.resize(static_cast<std::size_t>(a.max_documents));
  if (docs.empty()) throw ef::ValueError("the corpus holds no text (give --fortunes, --jsonl or --text)");
  return docs;
}

/// The texts encoded and joined, each followed by <|endoftext|>.
std::vector<std::int64_t> encode_stream(const ef::text::ByteLevelBpe& tokenizer, const std::vector<std::string>& texts,
                                        std::int64_t eos, int threads) {
  std::vector<std::vector<std::int64_t>> parts(texts.size());
  std::vector<std::thread> pool;
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(threads));
  const auto work = [&](std::size_t p) {
    try {
      for (std::size_t i = p; i < texts.size(); i += static_cast<std::size_t>(threads))
        parts[i] = tokenizer.encode(texts[i]);
    } catch (...) {
      errors[p] = std::current_exception();
    }
  };
  for (int p = 1; p < threads; ++p) pool.emplace_back(work, static_cast<std::size_t>(p));
  work(0);
  for (auto& t : pool) t.join();
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);
  std::vector<std::int64_t> out;
  for (const auto& p : parts) {
    out.insert(out.end(), p.begin(), p.end());
    out.push_back(eos);
  }
  return out;
}

/// The console reporter, plus sample generations after every epoch.
class SampleReporter : public ef::train::ConsoleReporter {
 public:
  SampleReporter(std::ostream& out, Options o, ef::nn::GPT2LMHeadModel<float>& model,
                 const ef::text::ByteLevelBpe& tokenizer, std::vector<std::string> prompts, Index tokens,
                 std::uint64_t seed)
      : ConsoleReporter(out, o),
        out_(out),
        model_(model),
        tokenizer_(tokenizer),
        prompts_(std::move(prompts)),
        tokens_(tokens),
        seed_(seed) {}

  void on_epoch_end(const ef::train::EpochRecord& r, const std::string& details) override {
    ConsoleReporter::on_epoch_end(r, details);
    if (tokens_ <= 0) return;
    ef::GenerationOptions g;
    g.max_new_tokens = tokens_;
    g.sampling.temperature = 0.8;
    g.sampling.top_k = 40;
    g.seed = seed_ + static_cast<std::uint64_t>(r.epoch);
    g.token_bytes = [this](std::int64_t id) { return tokenizer_.decode({id}); };
    for (const std::string& p : prompts_) {
      std::vector<std::int64_t> ids = tokenizer_.encode(p);
      if (ids.empty()) ids.push_back(model_.options.bos_token_id);
      const ef::GenerationResult res = ef::generate(model_, {ids}, g);
      out_ << "  sample | " << p << res.texts[0] << "\n";
    }
    out_.flush();
  }

 private:
  std::ostream& out_;
  ef::nn::GPT2LMHeadModel<float>& model_;
  const ef::text::ByteLevelBpe& tokenizer_;
  std::vector<std::string> prompts_;
  Index tokens_;
  std::uint64_t seed_;
};

int train(const Args& a) {
  const Clock::time_point start = Clock::now();
  ef::set_num_threads(a.threads);
  const std::vector<generate_example::Document> docs = read_corpus(a);
  std::vector<std::string> train_texts, valid_texts;
  generate_example::split(docs, a.valid_fraction, train_texts, valid_texts);
  if (train_texts.empty() || valid_texts.empty())
    throw ef::ValueError("the split left " + std::to_string(train_texts.size()) + " training and " +
                         std::to_string(valid_texts.size()) + " validation texts (change --valid-fraction)");
  std::size_t chars = 0;
  for (const auto& t : train_texts) chars += t.size();
  std::cerr << "corpus: " << docs.size() << " texts, " << train_texts.size() << " for training (" << chars
            << " bytes), " << valid_texts.size() << " for validation\n";

  // A resumed run keeps its tokenizer; a new one learns it from the training texts.
  const fs::path out(a.out);
  const bool have_tokenizer = a.resume && fs::exists(out / "vocab.json") && fs::exists(out / "merges.txt");
  ef::text::BpeTrainer::Options to;
  to.vocab_size = a.vocab_size;
  to.special_tokens = {kEndOfText};
  const ef::text::ByteLevelBpe tokenizer =
      have_tokenizer ? ef::text::ByteLevelBpe::from_pretrained(out) : ef::text::BpeTrainer(to).train(train_texts);
  const std::int64_t eos = tokenizer.id(kEndOfText);
  const std::vector<std::int64_t> train_stream = encode_stream(tokenizer, train_texts, eos, a.threads);
  const std::vector<std::int64_t> valid_stream = encode_stream(tokenizer, valid_texts, eos, a.threads);
  std::cerr << "tokenizer: " << tokenizer.size() << " byte-level BPE tokens; " << train_stream.size()
            << " training and " << valid_stream.size() << " validation tokens (" << std::fixed << std::setprecision(1)
            << seconds_since(start) << " s so far)\n"
            << std::defaultfloat;
  const bool writer = !world || world->rank() == 0;
  if (!a.save_tokens.empty() && writer) {
    ef::io::Writer w;
    w.add("train", ef::Tensor<std::int64_t>::from(train_stream));
    w.add("valid", ef::Tensor<std::int64_t>::from(valid_stream));
    w.set_metadata("vocab_size", std::to_string(tokenizer.size()));
    w.set_metadata("eos_token_id", std::to_string(eos));
    w.write(a.save_tokens);
  }

  ef::data::TokenBlocks::Options bo;
  bo.block_size = a.block_size;
  bo.batch_size = a.batch_size * world_size();  // --batch-size is per rank: N ranks train on batches of N of them
  bo.seed = a.seed;
  const ef::data::TokenBlocks train_blocks(train_stream, bo);
  bo.shuffle = false;
  const ef::data::TokenBlocks valid_blocks(valid_stream, bo);

  ef::nn::GPT2LMHeadModel<float>::Options mo;
  mo.transformer.vocab_size = tokenizer.size();
  mo.transformer.n_positions = a.block_size;
  mo.transformer.n_embd = a.embd;
  mo.transformer.n_layer = a.layers;
  mo.transformer.n_head = a.heads;
  mo.transformer.resid_pdrop = mo.transformer.embd_pdrop = mo.transformer.attn_pdrop = static_cast<float>(a.dropout);
  mo.transformer.seed = a.seed;
  mo.bos_token_id = mo.eos_token_id = eos;
  ef::nn::GPT2LMHeadModel<float> model(mo);

  ef::train::FitOptions fo;
  fo.epochs = a.epochs;
  fo.lr = a.lr;
  fo.weight_decay = a.weight_decay;
  fo.warmup_fraction = a.warmup;
  fo.schedule = a.schedule == "linear"     ? ef::train::ScheduleKind::linear
                : a.schedule == "constant" ? ef::train::ScheduleKind::constant
                                           : ef::train::ScheduleKind::cosine;
  fo.max_grad_norm = a.clip;
  fo.run_dir = out;
  fo.resume = a.resume;
  fo.overwrite = a.overwrite;
  fo.allow_changes = a.allow_changes;
  fo.config.model_type = "gpt2";
  fo.config.model = ef::io::options_to_json(mo);
  fo.config.max_length = a.block_size;
  fo.config.training = {{"epochs", a.epochs},
                        {"lr", a.lr},
                        {"weight_decay", a.weight_decay},
                        {"warmup", a.warmup},
                        {"schedule", a.schedule},
                        {"batch_size", a.batch_size},
                        {"block_size", a.block_size},
                        {"clip", a.clip},
                        {"seed", a.seed},
                        {"vocab_size", a.vocab_size},
                        {"valid_fraction", a.valid_fraction}};
  fo.fingerprint = {{"corpus_texts", docs.size()},
                    {"train_tokens", train_stream.size()},
                    {"vocab_size", a.vocab_size},
                    {"block_size", a.block_size},
                    {"batch_size", a.batch_size},
                    {"layers", a.layers},
                    {"embd", a.embd},
                    {"heads", a.heads},
                    {"dropout", a.dropout},
                    {"seed", a.seed}};
  fo.processes = world;
  fo.save_tokenizer = [&tokenizer](const fs::path& dir) { tokenizer.save(dir); };
  ef::train::ConsoleReporter::Options ro;
  ro.interactive = ef::train::is_terminal(stderr);
  std::vector<std::string> prompts = a.sample_prompts;
  if (prompts.empty()) prompts = {""};
  SampleReporter reporter(std::cerr, ro, model, tokenizer, prompts, a.sample_tokens, a.seed);
  fo.reporter = &reporter;
  std::cerr << "model: GPT-2, " << a.layers << " layers, width " << a.embd << ", " << a.heads << " heads, context "
            << a.block_size << ", " << model.parameter_count() << " parameters\n";

  const ef::train::FitResult r = ef::train::fit(model, ef::train::CausalLmTask(), train_blocks, valid_blocks, fo);
  if (!writer) return 0;
  // The best epoch's weights (fit restored them) as a Hugging Face folder, with the tokenizer.
  ef::io::save_pretrained(model, out / "hf");
  tokenizer.save(out / "hf");
  std::cerr << "run folder: " << a.out << " (best epoch " << r.best_epoch << ", valid perplexity " << std::fixed
            << std::setprecision(2) << r.best().metric("valid_perplexity")
            << "); Hugging Face folder: " << (out / "hf").string() << "; total time "
            << ef::train::format_duration(seconds_since(start)) << "\n";
  std::cout << "valid_perplexity " << std::setprecision(4) << r.best().metric("valid_perplexity") << std::endl;
  return 0;
}

/// Swallows what is written to it (the progress of ranks other than 0).
struct NullBuffer : std::streambuf {
  int overflow(int c) override { return traits_type::not_eof(c); }
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Train a small GPT-2 from scratch on a text corpus (eigenformer example)"};
  Args a;
  app.add_option("--fortunes", a.fortunes, "a folder of fortune files (or one file): entries between \"%\" lines");
  app.add_option("--jsonl", a.jsonl, "JSON Lines with a \"text\" field")->check(CLI::ExistingFile);
  app.add_option("--label", a.label, "with --jsonl: only the texts with this label (e.g. ham)");
  app.add_flag("--body-only", a.body_only, "with --jsonl: each text after its first blank line (an e-mail's body)");
  app.add_option("--text", a.text_files, "a text file as one document (repeatable)")->check(CLI::ExistingFile);
  app.add_option("--max-documents", a.max_documents, "use at most this many texts (0 = all)")->capture_default_str();
  app.add_option("--valid-fraction", a.valid_fraction, "texts held out for validation")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--out", a.out, "run folder to write")->required();
  app.add_option("--vocab-size", a.vocab_size, "byte-level BPE vocabulary (256 bytes + merges + <|endoftext|>)")
      ->capture_default_str()
      ->check(CLI::Range(257, 1 << 20));
  app.add_option("--block-size", a.block_size, "tokens per training sequence (the model's context)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--layers", a.layers, "transformer blocks")->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--embd", a.embd, "model width")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--heads", a.heads, "attention heads")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--dropout", a.dropout, "dropout (embeddings, attention, residuals)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--epochs", a.epochs, "passes over the training tokens")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--batch-size", a.batch_size, "sequences per optimizer step (per rank under mpirun)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--lr", a.lr, "peak learning rate (AdamW)")->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--weight-decay", a.weight_decay, "AdamW weight decay")->capture_default_str();
  app.add_option("--warmup", a.warmup, "warmup steps as a fraction of all steps")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--schedule", a.schedule, "learning-rate decay after warmup")
      ->capture_default_str()
      ->check(CLI::IsMember({"cosine", "linear", "constant"}));
  app.add_option("--clip", a.clip, "gradient norm clipping (0 = off)")->capture_default_str();
  app.add_option("--sample-prompt", a.sample_prompts,
                 "a prompt to continue after each epoch (repeatable; default: "
                 "one unconditional sample)");
  app.add_option("--sample-tokens", a.sample_tokens, "tokens per sample (0 = no samples)")->capture_default_str();
  app.add_option("--seed", a.seed, "seed of initialization, shuffling, dropout and samples")->capture_default_str();
  app.add_option("--threads", a.threads, "threads")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_flag("--resume", a.resume, "continue the run in --out from its last checkpoint");
  app.add_flag("--overwrite", a.overwrite, "replace the run in --out (kept until the new one has finished an epoch)");
  app.add_option("--allow-change", a.allow_changes,
                 "with --resume: a setting that may change (epochs, lr; repeatable)");
  app.add_option("--save-tokens", a.save_tokens,
                 "also write the encoded training and validation tokens (safetensors: train, valid) to this file");
  CLI11_PARSE(app, argc, argv);
#if defined(EIGENFORMER_WITH_MPI)
  // Started by mpirun or srun: every batch is split among the ranks; rank 0 alone prints and writes.
  std::unique_ptr<ef::dist::Environment> mpi;
  if (ef::dist::launched()) {
    mpi = std::make_unique<ef::dist::Environment>(&argc, &argv);
    if (mpi->size() > 1) world = &mpi->world();
  }
#endif
  const int rank = world ? world->rank() : 0;
  std::streambuf* const errors = std::cerr.rdbuf();
  static NullBuffer quiet;  // outlives main: std::cerr may be flushed at exit
  if (rank != 0) std::cerr.rdbuf(&quiet);
  try {
    return train(a);
  } catch (const std::exception& e) {
    std::cerr.rdbuf(errors);
    std::cerr << "\ntrain_gpt: " << (world ? "rank " + std::to_string(rank) + ": " : "") << "error: " << e.what()
              << std::endl;
#if defined(EIGENFORMER_WITH_MPI)
    if (world) mpi->abort(1);  // the other ranks would wait for this one in the next sum forever
#endif
    return 1;
  }
}
