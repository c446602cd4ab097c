// Text generation with a decoder (the loop of transformers' generate): the prompts, left-padded to one length, go
// through the model once with a key/value cache; then each step feeds every sequence's last token, chooses the next
// from its logits (runtime/sampling.hpp) and streams its text (runtime/text_stream.hpp), until each sequence meets
// a stop token, a stop string, its token budget or the model's context.
//
// A model generates when it offers make_cache(batch, capacity), forward_cached(ids (B, Tq), cache, padding) -> the
// logits (B, V) of each sequence's last new position, context_length(), vocab_size(), eos_token_id() and the
// module API's train / is_training (nn::GPT2LMHeadModel does).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "eigenformer/autograd/grad_mode.hpp"
#include "eigenformer/core/error.hpp"
#include "eigenformer/core/fields.hpp"
#include "eigenformer/runtime/eval_mode.hpp"
#include "eigenformer/runtime/sampling.hpp"
#include "eigenformer/runtime/text_stream.hpp"
#include "eigenformer/tensor/tensor.hpp"

namespace eigenformer {

/// Why a sequence stopped growing.
enum class FinishReason {
  length,       // max_new_tokens generated
  stop_token,   // a stop token was generated (it ends the sequence's tokens)
  stop_string,  // a stop string appeared in the text (the text ends before it)
  context,      // the sequence filled the model's context
  cancelled,    // the streaming callback asked to stop
};

inline constexpr EnumNames<FinishReason, 5> enum_names(FinishReason) {
  return {{{FinishReason::length, "length"},
           {FinishReason::stop_token, "stop_token"},
           {FinishReason::stop_string, "stop_string"},
           {FinishReason::context, "context"},
           {FinishReason::cancelled, "cancelled"}}};
}

/// One generated token, as the streaming callback receives it.
struct GeneratedToken {
  Index sequence = 0;      // which prompt
  std::int64_t token = 0;  // its id
  std::string_view text;   // the text this token made final (may be empty: bytes held back, see TextStream)
  bool last = false;       // the sequence ends with this token
};

/// What generate() does.
struct GenerationOptions {
  Index max_new_tokens = 20;
  SamplingOptions sampling;  // temperature 0 = greedy
  std::uint64_t seed = 0;    // the draws of sampling (one stream, sequences in order at each step)
  /// Tokens that end a sequence (they are the last of its tokens, not part of its text). The model's eos token
  /// too when stop_at_eos.
  std::vector<std::int64_t> stop_tokens;
  bool stop_at_eos = true;
  /// Strings that end a sequence wherever they appear in its text, across tokens (the text ends before the
  /// first); they need token_bytes.
  std::vector<std::string> stop_strings;
  /// The bytes of a token (a tokenizer's decode of one id): with it, results and the callback carry text.
  std::function<std::string(std::int64_t)> token_bytes;
  /// Called for every generated token in order (all sequences at one step, then the next step); return false to
  /// stop generating (the sequences then end with FinishReason::cancelled).
  std::function<bool(const GeneratedToken&)> on_token;
};

/// What generate() returns, per prompt.
struct GenerationResult {
  std::vector<std::vector<std::int64_t>> tokens;  // the generated ids (a stop token included, as the last)
  std::vector<std::string> texts;                 // their text, ending before a stop string (with token_bytes)
  std::vector<FinishReason> finish_reasons;
  Index prompt_tokens = 0;     // over every prompt
  Index generated_tokens = 0;  // over every sequence
  double prefill_seconds = 0;  // the prompts' forward
  double decode_seconds = 0;   // every step after it
};

namespace detail {

/// A (B, V) row block of logits as float (a float model's own tensor, no copy).
template <typename U>
Tensor<float> float_logits(const Tensor<U>& logits) {
  if constexpr (std::is_same_v<U, float>)
    return logits;
  else
    return logits.template cast<float>();
}

inline void check_generation_inputs(const std::vector<std::vector<std::int64_t>>& prompts, const GenerationOptions& o,
                                    Index context, Index vocab) {
  using detail::concat;
  const char* fn = "generate";
  if (prompts.empty()) throw ValueError(concat(fn, ": no prompts, expected at least one"));
  if (o.max_new_tokens < 0) throw ValueError(concat(fn, ": max_new_tokens is ", o.max_new_tokens, ", expected >= 0"));
  check_sampling_options(fn, o.sampling);
  if (!o.stop_strings.empty() && !o.token_bytes)
    throw ValueError(concat(fn, ": stop strings need token_bytes (a tokenizer's decode of one id)"));
  for (std::size_t i = 0; i < o.stop_strings.size(); ++i)
    if (o.stop_strings[i].empty()) throw ValueError(concat(fn, ": stop string ", i, " is empty"));
  for (const std::int64_t t : o.stop_tokens)
    if (t < 0 || t >= vocab)
      throw ValueError(concat(fn, ": stop token ", t, " is out of range, expected 0 <= id < vocab_size = ", vocab));
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    const std::vector<std::int64_t>& p = prompts[i];
    if (p.empty())
      throw ValueError(concat(fn, ": prompt ", i, " is empty, expected at least one token (start an unconditional ",
                              "text from the bos token)"));
    if (static_cast<Index>(p.size()) > context)
      throw ValueError(
          concat(fn, ": prompt ", i, " has ", p.size(), " tokens, longer than the model's context of ", context));
    for (std::size_t t = 0; t < p.size(); ++t)
      if (p[t] < 0 || p[t] >= vocab)
        throw ValueError(concat(fn, ": token ", t, " of prompt ", i, " is ", p[t],
                                ", out of range, expected 0 <= id < vocab_size = ", vocab));
  }
}

}  // namespace detail

