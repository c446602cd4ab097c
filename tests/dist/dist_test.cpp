// Data-parallel training under MPI: run by ctest with 2 and 3 ranks (mpirun -np N eigenformer_dist_tests). Every
// rank runs every test; a rank's failure fails the run.
#include "eigenformer/dist.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "eigenformer/nn/encoder_classifier.hpp"
#include "eigenformer/train/fit.hpp"
#include "eigenformer/train/masked_lm.hpp"
#include "eigenformer/nn/bert.hpp"

using namespace eigenformer;

namespace dist_test {

namespace {

namespace fs = std::filesystem;
using Model = nn::EncoderClassifier<float>;

dist::MpiProcessGroup& world();

/// Sequences of 5-12 noise tokens with one marker (token 1: label 1, token 2: label 0); token 0 pads.
data::Batcher synthetic(Index n, Index batch_size, std::uint64_t seed = 11) {
  std::mt19937_64 gen(seed);
  std::vector<std::vector<std::int64_t>> seqs;
  std::vector<std::int64_t> labels;
  for (Index i = 0; i < n; ++i) {
    const auto len = static_cast<std::size_t>(5 + gen() % 8);
    std::vector<std::int64_t> s(len);
    for (auto& t : s) t = static_cast<std::int64_t>(3 + gen() % 17);
    const auto label = static_cast<std::int64_t>(gen() % 2);
    s[gen() % len] = label == 1 ? 1 : 2;
    seqs.push_back(std::move(s));
    labels.push_back(label);
  }
  data::Batcher::Options o;
  o.batch_size = batch_size;
  o.shuffle = true;
  o.seed = seed;
  o.bucket_batches = 2;
  return data::Batcher(std::move(seqs), std::move(labels), o);
}

Model::Options small_model() {
  Model::Options o;
  o.vocab_size = 20;
  o.max_len = 16;
  o.encoder.layer.d_model = 16;
  o.encoder.layer.nhead = 2;
  o.encoder.num_layers = 2;
  o.encoder.layer.dim_feedforward = 32;
  o.encoder.layer.dropout = 0.1f;  // masks keyed by example: the same on any rank
  o.positional = nn::PositionalKind::learned;
  o.head.pooling = nn::Pooling::mean;
  o.padding_idx = 0;
  o.seed = 7;
  return o;
}

std::vector<Tensor<float>> weights(Model& m) {
  std::vector<Tensor<float>> out;
  for (const auto& np : m.named_parameters()) out.push_back(np.second.value().clone());
  return out;
}

double relative_difference(const Tensor<float>& a, const Tensor<float>& b) {
  double diff = 0, norm = 0;
  for (Index i = 0; i < a.numel(); ++i) {
    diff = std::max(diff, std::abs(static_cast<double>(a[i]) - b[i]));
    norm = std::max(norm, std::abs(static_cast<double>(b[i])));
  }
  return diff / std::max(norm, 1e-30);
}

/// One process with the whole batch against every rank with its share: the same losses and weights.
void expect_same_as_one_process(Index examples, Index batch, Index accumulation, Index epochs) {
  const data::Batcher train = synthetic(examples, batch), valid = synthetic(9, 4, 99);
  train::FitOptions fo;
  fo.epochs = epochs;
  fo.lr = 3e-3;
  fo.accumulation_steps = accumulation;
  Model alone(small_model()), together(small_model());
  const train::FitResult a = train::fit(alone, train, valid, fo);
  fo.processes = &world();
  const train::FitResult b = train::fit(together, train, valid, fo);
  ASSERT_EQ(a.step, b.step);
  ASSERT_GE(a.step, 20);
  ASSERT_EQ(a.history.size(), b.history.size());
  for (std::size_t e = 0; e < a.history.size(); ++e)
    for (const char* m : {"train_loss", "train_accuracy", "valid_loss", "valid_accuracy"})
      EXPECT_NEAR(b.history[e].metric(m), a.history[e].metric(m), 1e-5 * std::abs(a.history[e].metric(m)) + 1e-7)
          << m << ", epoch " << e + 1;
  std::vector<Tensor<float>> wa = weights(alone), wb = weights(together);
  const auto names = alone.named_parameters();
  for (std::size_t i = 0; i < wa.size(); ++i) {
    if (names[i].first.find("in_proj_bias") != std::string::npos) {
      // The key bias's gradient is zero in exact arithmetic (softmax ignores a constant per query row): both runs
      // see rounding noise there, which Adam scales up to full steps. Compared without it.
      const Index d = wa[i].numel() / 3;
      for (Index k = d; k < 2 * d; ++k) wa[i][k] = wb[i][k] = 0;
    }
    EXPECT_LT(relative_difference(wb[i], wa[i]), 1e-5) << names[i].first;
  }
}

}  // namespace

TEST(Dist, BroadcastAndSumAcrossRanks) {
  dist::MpiProcessGroup& g = world();
  std::vector<double> v = {1.0, static_cast<double>(g.rank())};
  g.all_reduce_sum(v);
  EXPECT_EQ(v[0], g.size());
  EXPECT_EQ(v[1], g.size() * (g.size() - 1) / 2.0);
  std::string text = g.rank() == 0 ? std::string("rank 0 says: ") + std::string(1000, 'x') : std::string("other");
  g.broadcast(text, 0);
  EXPECT_EQ(text.size(), 13u + 1000u);
  Tensor<float> t = g.rank() == 0 ? Tensor<float>::from({1.f, 2.f, 3.f, 4.f, 5.f, 6.f}, {2, 3}) : Tensor<float>();
  g.broadcast(t, 0);
  ASSERT_TRUE(t.defined());
  EXPECT_EQ(t.shape(), (Shape{2, 3}));
  EXPECT_EQ(t(1, 2), 6.f);
  Tensor<bool> mask = g.rank() == 0 ? Tensor<bool>::from({true, false, true}, {3}) : Tensor<bool>::zeros({5});
  g.broadcast_any(mask, 0);
  EXPECT_EQ(mask.shape(), (Shape{3}));
  EXPECT_TRUE(mask[0] && !mask[1] && mask[2]);
}

TEST(Dist, BucketsSumEveryGradientInOrderWhateverOrderBackwardFinishesThem) {
  // Eight parameters in buckets of about two; each rank reports them ready in its own order (rank 1 backwards),
  // and one parameter has a gradient on rank 0 only, one on no rank.
  dist::MpiProcessGroup& g = world();
  NamedParameters<double> params;
  for (int i = 0; i < 8; ++i)
    params.emplace_back("p" + std::to_string(i), Var<double>(Tensor<double>::zeros({3 + i}), true));
  Var<double> frozen(Tensor<double>::zeros({4}), false);
  params.emplace_back("frozen", frozen);
  dist::BucketOptions bo;
  bo.first_bucket_bytes = bo.bucket_bytes = 2 * 8 * sizeof(double);
  dist::BucketedAllReduce<double> sync(params, g.comm(), bo);
  EXPECT_GE(sync.buckets(), 3u);
  for (int step = 0; step < 2; ++step) {
    for (int i = 0; i < 8; ++i) {
      params[i].second.zero_grad();
      if (i == 6 || (i == 5 && g.rank() != 0)) continue;
      params[i].second.grad() = Tensor<double>::full({3 + i}, (g.rank() + 1) * (i + 1) + step);
    }
    sync.begin_step();
    std::vector<int> order = {7, 6, 5, 4, 3, 2, 1, 0};
    if (g.rank() % 2 == 1) order = {0, 1, 2, 3, 4, 5, 6, 7};
    for (int i : order) sync.gradient_ready(params[static_cast<std::size_t>(i)].second.node_ptr());
    sync.finish_step();
    const double ranks = g.size(), rank_sum = g.size() * (g.size() + 1) / 2.0;
    for (int i = 0; i < 8; ++i) {
      const Var<double>& p = params[static_cast<std::size_t>(i)].second;
      if (i == 6) {
        EXPECT_FALSE(p.has_grad());
        continue;
      }
      ASSERT_TRUE(p.has_grad()) << i;
      const double expected = i == 5 ? 1.0 * (i + 1) + step : rank_sum * (i + 1) + ranks * step;
      for (Index k = 0; k < p.numel(); ++k) ASSERT_EQ(p.grad()[k], expected) << i;
    }
  }
  EXPECT_FALSE(frozen.has_grad());
}

TEST(Dist, SumsStartDuringBackward) {
  // Installed on a real backward, the synchronizer starts the last layers' buckets before backward ends.
  dist::MpiProcessGroup& g = world();
  Model model(small_model());
  model.train();
  dist::BucketOptions bo;
  bo.first_bucket_bytes = bo.bucket_bytes = 4096;
  dist::BucketedAllReduce<float> sync(model.named_parameters(), g.comm(), bo);
  const data::Batcher data = synthetic(4, 4);
  const data::Batch batch = data.make_batch({0, 1, 2, 3});
  struct Spy : GradientReadyObserver<float> {
    dist::BucketedAllReduce<float>& inner;
    std::size_t reports = 0;
    explicit Spy(dist::BucketedAllReduce<float>& s) : inner(s) {}
    void gradient_ready(const std::shared_ptr<eigenformer::detail::Node<float>>& leaf) override {
      ++reports;
      inner.gradient_ready(leaf);
    }
  } spy(sync);
  sync.begin_step();
  {
    GradientReadyScope<float> scope(spy);
    cross_entropy(model.forward(batch.ids, batch.padding_mask), batch.labels).backward();
  }
  EXPECT_EQ(spy.reports, model.named_parameters().size());
  EXPECT_EQ(sync.started(), sync.buckets());  // every bucket started inside backward
  sync.finish_step();
}

TEST(Dist, RanksTrainAsOneProcessWithTheWholeBatch) {
  // 23 examples in batches of 6: 4 batches per epoch, the last one short (5 examples: uneven shares); 5 epochs.
  expect_same_as_one_process(23, 6, 1, 5);
}

TEST(Dist, RanksTrainAsOneProcessWithAccumulationAndEmptyShares) {
  // Batches of 2 on 3 ranks leave a rank without examples in every batch; two batches per step.
  expect_same_as_one_process(21, 2, 2, 4);
}

TEST(Dist, MaskedLmRanksTrainAsOneProcess) {
  // Loss units are masked tokens, which differ between shares.
  nn::BertConfig c;
  c.vocab_size = 30;
  c.hidden_size = 16;
  c.num_hidden_layers = 1;
  c.num_attention_heads = 2;
  c.intermediate_size = 32;
  c.max_position_embeddings = 32;
  std::mt19937_64 gen(5);
  std::vector<std::vector<std::int64_t>> seqs;
  for (int i = 0; i < 24; ++i) {
    std::vector<std::int64_t> s = {2};  // [CLS]
    for (int k = 0; k < 6 + i % 7; ++k) s.push_back(static_cast<std::int64_t>(5 + gen() % 25));
    s.push_back(3);  // [SEP]
    seqs.push_back(s);
  }
  data::Batcher::Options bo;
  bo.batch_size = 6;
  bo.shuffle = true;
  const data::Batcher train(seqs, std::vector<std::int64_t>(seqs.size(), 0), bo);
  bo.shuffle = false;
  const data::Batcher valid(std::vector<std::vector<std::int64_t>>(seqs.begin(), seqs.begin() + 7),
                            std::vector<std::int64_t>(7, 0), bo);
  train::MaskedLmOptions mo;
  mo.vocab_size = c.vocab_size;
  mo.mask_id = 4;
  mo.special_ids = {0, 2, 3, 4};
  mo.seed = 5;
  const train::MaskedLmTask task(mo);
  train::FitOptions fo;
  fo.epochs = 5;
  fo.lr = 3e-3;
  nn::BertForMaskedLM<float> alone(c), together(c);
  const train::FitResult a = train::fit(alone, task, train, valid, fo);
  fo.processes = &world();
  const train::FitResult b = train::fit(together, task, train, valid, fo);
  ASSERT_EQ(a.step, 20);
  for (std::size_t e = 0; e < a.history.size(); ++e)
    EXPECT_NEAR(b.history[e].metric("train_loss"), a.history[e].metric("train_loss"),
                1e-5 * a.history[e].metric("train_loss"));
  const auto pa = alone.named_parameters(), pb = together.named_parameters();
  for (std::size_t i = 0; i < pa.size(); ++i) {
    if (pa[i].first.find("self.key.bias") == std::string::npos) {  // zero gradient in exact arithmetic (see above)
      EXPECT_LT(relative_difference(pb[i].second.value(), pa[i].second.value()), 1e-5) << pa[i].first;
    }
  }
}

TEST(Dist, OnlyRankZeroWritesAndAResumedRunOnNRanksEndsAsAnUninterruptedOne) {
  dist::MpiProcessGroup& g = world();
  const data::Batcher train = synthetic(23, 6), valid = synthetic(9, 4, 99);
  const fs::path dir = fs::path(EIGENFORMER_TEST_TMP_DIR) / ("dist_resume_np" + std::to_string(g.size()));
  if (g.rank() == 0) fs::remove_all(dir);
  g.barrier();
  train::FitOptions fo;
  fo.epochs = 4;
  fo.lr = 3e-3;
  fo.schedule = train::ScheduleKind::constant;  // the same steps whatever the planned epochs
  fo.processes = &g;
  Model whole(small_model());
  train::fit(whole, train, valid, fo);  // no folder: the reference

  fo.run_dir = dir;
  fo.epochs = 2;
  fo.allow_changes = {"epochs"};
  Model first(small_model());
  train::fit(first, train, valid, fo);
  g.barrier();
  EXPECT_TRUE(fs::exists(dir / "checkpoint.json"));
  fo.epochs = 4;
  fo.resume = true;
  Model resumed(small_model());  // fresh weights: rank 0 loads the checkpoint and hands it to every rank
  const train::FitResult r = train::fit(resumed, train, valid, fo);
  EXPECT_EQ(r.history.size(), 4u);
  const std::vector<Tensor<float>> wa = weights(whole), wb = weights(resumed);
  for (std::size_t i = 0; i < wa.size(); ++i) EXPECT_TRUE(wb[i].equal(wa[i])) << i;
  g.barrier();
  if (g.rank() == 0) {
    // No stray files from the other ranks (staging folders, temporaries).
    for (const auto& entry : fs::directory_iterator(dir.parent_path()))
      EXPECT_EQ(entry.path().filename().string().find(dir.filename().string() + "."), std::string::npos)
          << entry.path();
    fs::remove_all(dir);
  }
}

namespace {
dist::Environment* environment = nullptr;
dist::MpiProcessGroup& world() { return environment->world(); }
}  // namespace

}  // namespace dist_test

int main(int argc, char** argv) {
  eigenformer::dist::Environment env(&argc, &argv);
  dist_test::environment = &env;
  ::testing::InitGoogleTest(&argc, argv);
  if (env.rank() != 0) {  // one rank's report is enough; a failure on any rank still fails the run
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  // A rank asked to fail (ctest's failure test) throws inside training; its error ends every rank.
  try {
    if (argc > 1 && std::string(argv[1]) == "--fail-on-rank") {
      const int failing = std::stoi(argv[2]);
      const auto train = dist_test::synthetic(23, 6), valid = dist_test::synthetic(9, 4, 99);
      eigenformer::train::FitOptions fo;
      fo.epochs = 2;
      fo.processes = &env.world();
      fo.after_backward.push_back([&] {
        if (env.rank() == failing) throw eigenformer::ValueError("rank " + std::to_string(failing) + " failed on purpose");
      });
      dist_test::Model model(dist_test::small_model());
      eigenformer::train::fit(model, train, valid, fo);
      return 0;
    }
    return RUN_ALL_TESTS();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rank %d: error: %s\n", env.rank(), e.what());
    std::fflush(stderr);
    env.abort(1);
  }
}
