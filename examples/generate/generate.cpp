// generate: continues a prompt with a GPT-2 from a Hugging Face folder (config.json, model.safetensors or shards,
// vocab.json and merges.txt or tokenizer.json), printing the text as the tokens come.
//
//   generate --model DIR --prompt "The quick brown fox"                 sample (temperature 1, top-k 50)
//   generate --model DIR --prompt "..." --greedy --max-new-tokens 40    the most likely token each step
//   generate --model DIR --prompt-ids "464 2068 7586" --greedy --print-ids   ids in, ids out (one line)
// Several --prompt options run as one left-padded batch. An empty prompt starts from the bos token
// (<|endoftext|>): an unconditional sample. `generate --help` lists the options.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <eigenformer/eigenformer.hpp>
#include <eigenformer/nn/gpt2_pretrained.hpp>
#include <eigenformer/runtime/generation.hpp>
#include <eigenformer/text/byte_level_bpe.hpp>
#include <exception>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace ef = eigenformer;
namespace fs = std::filesystem;
using ef::Index;

struct Args {
  std::string model;
  std::vector<std::string> prompts, prompt_ids, stops;
  std::vector<std::int64_t> stop_ids;
  Index max_new_tokens = 50;
  bool greedy = false, ignore_eos = false, print_ids = false, stats = false;
  double temperature = 1.0, top_p = 1.0, repetition_penalty = 1.0;
  Index top_k = 50;
  std::uint64_t seed = 0;
  int threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
};

/// "464 2068 7586" -> ids; throws ValueError naming the word that is not an integer.
std::vector<std::int64_t> parse_ids(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::int64_t> ids;
  std::string word;
  while (in >> word) {
    std::size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(word, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != word.size()) throw ef::ValueError("--prompt-ids: \"" + word + "\" is not a token id");
    ids.push_back(v);
  }
  return ids;
}

/// \n, \t, \\ and \" in a stop string given on the command line.
std::string unescape(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\' || i + 1 == s.size()) {
      out += s[i];
      continue;
    }
    const char c = s[++i];
    out += c == 'n' ? '\n' : c == 't' ? '\t' : c == 'r' ? '\r' : c;
  }
  return out;
}