/// Continues each prompt (token ids) with the model; see GenerationOptions. Prompts of different lengths are
/// left-padded into one batch with the right positions and masks, so each sequence's tokens are those it would get
/// alone (up to rounding). A sequence gets at most max_new_tokens, and at most what fills the model's context.
/// The model runs in eval mode (its mode is restored). Throws ValueError for an empty or too long prompt, ids out of
/// range or bad options, and what the model or the callback throw.
template <class Model>
GenerationResult generate(Model& model, const std::vector<std::vector<std::int64_t>>& prompts,
                          const GenerationOptions& options) {
  using Clock = std::chrono::steady_clock;
  const Index context = model.context_length(), vocab = model.vocab_size();
  detail::check_generation_inputs(prompts, options, context, vocab);
  EvalModeGuard<Model> mode(model);
  NoGradGuard no_grad;

  const Index B = static_cast<Index>(prompts.size());
  Index longest = 0, shortest = context;
  GenerationResult result;
  for (const auto& p : prompts) {
    longest = std::max(longest, static_cast<Index>(p.size()));
    shortest = std::min(shortest, static_cast<Index>(p.size()));
    result.prompt_tokens += static_cast<Index>(p.size());
  }
  std::vector<std::int64_t> stops = options.stop_tokens;
  if (options.stop_at_eos && model.eos_token_id() >= 0) stops.push_back(model.eos_token_id());
  // A sequence's budget: max_new_tokens, and no position id past the context.
  std::vector<Index> budget(static_cast<std::size_t>(B));
  for (Index b = 0; b < B; ++b)
    budget[static_cast<std::size_t>(b)] =
        std::min(options.max_new_tokens, context - static_cast<Index>(prompts[static_cast<std::size_t>(b)].size()));
  const Index steps = std::min(options.max_new_tokens, context - shortest);

  result.tokens.assign(static_cast<std::size_t>(B), {});
  result.texts.assign(static_cast<std::size_t>(B), {});
  result.finish_reasons.assign(static_cast<std::size_t>(B), FinishReason::length);
  std::vector<std::vector<std::int64_t>> sequences(prompts.begin(), prompts.end());  // for the repetition penalty
  std::vector<TextStream> streams(static_cast<std::size_t>(B), TextStream(options.stop_strings));
  std::vector<bool> done(static_cast<std::size_t>(B), false);
  for (Index b = 0; b < B; ++b)
    if (budget[static_cast<std::size_t>(b)] == 0) {
      done[static_cast<std::size_t>(b)] = true;
      result.finish_reasons[static_cast<std::size_t>(b)] =
          options.max_new_tokens == 0 ? FinishReason::length : FinishReason::context;
    }
  if (steps == 0) return result;

  // The prompts, left-padded: padding gets token 0 (any id: its keys are masked, its positions not counted).
  Tensor<std::int64_t> ids = Tensor<std::int64_t>::zeros({B, longest});
  Tensor<bool> padding = Tensor<bool>::zeros({B, longest});
  bool padded = false;
  for (Index b = 0; b < B; ++b) {
    const std::vector<std::int64_t>& p = prompts[static_cast<std::size_t>(b)];
    const Index pad = longest - static_cast<Index>(p.size());
    for (Index t = 0; t < pad; ++t) padding(b, t) = true;
    std::copy(p.begin(), p.end(), ids.data() + b * longest + pad);
    padded = padded || pad > 0;
  }
  auto cache = model.make_cache(B, longest + steps);
  TokenSampler sampler(options.sampling, options.seed);

  Clock::time_point start = Clock::now();
  Tensor<float> logits =
      detail::float_logits(model.forward_cached(ids, cache, padded ? padding : Tensor<bool>()).value());
  result.prefill_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  start = Clock::now();

  Tensor<std::int64_t> next = Tensor<std::int64_t>::zeros({B, 1});
  Tensor<bool> next_padding = Tensor<bool>::zeros({B, 1});
  bool cancelled = false;
  for (Index step = 0; step < steps && !cancelled; ++step) {
    if (logits.dim() != 2 || logits.size(0) != B || logits.size(1) != vocab)
      throw ShapeError(detail::concat("generate: the model gave logits ", to_string(logits.shape()), ", expected (", B,
                                      ", ", vocab, ")"));
    bool any_left = false;
    for (Index b = 0; b < B && !cancelled; ++b) {
      const std::size_t i = static_cast<std::size_t>(b);
      next_padding(b, 0) = done[i];  // a finished sequence is fed padding: its positions stop counting
      next(b, 0) = 0;
      if (done[i]) continue;
      const std::int64_t token = sampler.next(logits.data() + b * vocab, vocab, sequences[i]);
      sequences[i].push_back(token);
      result.tokens[i].push_back(token);
      ++result.generated_tokens;
      next(b, 0) = token;
      const bool is_stop = std::find(stops.begin(), stops.end(), token) != stops.end();
      std::string piece;
      if (options.token_bytes && !is_stop) piece = streams[i].push(options.token_bytes(token));
      if (is_stop) {
        done[i] = true;
        result.finish_reasons[i] = FinishReason::stop_token;
      } else if (streams[i].stopped()) {
        done[i] = true;
        result.finish_reasons[i] = FinishReason::stop_string;
      } else if (static_cast<Index>(result.tokens[i].size()) >= budget[i]) {
        done[i] = true;
        result.finish_reasons[i] = budget[i] < options.max_new_tokens ? FinishReason::context : FinishReason::length;
      }
      if (done[i] && options.token_bytes) piece += streams[i].flush();
      if (options.on_token) {
        GeneratedToken g;
        g.sequence = b;
        g.token = token;
        g.text = piece;
        g.last = done[i];
        if (!options.on_token(g)) cancelled = true;
      }
      any_left = any_left || !done[i];
    }
    if (!any_left || cancelled || step + 1 == steps) break;
    logits = detail::float_logits(model.forward_cached(next, cache, next_padding).value());
  }
  for (Index b = 0; b < B; ++b) {
    const std::size_t i = static_cast<std::size_t>(b);
    if (cancelled && !done[i]) result.finish_reasons[i] = FinishReason::cancelled;
    if (!options.token_bytes) continue;
    if (!done[i]) streams[i].flush();
    result.texts[i] = streams[i].text();
  }
  result.decode_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return result;
}

}  // namespace eigenformer
