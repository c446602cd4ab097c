#include "eigenformer/ops/attention.hpp"

#include <cmath>

#include "support/test_support.hpp"

using namespace eigenformer;

namespace attention_test {

using eigenformer::testing::random_var;
using Inputs = std::vector<Var<double>>;

namespace {

// Reference attention computed naively, element by element, with the same masking rules.
Tensor<double> naive_attention(const Tensor<double>& q, const Tensor<double>& k, const Tensor<double>& v,
                               const AttentionMask<double>& m, Index H) {
  const Index r = q.dim(), BH = q.numel() / (q.size(r - 2) * q.size(r - 1));
  const Index Tq = q.size(r - 2), D = q.size(r - 1), S = k.size(r - 2), Dv = v.size(r - 1);
  Shape os = q.shape();
  os[r - 1] = Dv;
  Tensor<double> out(os);
  for (Index bh = 0; bh < BH; ++bh)
    for (Index t = 0; t < Tq; ++t) {
      std::vector<double> sc(S);
      double mx = -INFINITY;
      for (Index s = 0; s < S; ++s) {
        double dot = 0;
        for (Index d = 0; d < D; ++d) dot += q[(bh * Tq + t) * D + d] * k[(bh * S + s) * D + d];
        sc[s] = dot / std::sqrt(double(D));
        if (m.attn_bias.defined()) sc[s] += m.attn_bias[t * S + s];
        if (m.attn_mask.defined() && m.attn_mask[t * S + s]) sc[s] = -INFINITY;
        if (m.key_padding.defined() && m.key_padding[(bh / H) * S + s]) sc[s] = -INFINITY;
        if (m.causal && s > t + m.query_offset) sc[s] = -INFINITY;
        mx = std::max(mx, sc[s]);
      }
      if (mx == -INFINITY) continue;  // fully masked: zeros
      double z = 0;
      for (Index s = 0; s < S; ++s) z += std::exp(sc[s] - mx);
      for (Index e = 0; e < Dv; ++e) {
        double acc = 0;
        for (Index s = 0; s < S; ++s) acc += std::exp(sc[s] - mx) / z * v[(bh * S + s) * Dv + e];
        out[(bh * Tq + t) * Dv + e] = acc;
      }
    }
  return out;
}

// Two attention option sets with the same dropout and identically seeded generators (the same dropout masks);
// the first also asks for the probabilities.
template <typename T>
struct TwinOptions {
  Generator g1, g2;
  AttentionOptions<T> with_probs, without_probs;
  Tensor<T> probs;
  TwinOptions(T dropout, std::uint64_t seed) : g1(seed), g2(seed) {
    with_probs.dropout = without_probs.dropout = dropout;
    with_probs.gen = &g1;
    without_probs.gen = &g2;
    with_probs.probs_out = &probs;
  }
  TwinOptions(const TwinOptions&) = delete;
  TwinOptions& operator=(const TwinOptions&) = delete;
};

}  // namespace

TEST(ScaledDotProductAttention, MatchesNaiveComputationWithEveryMaskKind) {
  Var<double> q = random_var({2, 3, 4, 5}, 1), k = random_var({2, 3, 6, 5}, 2), v = random_var({2, 3, 6, 7}, 3);
  AttentionMask<double> m;
  m.key_padding = Tensor<bool>::from({false, false, false, false, true, true, false, true, false, false, false, true},
                                     {2, 6});
  m.attn_mask = Tensor<bool>::zeros({4, 6});
  m.attn_mask(1, 2) = true;
  m.attn_bias = random_var({4, 6}, 4, false).value();
  m.causal = true;
  Tensor<double> probs;
  AttentionOptions<double> opt;
  opt.probs_out = &probs;
  const Tensor<double> y = scaled_dot_product_attention(q, k, v, m, opt).value();
  EXPECT_TRUE(y.allclose(naive_attention(q.value(), k.value(), v.value(), m, 3), 1e-12, 1e-12));
  ASSERT_EQ(probs.shape(), (Shape{2, 3, 4, 6}));
  for (Index row = 0; row < 2 * 3 * 4; ++row) {
    double sum = 0;
    for (Index s = 0; s < 6; ++s) sum += probs[row * 6 + s];
    EXPECT_NEAR(sum, 1.0, 1e-12);
  }
  EXPECT_EQ(probs.at({0, 0, 0, 1}), 0.0);  // causal: query 0 sees key 0 only
}

TEST(ScaledDotProductAttention, PassesGradcheckWithMasksAndRank3) {
  AttentionMask<double> m;
  m.key_padding = Tensor<bool>::from({false, false, true, false, true, false}, {2, 3});
  EXPECT_GRADCHECK([&](const Inputs& x) { return scaled_dot_product_attention(x[0], x[1], x[2], m); },
                   Inputs{random_var({2, 2, 3, 4}, 5), random_var({2, 2, 3, 4}, 6), random_var({2, 2, 3, 5}, 7)});
  AttentionMask<double> causal;
  causal.causal = true;
  EXPECT_GRADCHECK([&](const Inputs& x) { return scaled_dot_product_attention(x[0], x[1], x[2], causal); },
                   Inputs{random_var({3, 4, 2}, 8), random_var({3, 4, 2}, 9), random_var({3, 4, 3}, 10)});
  EXPECT_GRADCHECK([](const Inputs& x) { return scaled_dot_product_attention(x[0], x[1], x[2]); },
                   Inputs{random_var({1, 1, 1}, 11), random_var({1, 1, 1}, 12), random_var({1, 1, 1}, 13)});
}

TEST(ScaledDotProductAttention, FullyMaskedRowGivesZerosAndFiniteGradients) {
  AttentionMask<double> m;
  m.key_padding = Tensor<bool>::from({true, true, true, false, false, true}, {2, 3});
  Var<double> q = random_var({2, 2, 3}, 14), k = random_var({2, 3, 3}, 15), v = random_var({2, 3, 4}, 16);
  Var<double> y = scaled_dot_product_attention(q, k, v, m);
  for (Index i = 0; i < 2 * 4; ++i) EXPECT_EQ(y.value()[i], 0.0);  // batch 0: every key is padding
  y.backward(Tensor<double>::ones(y.shape()));
  for (const auto* g : {&q.grad(), &k.grad(), &v.grad()})
    for (Index i = 0; i < g->numel(); ++i) EXPECT_TRUE(std::isfinite((*g)[i]));
  EXPECT_GRADCHECK([&](const Inputs& x) { return scaled_dot_product_attention(x[0], x[1], x[2], m); },
                   Inputs{q, k, v});
}

TEST(ScaledDotProductAttention, DropoutIsSeededInvertedAndPassesGradcheck) {
  Var<double> q = random_var({2, 5, 4}, 17), k = random_var({2, 5, 4}, 18), v = random_var({2, 5, 3}, 19);
  auto run = [](const Inputs& x) {
    Generator gen(42);
    AttentionOptions<double> opt;
    opt.dropout = 0.3;
    opt.gen = &gen;
    return scaled_dot_product_attention(x[0], x[1], x[2], {}, opt);
  };
  EXPECT_TRUE(run({q, k, v}).value().equal(run({q, k, v}).value()));
  EXPECT_FALSE(run({q, k, v}).value().allclose(scaled_dot_product_attention(q, k, v).value()));
  EXPECT_GRADCHECK(run, Inputs{q, k, v});
}

TEST(ScaledDotProductAttention, BadShapesAndOptionsThrow) {
  Var<float> q(Tensor<float>::zeros({2, 3, 4})), k(Tensor<float>::zeros({2, 5, 4})), v(Tensor<float>::zeros({2, 5, 6}));
  EXPECT_THROW_WITH(scaled_dot_product_attention(q, Var<float>(Tensor<float>::zeros({2, 5, 3})), v), ShapeError,
                    {"scaled_dot_product_attention", "(2, 3, 4)", "(2, 5, 3)"});
  EXPECT_THROW_WITH(scaled_dot_product_attention(q, k, Var<float>(Tensor<float>::zeros({2, 4, 6}))), ShapeError,
                    {"scaled_dot_product_attention", "sequence lengths"});
  AttentionMask<float> m;
  m.key_padding = Tensor<bool>::zeros({2, 4});
  EXPECT_THROW_WITH(scaled_dot_product_attention(q, k, v, m), ShapeError, {"key_padding", "(2, 4)", "(2, 5)"});
  AttentionOptions<float> opt;
  opt.dropout = 0.5f;
  EXPECT_THROW_WITH(scaled_dot_product_attention(q, k, v, {}, opt), ValueError, {"generator"});
  opt.dropout = 1.5f;
  EXPECT_THROW_WITH(scaled_dot_product_attention(q, k, v, {}, opt), ValueError, {"dropout", "1.5"});
}

TEST(HeadSplit, SplitAndMergeAreInversesAndPassGradcheck) {
  Var<double> qkv = random_var({2, 3, 12}, 20);
  const auto parts = split_qkv_heads(qkv, 2);
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[1].shape(), (Shape{2, 2, 3, 2}));
  EXPECT_EQ(parts[1].value().at({1, 1, 2, 0}), qkv.value().at({1, 2, 4 + 2}));  // k block, head 1, dim 0
  Var<double> x = random_var({2, 3, 6}, 21);
  EXPECT_TRUE(merge_heads(split_heads(x, 3)).value().equal(x.value()));
  EXPECT_GRADCHECK([](const Inputs& v) { return split_heads(v[0], 3); }, Inputs{x});
  EXPECT_GRADCHECK([](const Inputs& v) { return merge_heads(v[0]); }, Inputs{random_var({2, 3, 1, 2}, 22)});
  for (int j = 0; j < 3; ++j)
    EXPECT_GRADCHECK([j](const Inputs& v) { return split_qkv_heads(v[0], 2)[j]; }, Inputs{qkv});
  EXPECT_THROW_WITH(split_heads(x, 4), ShapeError, {"split_heads", "(2, 3, 6)"});
  EXPECT_THROW_WITH(split_qkv_heads(x, 4), ShapeError, {"split_qkv_heads", "(2, 3, 6)"});
}

