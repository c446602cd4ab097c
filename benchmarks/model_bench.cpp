// Training steps and inference of the encoder classifier at the sizes that matter (token embedding + learned
// positions + N post-norm relu encoder blocks, dropout 0, CLS -> LayerNorm -> Linear), at 1 and 2 threads, plus
// the machine's FP32 FMA peak so that GFLOP/s read as a fraction of the limit.
//
// Run: build/release/benchmarks/model_bench [--benchmark_filter=seed] [--benchmark_repetitions=3]
//
// BM_train_step/<config>/threads:N   forward, cross-entropy, backward, Adam step, zero_grad
// BM_inference/<config>/threads:N    eval-mode forward without a graph through infer() (the batch split
//                                    across the threads where it pays)
// BM_inference_unsplit/<config>/threads:2   the same with BatchSplit::never
// BM_fma_peak                        FP32 fused multiply-adds on independent SIMD registers, one thread
// BM_bf16_dot_peak                   the same with vdpbf16ps (bf16 pairs, float sums; AVX512_BF16 built in)
// BM_memory_bandwidth/threads:N      reading a 1 GiB buffer once per iteration (GB/s): what bounds decoding
// BM_bert_train_step/bert-base/threads:N   nn::BertForSequenceClassification with bert-base's shape (12 layers,
//                                    width 768, 12 heads, feed-forward 3,072, vocabulary 30,522, dropout 0, 2 labels),
//                                    batch 8 x 128 tokens: forward, cross-entropy, backward, Adam step, zero_grad
// BM_bert_inference/bert-base/threads:N     the same model's eval-mode forward through infer()
//                                    (benchmarks/compare_bert.py runs both beside PyTorch and ONNX Runtime)
// BM_bert_{train_step,inference}/bert-base-medium/threads:N   both with set_float32_matmul_precision("medium")
//                                    (products in bf16 with float sums on CPUs with AVX512_BF16)
// BM_decode/gpt2-small/batch:B/threads:N   generate() with a GPT-2-small-shaped model (12 layers, width 768, 12
//                                    heads, vocabulary 50,257, random weights): B prompts of 32 tokens, 128 greedy
//                                    tokens each (prefill and every step)
// Counters: tokens/s (B * T per iteration) and GFLOP/s with per-layer forward FLOPs
//   QKV 2*M*C*3C + out-proj 2*M*C*C + FFN 2*2*M*C*F + QK^T 2*B*T^2*C + PV 2*B*T^2*C (M = B*T), training = 3x.
// Decoding: tokens/s (generated, B * 128 per iteration), ms/step (a decoding step of all B sequences, prefill
// excluded), prefill_ms, and weight_MB, the weights a step reads (all but the position table): the step's time
// can be no shorter than weight_MB / the read bandwidth.
#include <benchmark/benchmark.h>

#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "eigenformer/eigenformer.hpp"
#include "eigenformer/nn/bert.hpp"
#include "eigenformer/nn/gpt2_lm_head_model.hpp"
#include "eigenformer/runtime/generation.hpp"

