// Data-parallel training steps of the encoder classifier at model_bench's sizes, on however many ranks mpirun
// starts: each rank runs forward and backward on its share of the global batch, the bucketed all-reduce sums the
// gradients during backward (dist/process_group.hpp), then every rank takes the Adam step. Prints, on rank 0, the
// median step time and the median time a step waits for its sums after backward (communication not hidden).
//
//   OMP_NUM_THREADS=2 mpirun -np 1 build/release/benchmarks/dist/dist_step --config mini     1 rank x 2 threads
//   OMP_NUM_THREADS=1 mpirun -np 2 build/release/benchmarks/dist/dist_step --config mini     2 ranks x 1 thread
// benchmarks/dist/compare_dist.sh alternates the two and prints the ratio.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "eigenformer/dist.hpp"
#include "eigenformer/eigenformer.hpp"

namespace {

using namespace eigenformer;

struct Config {
  const char* name;
  Index vocab, d_model, heads, layers, ffn, seq, batch;
};

// model_bench's configurations (benchmarks/model_bench.cpp).
const Config kConfigs[] = {
    {"tiny", 8192, 128, 2, 2, 512, 128, 32},
    {"mini", 8192, 256, 4, 4, 1024, 128, 16},
    {"base-layer", 8192, 768, 12, 1, 3072, 128, 8},
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  dist::Environment env(&argc, &argv);
  std::string name = "tiny";
  int steps = 20, warmup = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--config") name = argv[i + 1];
    else if (a == "--steps") steps = std::atoi(argv[i + 1]);
    else if (a == "--warmup") warmup = std::atoi(argv[i + 1]);
  }
  const Config* c = nullptr;
  for (const Config& k : kConfigs)
    if (name == k.name) c = &k;
  if (!c) {
    if (env.rank() == 0) std::fprintf(stderr, "dist_step: unknown --config %s (tiny, mini, base-layer)\n", name.c_str());
    return 2;
  }
  nn::EncoderClassifier<float>::Options o;
  o.vocab_size = c->vocab;
  o.max_len = c->seq;
  o.positional = nn::PositionalKind::learned;
  o.encoder.layer.d_model = c->d_model;
  o.encoder.layer.nhead = c->heads;
  o.encoder.layer.dim_feedforward = c->ffn;
  o.encoder.layer.dropout = 0.0f;
  o.encoder.num_layers = c->layers;
  o.head.num_classes = 2;
  nn::EncoderClassifier<float> model(o);
  model.train();
  const NamedParameters<float> params = model.named_parameters();
  optim::Adam<float> adam(params);
  train::ProcessGroup& group = env.world();
  const int ranks = group.size();
  // Rank 0's weights everywhere, as fit() starts.
  for (const auto& np : params) {
    Var<float> p = np.second;
    group.broadcast(p.value(), 0);
  }
  auto sync = ranks > 1 ? group.gradient_synchronizer(params) : nullptr;

  // This rank's share of a global batch of random tokens.
  const train::Share share = train::share_of(c->batch, env.rank(), ranks);
  Generator gen(1);
  Tensor<std::int64_t> ids = Tensor<std::int64_t>::empty({share.count, c->seq});
  for (Index i = 0; i < ids.numel(); ++i) ids[i] = static_cast<std::int64_t>(gen() % static_cast<std::uint64_t>(c->vocab));
  Tensor<std::int64_t> labels = Tensor<std::int64_t>::empty({share.count});
  for (Index i = 0; i < share.count; ++i) labels[i] = (share.begin + i) % 2;
  const float weight = static_cast<float>(share.count) / static_cast<float>(c->batch);

  std::vector<double> step_ms, wait_ms;
  double waited = 0;
  for (int s = 0; s < warmup + steps; ++s) {
    const auto t0 = std::chrono::steady_clock::now();
    if (sync) sync->begin_step();
    {
      const Var<float> loss = scale(cross_entropy(model.forward(ids), labels), weight);
      if (sync) {
        GradientReadyScope<float> observe(*sync);
        loss.backward();
      } else {
        loss.backward();
      }
    }
    if (sync) sync->finish_step();
    adam.step();
    adam.zero_grad();
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    const double w = sync ? sync->wait_seconds() * 1e3 - waited : 0;
    waited += w;
    if (s >= warmup) {
      step_ms.push_back(ms);
      wait_ms.push_back(w);
    }
  }
  // The slowest rank sets the pace: report the medians of rank 0, which every rank waits for in the sums anyway.
  Index numel = 0;
  for (const auto& np : params) numel += np.second.numel();
  if (env.rank() == 0) {
    const char* threads = std::getenv("OMP_NUM_THREADS");
    std::printf("config %s ranks %d threads %s batch %lld (per rank %lld) step_ms %.2f allreduce_wait_ms %.2f "
                "allreduce_MB %.2f\n",
                c->name, ranks, threads ? threads : "?", static_cast<long long>(c->batch),
                static_cast<long long>(share.count), median(step_ms), median(wait_ms),
                ranks > 1 ? static_cast<double>(numel) * 4.0 / 1e6 : 0.0);
  }
  return 0;
}