namespace {

/// The unfused reference of the packed op: split the heads, attend, merge.
template <typename T>
Var<T> split_attend_merge(const Var<T>& qkv, Index heads, const AttentionMask<T>& m, const AttentionOptions<T>& opt) {
  const auto parts = split_qkv_heads(qkv, heads);
  return merge_heads(scaled_dot_product_attention(parts[0], parts[1], parts[2], m, opt));
}

}  // namespace

TEST(PackedSelfAttention, EqualsSplitAttendMergeWithMasksAndDropout) {
  Var<double> qkv = random_var({2, 5, 12}, 30);
  AttentionMask<double> m;
  m.key_padding = Tensor<bool>::from({false, false, false, true, true, false, false, false, false, false}, {2, 5});
  m.attn_bias = random_var({5, 5}, 31, false).value();
  for (bool causal : {false, true})
    for (double p : {0.0, 0.25}) {
      m.causal = causal;
      TwinOptions<double> o(p, 7);
      const Var<double> fused = scaled_dot_product_attention_packed(qkv, 2, m, o.with_probs);
      EXPECT_EQ(fused.shape(), (Shape{2, 5, 4}));
      EXPECT_EQ(o.probs.shape(), (Shape{2, 2, 5, 5}));
      EXPECT_EQ(o.probs.at({0, 1, 2, 3}), 0.0);  // padded key
      EXPECT_TRUE(
          fused.value().allclose(split_attend_merge(qkv, Index(2), m, o.without_probs).value(), 1e-12, 1e-14));
    }
  m.causal = true;
  EXPECT_GRADCHECK([&](const Inputs& x) { return scaled_dot_product_attention_packed(x[0], 2, m); }, Inputs{qkv});
  EXPECT_GRADCHECK([](const Inputs& x) { return scaled_dot_product_attention_packed(x[0], 3); },
                   Inputs{random_var({1, 1, 9}, 32)});
  EXPECT_GRADCHECK(
      [](const Inputs& x) {
        Generator gen(3);
        AttentionOptions<double> opt;
        opt.dropout = 0.4;
        opt.gen = &gen;
        return scaled_dot_product_attention_packed(x[0], 1, {}, opt);
      },
      Inputs{random_var({2, 3, 6}, 33)});
}