namespace {

using namespace eigenformer;

struct Config {
  const char* name;
  Index vocab, d_model, heads, layers, ffn, seq, batch, classes;
};

const std::vector<Config> kConfigs = {
    {"seed", 50, 32, 4, 2, 64, 4, 2, 2},
    {"tiny", 8192, 128, 2, 2, 512, 128, 32, 2},
    {"mini", 8192, 256, 4, 4, 1024, 128, 16, 2},
    {"base-layer", 8192, 768, 12, 1, 3072, 128, 8, 2},
};

double forward_flops(const Config& c) {
  const double M = double(c.batch) * double(c.seq), C = double(c.d_model), F = double(c.ffn);
  const double per_layer = 2 * M * C * 3 * C + 2 * M * C * C + 2 * 2 * M * C * F +
                           2 * double(c.batch) * double(c.seq) * double(c.seq) * C * 2;
  return per_layer * double(c.layers);
}

nn::EncoderClassifier<float> make_model(const Config& c) {
  nn::EncoderClassifier<float>::Options o;
  o.vocab_size = c.vocab;
  o.max_len = c.seq;
  o.positional = nn::PositionalKind::learned;
  o.encoder.layer.d_model = c.d_model;
  o.encoder.layer.nhead = c.heads;
  o.encoder.layer.dim_feedforward = c.ffn;
  o.encoder.layer.dropout = 0.0f;
  o.encoder.num_layers = c.layers;
  o.head.num_classes = c.classes;
  return nn::EncoderClassifier<float>(o);
}

Tensor<std::int64_t> random_ids(const Config& c, std::uint64_t seed) {
  Generator gen(seed);
  Tensor<std::int64_t> ids = Tensor<std::int64_t>::empty({c.batch, c.seq});
  for (Index i = 0; i < ids.numel(); ++i) ids[i] = static_cast<std::int64_t>(gen() % static_cast<std::uint64_t>(c.vocab));
  return ids;
}

void set_counters(benchmark::State& state, const Config& c, double flops_per_iter) {
  const double tokens = double(c.batch) * double(c.seq);
  state.counters["tokens/s"] = benchmark::Counter(tokens * double(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops_per_iter * 1e-9 * double(state.iterations()), benchmark::Counter::kIsRate);
}

void BM_train_step(benchmark::State& state, Config c, int threads) {
  set_num_threads(threads);
  nn::EncoderClassifier<float> model = make_model(c);
  model.train();
  optim::Adam<float> opt(model.named_parameters());
  const Tensor<std::int64_t> ids = random_ids(c, 1);
  Tensor<std::int64_t> labels = Tensor<std::int64_t>::empty({c.batch});
  for (Index i = 0; i < c.batch; ++i) labels[i] = i % c.classes;
  for (auto _ : state) {
    Var<float> loss = cross_entropy(model.forward(ids), labels);
    loss.backward();
    opt.step();
    opt.zero_grad();
    benchmark::DoNotOptimize(loss.value().data());
  }
  set_counters(state, c, 3 * forward_flops(c));
}

void BM_inference(benchmark::State& state, Config c, int threads, BatchSplit split) {
  set_num_threads(threads);
  nn::EncoderClassifier<float> model = make_model(c);
  model.eval();
  const Tensor<std::int64_t> ids = random_ids(c, 2);
  for (auto _ : state) {
    Var<float> logits = infer(model, split, ids);
    benchmark::DoNotOptimize(logits.value().data());
  }
  set_counters(state, c, forward_flops(c));
}

// Peak FP32 throughput of one core: 12 independent chains of a*b+c on the widest FMA registers the build
// targets (AVX-512 or AVX2+FMA; scalar fma otherwise), enough chains to cover FMA latency times the FMA pipes.
void BM_fma_peak(benchmark::State& state) {
  constexpr int kChains = 12;
  constexpr long kIters = 1 << 20;
#if defined(__AVX512F__)
  using V = __m512;
  constexpr int kLanes = 16;
  auto splat = [](float v) { return _mm512_set1_ps(v); };
  auto fma = [](V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); };
#elif defined(__FMA__) && defined(__AVX__)
  using V = __m256;
  constexpr int kLanes = 8;
  auto splat = [](float v) { return _mm256_set1_ps(v); };
  auto fma = [](V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); };
#else
  using V = float;
  constexpr int kLanes = 1;
  auto splat = [](float v) { return v; };
  auto fma = [](V a, V b, V c) { return std::fma(a, b, c); };
#endif
  V acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = splat(float(i) * 1e-3f);
  const V a = splat(0.999999f), b = splat(1e-7f);
  for (auto _ : state) {
    for (long it = 0; it < kIters; ++it)
      for (int i = 0; i < kChains; ++i) acc[i] = fma(acc[i], a, b);
    benchmark::DoNotOptimize(acc);
  }
  const double flops = 2.0 * kLanes * kChains * double(kIters);
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9 * double(state.iterations()), benchmark::Counter::kIsRate);
  state.SetLabel(kLanes == 16 ? "AVX-512" : kLanes == 8 ? "AVX2+FMA" : "scalar");
}

// The bf16 products' peak: vdpbf16ps on independent zmm accumulators (32 multiply-adds each), one thread.
void BM_bf16_dot_peak(benchmark::State& state) {
#if defined(__AVX512BF16__)
  constexpr int kChains = 12;
  constexpr long kIters = 1 << 20;
  __m512 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(float(i) * 1e-3f);
  const __m512bh a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(0.5f), _mm512_set1_ps(0.5f));
  const __m512bh b = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-7f), _mm512_set1_ps(1e-7f));
  for (auto _ : state) {
    for (long it = 0; it < kIters; ++it)
      for (int i = 0; i < kChains; ++i) acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
    benchmark::DoNotOptimize(acc);
  }
  const double flops = 2.0 * 32 * kChains * double(kIters);
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9 * double(state.iterations()), benchmark::Counter::kIsRate);
#else
  state.SkipWithError("built without AVX512_BF16 (-march=native on a CPU that has it)");
