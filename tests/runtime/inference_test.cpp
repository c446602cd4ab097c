#include "eigenformer/runtime/inference.hpp"

#include "eigenformer/nn/encoder_classifier.hpp"
#include "support/test_support.hpp"

using namespace eigenformer;

namespace inference_test {

namespace {

// Sets eigenformer's thread count for a scope.
class ThreadCount {
 public:
  explicit ThreadCount(int n) : previous_(num_threads()) { set_num_threads(n); }
  ~ThreadCount() { set_num_threads(previous_); }

 private:
  int previous_;
};

nn::EncoderClassifier<float>::Options tiny_shapes() {
  nn::EncoderClassifier<float>::Options o;
  o.max_len = 128;
  o.encoder.layer.d_model = 128;
  o.encoder.layer.nhead = 2;
  o.encoder.layer.dim_feedforward = 512;
  o.encoder.layer.dropout = 0.0f;
  return o;
}

/// A module of another shape than a classifier: (B, T) ids and a (B) tensor in, (B, T, 3) out; it throws for one
/// row of the batch.
struct Echo : nn::Module<Echo, float> {
  Var<float> forward(const Tensor<std::int64_t>& ids, const Tensor<float>& scale) {
    for (Index i = 0; i < ids.numel(); ++i)
      if (ids[i] < 0) throw ValueError("Echo: a negative id");
    Tensor<float> y = Tensor<float>::empty({ids.size(0), ids.size(1), 3});
    for (Index b = 0; b < ids.size(0); ++b)
      for (Index t = 0; t < ids.size(1); ++t)
        for (Index k = 0; k < 3; ++k) y(b, t, k) = static_cast<float>(ids(b, t) * (k + 1)) * scale[b];
    return Var<float>(y);
  }
  template <class V>
  void visit(V&) {}
};

}  // namespace

TEST(Inference, SplitBatchGivesTheUnsplitLogits) {
  ThreadCount threads(2);
  nn::EncoderClassifier<float>::Options o;  // the seed's model
  o.max_len = 16;
  o.positional = nn::PositionalKind::learned;
  nn::EncoderClassifier<float> model(o);
  model.eval();
  // Five sequences: parts of two and three rows, padding in both.
  Tensor<std::int64_t> ids = Tensor<std::int64_t>::empty({5, 16});
  for (Index i = 0; i < ids.numel(); ++i) ids[i] = (i * 7) % 50;
  Tensor<bool> pad = Tensor<bool>::zeros({5, 16});
  pad(4, 15) = pad(1, 14) = true;
#ifdef _OPENMP
  {
    NoGradGuard no_grad;
    EXPECT_EQ(batch_parts(model, BatchSplit::always, ids, pad), 2);
    EXPECT_EQ(batch_parts(model, BatchSplit::never, ids, pad), 1);
  }
#endif
  const Var<float> unsplit = infer(model, BatchSplit::never, ids, pad);
  const Var<float> split = infer(model, BatchSplit::always, ids, pad);
  EXPECT_TRUE(split.is_leaf());
  EXPECT_FALSE(split.requires_grad());
  EXPECT_TRUE(is_grad_enabled());  // the caller's mode is kept
  EXPECT_EQ(split.shape(), (Shape{5, 2}));
  // Same arithmetic, other summation order: a part's products run on one thread (and may take another GEMM
  // backend), so the logits (of order 1) agree to float rounding, not bit for bit.
  EXPECT_TRUE(split.value().allclose(unsplit.value(), 1e-5, 1e-6));
  // Any module whose inputs and output have the batch first: undefined and 1-D inputs, a 3-D output.
  Echo echo;
  echo.eval();
  const Tensor<float> scale = Tensor<float>::from({1, 2, 3, 4, 5}, {5});
  const Var<float> y = infer(echo, BatchSplit::always, ids, scale);
  ASSERT_EQ(y.shape(), (Shape{5, 16, 3}));
  for (Index b = 0; b < 5; ++b) EXPECT_EQ(y.value()(b, 3, 2), static_cast<float>(ids(b, 3) * 3) * scale[b]);
}

TEST(Inference, APartsExceptionReachesTheCaller) {
  ThreadCount threads(2);
  Echo echo;
  echo.eval();
  Tensor<std::int64_t> ids = Tensor<std::int64_t>::zeros({4, 2});
  ids(3, 0) = -1;  // in the second part
  const Tensor<float> scale = Tensor<float>::ones({4});
  EXPECT_THROW_WITH(infer(echo, BatchSplit::always, ids, scale), ValueError, {"Echo: a negative id"});
  ids(3, 0) = 1;
  EXPECT_EQ(infer(echo, BatchSplit::always, ids, scale).size(0), 4);  // and the next call works
}

TEST(Inference, SplitOnlyWhereItPays) {
  ThreadCount threads(2);
  Tensor<std::int64_t> ids = Tensor<std::int64_t>::zeros({8, 128});
  nn::EncoderClassifier<float> small_weights(tiny_shapes());
  small_weights.eval();
  EXPECT_EQ(batch_parts(small_weights, BatchSplit::automatic, ids), 1);  // a graph is being recorded: never split
  NoGradGuard no_grad;
#ifdef _OPENMP
  EXPECT_EQ(batch_parts(small_weights, BatchSplit::automatic, ids), 2);  // tiny's shapes: about 5e8 flops a part
#endif
  EXPECT_EQ(batch_parts(small_weights, BatchSplit::automatic, Tensor<std::int64_t>::zeros({2, 4})), 1);  // too little
  EXPECT_EQ(batch_parts(small_weights, BatchSplit::automatic, Tensor<std::int64_t>::zeros({1, 128})), 1);  // one row
  EXPECT_EQ(batch_parts(small_weights, BatchSplit::always, Tensor<std::int64_t>()), 1);  // no batch to split
  {
    ThreadCount one(1);
    EXPECT_EQ(batch_parts(small_weights, BatchSplit::automatic, ids), 1);
  }
  auto large = tiny_shapes();
  large.encoder.layer.d_model = 640;  // in_proj_weight (1920, 640): 4.7 MiB
  large.encoder.layer.nhead = 4;
  large.encoder.num_layers = 1;
  large.max_len = 8;
  nn::EncoderClassifier<float> large_weights(large);
  large_weights.eval();
  const Tensor<std::int64_t> large_ids = Tensor<std::int64_t>::zeros({64, 8});
  // Weights over 4 MiB: split only where each part's products are one-thread BLAS calls (the packed kernel would
  // pack all of a weight per thread).
  EXPECT_EQ(batch_parts(large_weights, BatchSplit::automatic, large_ids),
            num_threads() >= 2 && eigenformer::detail::whole_part_products_on_blas<float>() ? 2 : 1);
#if defined(EIGENFORMER_OPENBLAS_THREADS) && defined(_OPENMP)
  if (eigenformer::detail::openblas_thread_calls().set) {
    // One-thread OpenBLAS: the parts' products are BLAS calls, unless its float kernels are narrower than the
    // packed kernel's (then float products never go to it, and a part would pack all of a weight per thread).
    EXPECT_EQ(batch_parts(large_weights, BatchSplit::automatic, large_ids),
              eigenformer::detail::blas_narrower_than_packed_kernel() ? 1 : 2);
    eigenformer::detail::openblas_thread_calls().set(2);  // a threaded BLAS: the parts would run the packed kernel
    EXPECT_FALSE(eigenformer::detail::whole_part_products_on_blas<float>());
    EXPECT_EQ(batch_parts(large_weights, BatchSplit::automatic, large_ids), 1);
    EXPECT_EQ(batch_parts(small_weights, BatchSplit::automatic, ids), 2);
    eigenformer::detail::openblas_thread_calls().set(1);
    if (eigenformer::detail::bf16_kernel_available()) {  // "medium": the parts' products go to the bf16 kernel
      MatmulPrecisionGuard medium("medium");
      EXPECT_FALSE(eigenformer::detail::whole_part_products_on_blas<float>());
      EXPECT_EQ(batch_parts(large_weights, BatchSplit::automatic, large_ids), 1);
      EXPECT_EQ(batch_parts(small_weights, BatchSplit::automatic, ids), 2);
    }
  }
#endif
  EXPECT_EQ(batch_parts(small_weights, BatchSplit::never, ids), 1);
  small_weights.train();
  EXPECT_EQ(batch_parts(small_weights, BatchSplit::always, ids), 1);  // training mode: dropout masks of the whole batch
  Echo echo;  // no forward_cost: split only when asked
  echo.eval();
  EXPECT_EQ(batch_parts(echo, BatchSplit::automatic, ids), 1);
#ifdef _OPENMP
  EXPECT_EQ(batch_parts(echo, BatchSplit::always, ids), 2);
#endif
}

}  // namespace inference_test