TEST(PackedSelfAttention, FloatValuesAndGradientsMatchTheUnfusedOps) {
  // Float runs the packed GEMM kernel (strided heads) where the CPU has it.
  Var<float> a(eigenformer::testing::random_tensor({3, 17, 48}, 34), true);
  Var<float> b(a.value().clone(), true);
  const Tensor<float> dy = eigenformer::testing::random_tensor({3, 17, 16}, 35);
  AttentionMask<float> m;
  m.key_padding = Tensor<bool>::zeros({3, 17});
  m.key_padding(1, 16) = true;
  Var<float> fused = scaled_dot_product_attention_packed(a, 4, m);
  Var<float> ref = split_attend_merge(b, Index(4), m, AttentionOptions<float>{});
  EXPECT_TRUE(fused.value().allclose(ref.value(), 1e-5, 1e-6));
  fused.backward(dy);
  ref.backward(dy);
  EXPECT_TRUE(a.grad().allclose(b.grad(), 1e-4, 1e-5));
}

TEST(PackedSelfAttention, RecomputedProbabilitiesGiveTheGradientsOfKeptOnes) {
  // Without probs_out the forward keeps no (B, H, T, T) probabilities and the backward recomputes them head by
  // head: the gradients must be those of a forward that kept them, bit for bit, with every mask kind and dropout.
  const Tensor<float> x = eigenformer::testing::random_tensor({2, 40, 96}, 36);
  const Tensor<float> dy = eigenformer::testing::random_tensor({2, 40, 32}, 37);
  AttentionMask<float> m;
  m.key_padding = Tensor<bool>::zeros({2, 40});
  for (Index s = 30; s < 40; ++s) m.key_padding(1, s) = true;
  m.attn_bias = eigenformer::testing::random_tensor({40, 40}, 38);
  for (bool causal : {false, true})
    for (float p : {0.0f, 0.3f}) {
      m.causal = causal;
      Var<float> a(x.clone(), true), b(x.clone(), true);
      TwinOptions<float> o(p, 9);  // kept probabilities, recomputed ones
      Var<float> ya = scaled_dot_product_attention_packed(a, 2, m, o.with_probs);
      Var<float> yb = scaled_dot_product_attention_packed(b, 2, m, o.without_probs);
      EXPECT_TRUE(o.probs.defined());
      EXPECT_TRUE(ya.value().equal(yb.value()));
      ya.backward(dy);
      yb.backward(dy);
      EXPECT_TRUE(a.grad().equal(b.grad())) << "causal " << causal << ", dropout " << p;
    }
  // The unpacked form, (B, H, T, D) operands.
  Var<float> q(eigenformer::testing::random_tensor({2, 2, 40, 16}, 39), true);
  Var<float> k(eigenformer::testing::random_tensor({2, 2, 40, 16}, 40), true);
  Var<float> v(eigenformer::testing::random_tensor({2, 2, 40, 16}, 41), true);
  std::vector<Tensor<float>> grads[2];
  for (int keep = 0; keep < 2; ++keep) {
    Tensor<float> probs;
    AttentionOptions<float> o;
    if (keep) o.probs_out = &probs;
    for (const Var<float>* in : {&q, &k, &v}) in->zero_grad();
    scaled_dot_product_attention(q, k, v, m, o).backward(eigenformer::testing::random_tensor({2, 2, 40, 16}, 42));
    for (const Var<float>* in : {&q, &k, &v}) grads[keep].push_back(in->grad().clone());
  }
  for (std::size_t i = 0; i < 3; ++i) EXPECT_TRUE(grads[0][i].equal(grads[1][i])) << "input " << i;
}