#endif
}

// Read bandwidth: a 1 GiB buffer (far beyond every cache) summed with the widest vectors, split across the
// threads; GB/s of data read.
#if defined(__AVX512F__)
float sum_range(const float* p, Index n) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  Index i = 0;
  for (; i + 64 <= n; i += 64) {
    a0 = _mm512_add_ps(a0, _mm512_load_ps(p + i));
    a1 = _mm512_add_ps(a1, _mm512_load_ps(p + i + 16));
    a2 = _mm512_add_ps(a2, _mm512_load_ps(p + i + 32));
    a3 = _mm512_add_ps(a3, _mm512_load_ps(p + i + 48));
  }
  float out[16];
  _mm512_storeu_ps(out, _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
  float s = 0;
  for (float v : out) s += v;
  for (; i < n; ++i) s += p[i];
  return s;
}
#else
float sum_range(const float* p, Index n) {
  float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  Index i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) s[k] += p[i + k];
  float t = 0;
  for (float v : s) t += v;
  for (; i < n; ++i) t += p[i];
  return t;
}
#endif

void BM_memory_bandwidth(benchmark::State& state, int threads) {
  set_num_threads(threads);
  const Index n = Index(1) << 28;  // 1 GiB of floats
  std::unique_ptr<float, decltype(&std::free)> buffer(static_cast<float*>(std::aligned_alloc(64, sizeof(float) * n)),
                                                       &std::free);
  float* data = buffer.get();
  detail::parallel_for(threads, 1e9, [&](Index t) {  // first touch by the threads that read
    for (Index i = t * n / threads; i < (t + 1) * n / threads; ++i) data[i] = 1e-9f * float(i % 1000);
  });
  std::vector<float> sums(static_cast<std::size_t>(threads));
  for (auto _ : state) {
    detail::parallel_for(threads, 1e9, [&](Index t) {
      sums[static_cast<std::size_t>(t)] = sum_range(data + t * n / threads, (t + 1) * n / threads - t * n / threads);
    });
    benchmark::DoNotOptimize(sums.data());
  }
  state.counters["GB/s"] =
      benchmark::Counter(double(n) * sizeof(float) * 1e-9 * double(state.iterations()), benchmark::Counter::kIsRate);
}

// BERT-base (bert-base-uncased's shape) as a sequence classifier, batch 8 x 128, dropout 0.
nn::BertForSequenceClassification<float> make_bert_base() {
  nn::BertConfig b;  // the defaults are bert-base's
  b.hidden_dropout_prob = 0;
  b.attention_probs_dropout_prob = 0;
  b.seed = 1;
  return nn::BertForSequenceClassification<float>(b);
}

const Config kBertBase = {"bert-base", 30522, 768, 12, 12, 3072, 128, 8, 2};

// Runs step once untimed, then times it. A BERT-base step takes longer than --benchmark_min_time, so Google
// Benchmark would otherwise time one step of a new model: the first, which also allocates the gradients, Adam's
// moments and the activation buffers and touches their pages. The steps after it are the steady state, as the
// PyTorch and ONNX Runtime sides of compare_bert.py time theirs after warm-up runs.
template <typename Step>
void time_after_warm_up(benchmark::State& state, Step&& step) {
  step();
  for (auto _ : state) step();
}

void BM_bert_train_step(benchmark::State& state, int threads, const char* precision) {
  set_num_threads(threads);
  const MatmulPrecisionGuard scope(precision);
  nn::BertForSequenceClassification<float> model = make_bert_base();
  model.train();
  optim::Adam<float> opt(model.named_parameters());
  const Tensor<std::int64_t> ids = random_ids(kBertBase, 1);
  Tensor<std::int64_t> labels = Tensor<std::int64_t>::empty({kBertBase.batch});
  for (Index i = 0; i < kBertBase.batch; ++i) labels[i] = i % 2;
  const auto step = [&] {
    Var<float> loss = cross_entropy(model.forward(ids), labels);
    loss.backward();
    opt.step();
    opt.zero_grad();
    benchmark::DoNotOptimize(loss.value().data());
  };
  time_after_warm_up(state, step);
  set_counters(state, kBertBase, 3 * forward_flops(kBertBase));
}