int run(const Args& a) {
  ef::set_num_threads(a.threads);
  ef::nn::GPT2LMHeadModel<float> model = ef::nn::gpt2_from_pretrained<float>(a.model);
  // The tokenizer's files are needed for text (prompts, stop strings, printing); ids alone go without them.
  std::unique_ptr<ef::text::ByteLevelBpe> tokenizer;
  const bool need_text = !a.prompts.empty() || !a.stops.empty() || !a.print_ids;
  std::error_code ec;
  if (need_text || fs::exists(fs::path(a.model) / "vocab.json", ec) ||
      fs::exists(fs::path(a.model) / "tokenizer.json", ec))
    tokenizer = std::make_unique<ef::text::ByteLevelBpe>(ef::text::ByteLevelBpe::from_pretrained(a.model));

  std::vector<std::vector<std::int64_t>> prompts;
  for (const std::string& p : a.prompts) prompts.push_back(tokenizer->encode(p));
  for (const std::string& p : a.prompt_ids) prompts.push_back(parse_ids(p));
  if (prompts.empty()) throw ef::ValueError("no prompt: give --prompt TEXT or --prompt-ids \"ID ...\"");
  for (auto& p : prompts)
    if (p.empty()) {
      if (model.options.bos_token_id < 0)
        throw ef::ValueError("an empty prompt starts from the bos token, but the model's config names none");
      p.push_back(model.options.bos_token_id);
    }

  ef::GenerationOptions g;
  g.max_new_tokens = a.max_new_tokens;
  g.sampling.temperature = a.greedy ? 0.0 : a.temperature;
  g.sampling.top_k = a.top_k;
  g.sampling.top_p = a.top_p;
  g.sampling.repetition_penalty = a.repetition_penalty;
  g.seed = a.seed;
  g.stop_tokens = a.stop_ids;
  g.stop_at_eos = !a.ignore_eos;
  for (const std::string& s : a.stops) g.stop_strings.push_back(unescape(s));
  if (tokenizer) g.token_bytes = [&](std::int64_t id) { return tokenizer->decode({id}); };
  const bool stream = prompts.size() == 1 && !a.print_ids && tokenizer;
  if (stream) {
    std::cout << tokenizer->decode(prompts[0], /*skip_special_tokens=*/true) << std::flush;
    g.on_token = [](const ef::GeneratedToken& t) {
      std::cout << t.text << std::flush;
      return true;
    };
  }
  const ef::GenerationResult r = ef::generate(model, prompts, g);
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    if (a.print_ids) {
      for (std::size_t k = 0; k < r.tokens[i].size(); ++k) std::cout << (k ? " " : "") << r.tokens[i][k];
      std::cout << "\n";
    } else if (stream) {
      std::cout << "\n";
    } else {
      std::cout << "=== " << i + 1 << " ===\n" << tokenizer->decode(prompts[i], true) << r.texts[i] << "\n";
    }
  }
  std::cout.flush();
  if (a.stats) {
    const double per_token =
        r.decode_seconds / std::max<double>(1.0, double(r.generated_tokens) / double(prompts.size()) - 1);
    std::cerr << std::fixed << std::setprecision(1) << "prompts: " << r.prompt_tokens << " tokens in "
              << r.prefill_seconds * 1e3 << " ms; generated: " << r.generated_tokens << " tokens in "
              << r.decode_seconds * 1e3 << " ms (" << std::setprecision(2)
              << double(r.generated_tokens) / std::max(1e-9, r.decode_seconds) << " tokens/s, " << per_token * 1e3
              << " ms per step); finish: " << ef::enum_name(r.finish_reasons[0]) << "\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Continue a prompt with a GPT-2 from a Hugging Face folder (eigenformer example)"};
  Args a;
  app.add_option("--model", a.model, "Hugging Face GPT-2 folder")->required()->check(CLI::ExistingDirectory);
  app.add_option("--prompt", a.prompts, "text to continue (repeatable: a batch); \"\" starts from <|endoftext|>");
  app.add_option("--prompt-ids", a.prompt_ids, "token ids to continue, e.g. \"464 2068 7586\" (repeatable)");
  app.add_option("--max-new-tokens", a.max_new_tokens, "tokens to generate at most")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_flag("--greedy", a.greedy, "the most likely token each step (the same as --temperature 0)");
  app.add_option("--temperature", a.temperature, "divides the logits before sampling; 0 = greedy")
      ->capture_default_str();
  app.add_option("--top-k", a.top_k, "sample among the k most likely tokens (0 = all)")->capture_default_str();
  app.add_option("--top-p", a.top_p, "sample among the most likely tokens that hold this probability, (0, 1]")
      ->capture_default_str();
  app.add_option("--repetition-penalty", a.repetition_penalty, "> 1 makes tokens already in the text less likely")
      ->capture_default_str();
  app.add_option("--stop", a.stops, "stop when this text appears (repeatable; \\n is a newline)");
  app.add_option("--stop-id", a.stop_ids, "stop after this token id (repeatable)");
  app.add_flag("--ignore-eos", a.ignore_eos, "do not stop at the model's eos token");
  app.add_option("--seed", a.seed, "seed of the sampling draws")->capture_default_str();
  app.add_option("--threads", a.threads, "threads")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_flag("--print-ids", a.print_ids, "print the generated ids on one line per prompt instead of text");
  app.add_flag("--stats", a.stats, "print timings to stderr");
  CLI11_PARSE(app, argc, argv);
  try {
    return run(a);
  } catch (const std::exception& e) {
    std::cerr << "generate: error: " << e.what() << "\n";
    return 1;
  }
}