TEST(PackedSelfAttention, BadShapesAndOptionsThrow) {
  Var<float> qkv(Tensor<float>::zeros({2, 3, 12}));
  EXPECT_THROW_WITH(scaled_dot_product_attention_packed(qkv, 3), ShapeError,
                    {"scaled_dot_product_attention_packed", "(2, 3, 12)", "num_heads = 3"});
  EXPECT_THROW_WITH(scaled_dot_product_attention_packed(Var<float>(Tensor<float>::zeros({3, 12})), 2), ShapeError,
                    {"scaled_dot_product_attention_packed", "(3, 12)"});
  AttentionMask<float> m;
  m.key_padding = Tensor<bool>::zeros({2, 4});
  EXPECT_THROW_WITH(scaled_dot_product_attention_packed(qkv, 2, m), ShapeError,
                    {"scaled_dot_product_attention_packed", "key_padding", "(2, 4)", "(2, 3)"});
  AttentionOptions<float> opt;
  opt.dropout = 0.5f;
  EXPECT_THROW_WITH(scaled_dot_product_attention_packed(qkv, 2, {}, opt), ValueError, {"generator"});
}

TEST(MultiHeadAttention, SeparateProjectionsEqualSplitAttendMergeAndPassGradcheck) {
  // q (B, T, C), k and v (B, S, C) with S > T; causal with the queries after S - T cached keys.
  const Index B = 2, Tq = 3, S = 5, H = 2, D = 3;
  Var<double> q = random_var({B, Tq, H * D}, 50), k = random_var({B, S, H * D}, 51), v = random_var({B, S, H * D}, 52);
  AttentionMask<double> m;
  m.key_padding = Tensor<bool>::from({true, false, false, false, false, false, false, false, false, false}, {B, S});
  for (bool causal : {false, true}) {
    m.causal = causal;
    m.query_offset = causal ? S - Tq : 0;
    const Var<double> y = multi_head_attention(q, k, v, H, m);
    ASSERT_EQ(y.shape(), (Shape{B, Tq, H * D}));
    const Tensor<double> ref = merge_heads(Var<double>(naive_attention(split_heads(q, H).value(), split_heads(k, H).value(),
                                                                       split_heads(v, H).value(), m, H)))
                                   .value();
    EXPECT_TRUE(y.value().allclose(ref, 1e-12, 1e-14)) << "causal " << causal;
    EXPECT_GRADCHECK([&](const Inputs& x) { return multi_head_attention(x[0], x[1], x[2], H, m); }, Inputs{q, k, v});
  }
  // Causal after a cache: query t sees keys up to t + query_offset (here the first query sees keys 0..2).
  Tensor<double> probs;
  AttentionOptions<double> opt;
  opt.probs_out = &probs;
  m.key_padding = Tensor<bool>();
  multi_head_attention(q, k, v, H, m, opt);
  EXPECT_GT(probs.at({0, 0, 0, 2}), 0.0);
  EXPECT_EQ(probs.at({0, 0, 0, 3}), 0.0);
  EXPECT_GT(probs.at({0, 0, 2, 4}), 0.0);
  // The same tensor as q, k and v (no projections): each use gets its gradient.
  Var<double> x = random_var({1, 4, 4}, 53);
  m.causal = false;
  EXPECT_GRADCHECK([&](const Inputs& in) { return multi_head_attention(in[0], in[0], in[0], 2, m); }, Inputs{x});
  EXPECT_THROW_WITH(multi_head_attention(q, k, random_var({B, 4, H * D}, 54), H), ShapeError,
                    {"multi_head_attention", "(2, 4, 6)", "k and v (B, S, C)"});
}