void BM_bert_inference(benchmark::State& state, int threads, const char* precision) {
  set_num_threads(threads);
  const MatmulPrecisionGuard scope(precision);
  nn::BertForSequenceClassification<float> model = make_bert_base();
  model.eval();
  const Tensor<std::int64_t> ids = random_ids(kBertBase, 2);
  const auto forward = [&] {
    Var<float> logits = infer(model, BatchSplit::automatic, ids);
    benchmark::DoNotOptimize(logits.value().data());
  };
  time_after_warm_up(state, forward);
  set_counters(state, kBertBase, forward_flops(kBertBase));
}

// GPT-2 small (124M parameters) with random weights, greedy decoding of 128 tokens after 32-token prompts.
void BM_decode(benchmark::State& state, Index batch, int threads) {
  set_num_threads(threads);
  nn::GPT2LMHeadModel<float>::Options o;  // the defaults are GPT-2 small's
  o.transformer.seed = 1;
  static nn::GPT2LMHeadModel<float>* model = nullptr;  // built once for every decoding benchmark (seconds of draws)
  if (!model) model = new nn::GPT2LMHeadModel<float>(o);
  model->eval();
  const Index prompt = 32, new_tokens = 128;
  Generator gen(7);
  std::vector<std::vector<std::int64_t>> prompts(static_cast<std::size_t>(batch));
  for (auto& p : prompts)
    for (Index t = 0; t < prompt; ++t) p.push_back(static_cast<std::int64_t>(gen() % 50257));
  GenerationOptions g;
  g.max_new_tokens = new_tokens;
  g.sampling.temperature = 0;
  g.stop_at_eos = false;
  double decode = 0, prefill = 0;
  Index steps = 0, generated = 0;
  for (auto _ : state) {
    const GenerationResult r = generate(*model, prompts, g);
    decode += r.decode_seconds;
    prefill += r.prefill_seconds;
    steps += new_tokens - 1;  // the first token comes from the prefill's logits
    generated += r.generated_tokens;
  }
  const double weight_bytes = double(model->parameter_count() - model->transformer.wpe.weight.numel()) * 4.0;
  state.counters["tokens/s"] = benchmark::Counter(double(generated), benchmark::Counter::kIsRate);
  state.counters["ms/step"] = decode / double(steps) * 1e3;
  state.counters["prefill_ms"] = prefill / double(state.iterations()) * 1e3;
  state.counters["weight_MB"] = weight_bytes * 1e-6;
}

const int registered = [] {
  for (const Config& c : kConfigs)
    for (int threads : {1, 2}) {
      const std::string suffix = std::string(c.name) + "/threads:" + std::to_string(threads);
      benchmark::RegisterBenchmark(("BM_train_step/" + suffix).c_str(), BM_train_step, c, threads)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
      benchmark::RegisterBenchmark(("BM_inference/" + suffix).c_str(), BM_inference, c, threads,
                                   BatchSplit::automatic)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
      // The same forward with the batch never split across threads, to compare with.
      if (threads > 1)
        benchmark::RegisterBenchmark(("BM_inference_unsplit/" + suffix).c_str(), BM_inference, c, threads,
                                     BatchSplit::never)
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime();
    }
  for (const char* precision : {"highest", "medium"})
    for (int threads : {1, 2}) {
      const std::string suffix = std::string(precision[0] == 'h' ? "bert-base" : "bert-base-medium") +
                                 "/threads:" + std::to_string(threads);
      benchmark::RegisterBenchmark(("BM_bert_train_step/" + suffix).c_str(), BM_bert_train_step, threads, precision)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
      benchmark::RegisterBenchmark(("BM_bert_inference/" + suffix).c_str(), BM_bert_inference, threads, precision)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
    }
  benchmark::RegisterBenchmark("BM_fma_peak", BM_fma_peak)->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("BM_bf16_dot_peak", BM_bf16_dot_peak)->Unit(benchmark::kMillisecond);
  for (int threads : {1, 2}) {
    benchmark::RegisterBenchmark(("BM_memory_bandwidth/threads:" + std::to_string(threads)).c_str(),
                                 BM_memory_bandwidth, threads)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
    for (Index batch : {1, 8})
      benchmark::RegisterBenchmark(
          ("BM_decode/gpt2-small/batch:" + std::to_string(batch) + "/threads:" + std::to_string(threads)).c_str(),
          BM_decode, batch, threads)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime()
          ->Iterations(2);
  }
  return 0;
}();

}  // namespace
