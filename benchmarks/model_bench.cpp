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
// Counters: tokens/s (B * T per iteration) and GFLOP/s with per-layer forward FLOPs
//   QKV 2*M*C*3C + out-proj 2*M*C*C + FFN 2*2*M*C*F + QK^T 2*B*T^2*C + PV 2*B*T^2*C (M = B*T), training = 3x.
#include <benchmark/benchmark.h>

#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "eigenformer/eigenformer.hpp"

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
  benchmark::RegisterBenchmark("BM_fma_peak", BM_fma_peak)->Unit(benchmark::kMillisecond);
  return 0;
}();

}  // namespace