TEST(CachedAttention, EqualsMultiHeadAttentionOverTheCachedPositionsReadInPlace) {
  // A cache of capacity 7 for B = 2 sequences, width C = 6 (H = 3, D = 2), holding S = 5 positions of which the
  // last Tq = 2 are the new queries' own; sequence 1's first position is padding.
  const Index B = 2, cap = 7, C = 6, H = 3, S = 5, Tq = 2;
  const Tensor<double> k_cache = random_var({B, cap, C}, 61, false).value();
  const Tensor<double> v_cache = random_var({B, cap, C}, 62, false).value();
  const Tensor<double> qkv = random_var({B, Tq, 3 * C}, 63, false).value();  // queries in columns [0, C)
  Tensor<bool> padding = Tensor<bool>::zeros({B, cap});
  padding(1, 0) = true;
  KeyValueView<double> view;
  view.k = k_cache.data();
  view.v = v_cache.data();
  view.batch = B;
  view.width = C;
  view.ld = C;
  view.batch_stride = cap * C;
  view.length = S;
  view.key_padding = padding;
  const Tensor<double> got = cached_multi_head_attention(qkv, H, view);
  ASSERT_EQ(got.shape(), (Shape{B, Tq, C}));
  // The reference: the first S positions copied out, multi_head_attention with a causal mask offset by S - Tq.
  Tensor<double> q = Tensor<double>::empty({B, Tq, C}), k = Tensor<double>::empty({B, S, C}), v = k.clone();
  Tensor<bool> kp = Tensor<bool>::empty({B, S});
  for (Index b = 0; b < B; ++b) {
    for (Index t = 0; t < Tq; ++t) std::copy_n(qkv.data() + (b * Tq + t) * 3 * C, C, q.data() + (b * Tq + t) * C);
    std::copy_n(k_cache.data() + b * cap * C, S * C, k.data() + b * S * C);
    std::copy_n(v_cache.data() + b * cap * C, S * C, v.data() + b * S * C);
    std::copy_n(padding.data() + b * cap, S, kp.data() + b * S);
  }
  AttentionMask<double> m;
  m.causal = true;
  m.query_offset = S - Tq;
  m.key_padding = kp;
  const Var<double> want = multi_head_attention(Var<double>(q), Var<double>(k), Var<double>(v), H, m);
  EXPECT_TRUE(got.allclose(want.value(), 1e-13, 1e-14));
  // A custom scale, and a query whose keys are all padding gets zeros.
  EXPECT_TRUE(cached_multi_head_attention(qkv, H, view, 0.25).allclose(
      [&] {
        AttentionOptions<double> o;
        o.scale = 0.25;
        return multi_head_attention(Var<double>(q), Var<double>(k), Var<double>(v), H, m, o).value();
      }(),
      1e-13, 1e-14));
  Tensor<bool> all_padding = Tensor<bool>::full({B, cap}, true);
  view.key_padding = all_padding;
  EXPECT_TRUE(cached_multi_head_attention(qkv, H, view).equal(Tensor<double>::zeros({B, Tq, C})));
  // Bad views and shapes.
  view.key_padding = padding;
  EXPECT_THROW_WITH(cached_multi_head_attention(qkv, 4, view), ValueError,
                    {"cached_multi_head_attention", "num_heads is 4", "divisible"});
  EXPECT_THROW_WITH(cached_multi_head_attention(Tensor<double>::zeros({3, Tq, C}), H, view), ShapeError,
                    {"q is (3, 2, 6)", "expected (2, Tq, W)"});
  view.length = 1;
  EXPECT_THROW_WITH(cached_multi_head_attention(qkv, H, view), ValueError, {"2 queries but the cache holds 1"});
  view.length = 8;
  EXPECT_THROW_WITH(cached_multi_head_attention(qkv, H, view), ValueError, {"batch stride >= length * ld"});
  view.length = S;
  view.key_padding = Tensor<bool>::zeros({B, 3});
  EXPECT_THROW_WITH(cached_multi_head_attention(qkv, H, view), ShapeError, {"key_padding is (2, 3)", "P >= 5"});
}

}  // namespace attention_test
