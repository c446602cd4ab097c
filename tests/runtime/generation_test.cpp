// generate() against transformers' greedy generate (the fixtures of tests/reference/hf and gpt2_decoder, decoded with
// the cache in float64 by the PyTorch mirror), and its stop conditions, streaming and bad input.
#include "eigenformer/runtime/generation.hpp"

#include <filesystem>
#include <string>
#include <vector>

#include "eigenformer/io/safetensors.hpp"
#include "eigenformer/nn/gpt2_pretrained.hpp"
#include "eigenformer/text/byte_level_bpe.hpp"
#include "support/test_support.hpp"

using namespace eigenformer;

namespace generation_test {

namespace {

namespace fs = std::filesystem;

fs::path reference(const std::string& name) { return fs::path(EIGENFORMER_TEST_DATA_DIR) / "reference" / name; }

std::vector<std::int64_t> row(const Tensor<std::int64_t>& t, Index r, Index from = 0) {
  return std::vector<std::int64_t>(t.data() + r * t.size(1) + from, t.data() + (r + 1) * t.size(1));
}

GenerationOptions greedy(Index new_tokens) {
  GenerationOptions o;
  o.max_new_tokens = new_tokens;
  o.sampling.temperature = 0;
  return o;
}

nn::GPT2LMHeadModel<float>& gpt2() {
  static nn::GPT2LMHeadModel<float> model = nn::gpt2_from_pretrained<float>(reference("hf/gpt2"));
  return model;
}

}  // namespace

TEST(Generate, GreedyContinuationOfFiftyTokensIsTransformersFromEveryFolder) {
  const io::SafetensorsFile f = io::read_safetensors(reference("hf/gpt2_expected.safetensors"));
  const Tensor<std::int64_t> prompt = f.get<std::int64_t>("greedy.prompt");  // (1, 5)
  const std::vector<std::int64_t> want = row(f.get<std::int64_t>("greedy.output"), 0, prompt.size(1));
  ASSERT_EQ(want.size(), 50u);
  for (const char* folder : {"gpt2", "gpt2-original", "gpt2-lm-head", "gpt2-f16", "gpt2-sharded"}) {
    SCOPED_TRACE(folder);
    nn::GPT2LMHeadModel<float> model = nn::gpt2_from_pretrained<float>(reference(std::string("hf/") + folder));
    const GenerationResult r = generate(model, {row(prompt, 0)}, greedy(50));
    EXPECT_EQ(r.tokens[0], want);
    EXPECT_EQ(r.finish_reasons[0], FinishReason::length);
    EXPECT_EQ(r.generated_tokens, 50);
  }
  nn::GPT2LMHeadModel<float> variant = nn::gpt2_from_pretrained<float>(reference("gpt2_decoder/gpt2-variant"));
  const io::SafetensorsFile d = io::read_safetensors(reference("gpt2_decoder/expected.safetensors"));
  EXPECT_EQ(generate(variant, {row(prompt, 0)}, greedy(20)).tokens[0],
            row(d.get<std::int64_t>("variant.greedy"), 0, prompt.size(1)));
}

TEST(Generate, LeftPaddedBatchOfPromptsIsTransformersBatchAndEachPromptAlone) {
  const io::SafetensorsFile d = io::read_safetensors(reference("gpt2_decoder/expected.safetensors"));
  const Tensor<std::int64_t> ids = d.get<std::int64_t>("batch.prompt_ids");
  const Tensor<std::int64_t> mask = d.get<std::int64_t>("batch.attention_mask");
  const Tensor<std::int64_t> sequences = d.get<std::int64_t>("batch.sequences");
  std::vector<std::vector<std::int64_t>> prompts;
  for (Index b = 0; b < ids.size(0); ++b) {
    std::vector<std::int64_t> p;
    for (Index t = 0; t < ids.size(1); ++t)
      if (mask(b, t)) p.push_back(ids(b, t));
    prompts.push_back(p);
  }
  const GenerationResult batch = generate(gpt2(), prompts, greedy(20));
  for (Index b = 0; b < ids.size(0); ++b) {
    SCOPED_TRACE(b);
    EXPECT_EQ(batch.tokens[static_cast<std::size_t>(b)], row(sequences, b, ids.size(1)));
    EXPECT_EQ(generate(gpt2(), {prompts[static_cast<std::size_t>(b)]}, greedy(20)).tokens[0],
              batch.tokens[static_cast<std::size_t>(b)]);
  }
  // The logits of every step, the cache fed the tokens transformers chose.
  const Tensor<double> steps = d.get<double>("batch.step_logits");  // (20, B, V)
  const Index B = ids.size(0), V = steps.size(2), L = ids.size(1);
  nn::KVCache<float> cache = gpt2().make_cache(B, L + 20);
  Tensor<bool> padding = Tensor<bool>::empty(mask.shape());
  for (Index i = 0; i < mask.numel(); ++i) padding[i] = mask[i] == 0;
  Var<float> logits = gpt2().forward_cached(ids, cache, padding);
  double worst = 0;
  for (Index s = 0; s < 20; ++s) {
    for (Index i = 0; i < B * V; ++i) worst = std::max(worst, std::abs(logits.value()[i] - steps[s * B * V + i]));
    Tensor<std::int64_t> next = Tensor<std::int64_t>::empty({B, 1});
    for (Index b = 0; b < B; ++b) next(b, 0) = sequences(b, L + s);
    if (s + 1 < 20) logits = gpt2().forward_cached(next, cache);
  }
  EXPECT_LT(worst, 1e-5);
}

TEST(Generate, StopTokensStringsAcrossTokensAndStreamingAgree) {
  const text::ByteLevelBpe tokenizer = text::ByteLevelBpe::from_pretrained(reference("hf/gpt2"));
  const std::vector<std::int64_t> prompt = {51, 40, 16, 63, 5};
  GenerationOptions o = greedy(50);
  o.token_bytes = [&](std::int64_t id) { return tokenizer.decode({id}); };
  const GenerationResult plain = generate(gpt2(), {prompt}, o);
  const std::string all = plain.texts[0];
  ASSERT_EQ(all, tokenizer.decode(plain.tokens[0]));

  // A stop string that starts inside one token and ends inside a later one: the last byte of token 10 and token 11.
  // Generation stops at its first occurrence, which must span a token boundary too.
  const std::string first = tokenizer.decode({plain.tokens[0][10]}), second = tokenizer.decode({plain.tokens[0][11]});
  ASSERT_FALSE(first.empty());
  ASSERT_FALSE(second.empty());
  const std::string stop = first.substr(first.size() - 1) + second;
  const std::size_t at = all.find(stop);
  ASSERT_NE(at, std::string::npos);
  bool spans_a_boundary = false;
  std::size_t token_end = 0;
  for (const std::int64_t id : plain.tokens[0]) {
    token_end += tokenizer.decode({id}).size();
    spans_a_boundary = spans_a_boundary || (token_end > at && token_end < at + stop.size());
  }
  ASSERT_TRUE(spans_a_boundary) << "the stop string " << stop << " at byte " << at << " lies inside one token";
  o.stop_strings = {stop};
  std::string streamed;
  Index calls = 0;
  o.on_token = [&](const GeneratedToken& g) {
    streamed += std::string(g.text);
    ++calls;
    return true;
  };
  const GenerationResult stopped = generate(gpt2(), {prompt}, o);
  EXPECT_EQ(stopped.finish_reasons[0], FinishReason::stop_string);
  EXPECT_EQ(stopped.texts[0], all.substr(0, at));
  EXPECT_EQ(streamed, stopped.texts[0]);
  EXPECT_EQ(calls, static_cast<Index>(stopped.tokens[0].size()));
  EXPECT_LE(stopped.tokens[0].size(), 12u);

  // A stop token: the sequence ends with it; its text is not part of the result.
  GenerationOptions t = greedy(50);
  t.stop_tokens = {plain.tokens[0][7]};
  t.token_bytes = o.token_bytes;
  const GenerationResult at_token = generate(gpt2(), {prompt}, t);
  EXPECT_EQ(at_token.finish_reasons[0], FinishReason::stop_token);
  const auto first_stop = std::find(plain.tokens[0].begin(), plain.tokens[0].end(), plain.tokens[0][7]);
  EXPECT_EQ(at_token.tokens[0], std::vector<std::int64_t>(plain.tokens[0].begin(), first_stop + 1));
  EXPECT_EQ(at_token.texts[0], tokenizer.decode(std::vector<std::int64_t>(plain.tokens[0].begin(), first_stop)));

  // The callback stops everything.
  GenerationOptions c = greedy(50);
  c.on_token = [](const GeneratedToken&) { return false; };
  const GenerationResult cancelled = generate(gpt2(), {prompt, prompt}, c);
  EXPECT_EQ(cancelled.tokens[0].size(), 1u);
  EXPECT_EQ(cancelled.tokens[1].size(), 0u);
  EXPECT_EQ(cancelled.finish_reasons[0], FinishReason::cancelled);
}

TEST(Generate, ContextLimitsBudgetsAndSampling) {
  // n_positions is 64: a prompt of 60 tokens has room for 4 more.
  const std::vector<std::int64_t> long_prompt(60, 7), short_prompt = {1, 2};
  const GenerationResult r = generate(gpt2(), {long_prompt, short_prompt}, greedy(10));
  EXPECT_EQ(r.tokens[0].size(), 4u);
  EXPECT_EQ(r.finish_reasons[0], FinishReason::context);
  EXPECT_EQ(r.tokens[1].size(), 10u);
  EXPECT_EQ(r.finish_reasons[1], FinishReason::length);
  EXPECT_EQ(generate(gpt2(), {short_prompt}, greedy(0)).tokens[0].size(), 0u);
  const GenerationResult full = generate(gpt2(), {std::vector<std::int64_t>(64, 3)}, greedy(5));
  EXPECT_TRUE(full.tokens[0].empty());
  EXPECT_EQ(full.finish_reasons[0], FinishReason::context);

  GenerationOptions s;
  s.max_new_tokens = 30;
  s.seed = 42;
  s.stop_at_eos = false;
  const GenerationResult a = generate(gpt2(), {short_prompt}, s), b = generate(gpt2(), {short_prompt}, s);
  EXPECT_EQ(a.tokens, b.tokens);  // a seed gives the same draws
  s.seed = 43;
  EXPECT_NE(generate(gpt2(), {short_prompt}, s).tokens, a.tokens);
  s.sampling.top_k = 1;  // the most likely token only: greedy
  EXPECT_EQ(generate(gpt2(), {short_prompt}, s).tokens[0], generate(gpt2(), {short_prompt}, greedy(30)).tokens[0]);
}

TEST(Generate, BadInputIsRefusedWithClearErrors) {
  const std::vector<std::int64_t> ok = {1, 2, 3};
  EXPECT_THROW_WITH(generate(gpt2(), {ok, {}}, greedy(5)), ValueError, {"generate", "prompt 1 is empty"});
  EXPECT_THROW_WITH(generate(gpt2(), {}, greedy(5)), ValueError, {"generate", "no prompts"});
  EXPECT_THROW_WITH(generate(gpt2(), {std::vector<std::int64_t>(65, 1)}, greedy(5)), ValueError,
                    {"generate", "prompt 0 has 65 tokens", "context of 64"});
  EXPECT_THROW_WITH(generate(gpt2(), {{1, 101}}, greedy(5)), ValueError,
                    {"generate", "token 1 of prompt 0 is 101", "vocab_size = 101"});
  EXPECT_THROW_WITH(generate(gpt2(), {{-1}}, greedy(5)), ValueError, {"token 0 of prompt 0 is -1"});
  GenerationOptions o = greedy(5);
  o.sampling.temperature = -0.5;
  EXPECT_THROW_WITH(generate(gpt2(), {ok}, o), ValueError, {"generate", "temperature is -0.5", "0 = greedy"});
  o = greedy(5);
  for (const double p : {0.0, 1.5, -1.0}) {
    o.sampling.top_p = p;
    EXPECT_THROW_WITH(generate(gpt2(), {ok}, o), ValueError, {"generate", "top_p is", "0 < top_p <= 1"});
  }
  o = greedy(5);
  o.sampling.top_k = -2;
  EXPECT_THROW_WITH(generate(gpt2(), {ok}, o), ValueError, {"top_k is -2"});
  o = greedy(5);
  o.sampling.repetition_penalty = 0;
  EXPECT_THROW_WITH(generate(gpt2(), {ok}, o), ValueError, {"repetition_penalty is 0"});
  o = greedy(5);
  o.max_new_tokens = -1;
  EXPECT_THROW_WITH(generate(gpt2(), {ok}, o), ValueError, {"max_new_tokens is -1"});
  o = greedy(5);
  o.stop_strings = {"x"};
  EXPECT_THROW_WITH(generate(gpt2(), {ok}, o), ValueError, {"stop strings need token_bytes"});
  o.token_bytes = [](std::int64_t) { return std::string("a"); };
  o.stop_strings = {""};
  EXPECT_THROW_WITH(generate(gpt2(), {ok}, o), ValueError, {"stop string 0 is empty"});
  o = greedy(5);
  o.stop_tokens = {500};
  EXPECT_THROW_WITH(generate(gpt2(), {ok}, o), ValueError, {"stop token 500 is out of range"});
  EXPECT_FALSE(gpt2().is_training());
}

}  // namespace generation_test
