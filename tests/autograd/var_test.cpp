#include "eigenformer/autograd/var.hpp"

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#endif

#include <array>
#include <cmath>
#include <memory>
#include <thread>
#include <vector>

#include "eigenformer/ops/elementwise.hpp"
#include "support/test_support.hpp"

using namespace eigenformer;

namespace var_test {

namespace {

// The sum of every element, written here with the op pattern so that these tests depend only on the engine and
// elementwise.hpp.
template <typename T>
Var<T> sum_all(const Var<T>& x) {
  Var<T> y(Tensor<T>::scalar(x.value().array().sum()), {x}, "sum_all");
  const Shape shape = x.shape();
  y.on_backward([x, shape](const Tensor<T>& dy) { x.accumulate_grad(Tensor<T>::full(shape, dy.item())); });
  return y;
}

// An op whose backward produces a gradient of the wrong shape.
Var<double> bad_shape_op(const Var<double>& x) {
  Var<double> y(x.value().clone(), {x}, "bad_shape_op");
  y.on_backward([x](const Tensor<double>&) { x.accumulate_grad(Tensor<double>::zeros({x.numel() + 1})); });
  return y;
}

Var<double> leaf(std::initializer_list<double> values, bool requires_grad = true) {
  return Var<double>(Tensor<double>::from(std::vector<double>(values)), requires_grad);
}

// Runs f on a thread whose stack is `bytes` large: deep recursion there crashes instead of passing silently.
// Without POSIX threads f runs on the calling thread (a deep enough recursion still overflows the default stack).
template <typename F>
void run_with_small_stack(std::size_t bytes, F f) {
#if defined(__unix__) || defined(__APPLE__)
  pthread_attr_t attr;
  ASSERT_EQ(pthread_attr_init(&attr), 0);
  ASSERT_EQ(pthread_attr_setstacksize(&attr, bytes), 0);
  auto trampoline = [](void* p) -> void* {
    (*static_cast<F*>(p))();
    return nullptr;
  };
  pthread_t thread;
  ASSERT_EQ(pthread_create(&thread, &attr, +trampoline, &f), 0);
  ASSERT_EQ(pthread_join(thread, nullptr), 0);
  pthread_attr_destroy(&attr);
#else
  (void)bytes;
  f();
#endif
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// Leaves and requires_grad

TEST(Var, LeavesHoldTheirValueAndNoGradient) {
  const Tensor<double> t = Tensor<double>::from({1, 2}, {2});
  Var<double> a(t);
  EXPECT_TRUE(a.defined());
  EXPECT_TRUE(a.is_leaf());
  EXPECT_FALSE(a.requires_grad());
  EXPECT_FALSE(a.has_grad());
  EXPECT_STREQ(a.op_name(), "leaf");
  EXPECT_TRUE(a.value().shares_buffer_with(t));
  EXPECT_EQ(a.shape(), Shape{2});
  EXPECT_EQ(a.numel(), 2);
  EXPECT_EQ(a.dim(), 1);
  EXPECT_EQ(a.size(-1), 2);
  Var<double> b(t, true);
  EXPECT_TRUE(b.requires_grad());
  EXPECT_TRUE(b.is_leaf());
  EXPECT_EQ(Var<double>(Tensor<double>::scalar(3.0)).item(), 3.0);
  b.set_requires_grad(false);
  EXPECT_FALSE(b.requires_grad());
  EXPECT_TRUE(b.set_requires_grad(true).requires_grad());
}

TEST(Var, GradToAccumulateIsAnOpResultsUnsharedGradient) {
  Var<double> x = leaf({1, 2});
  EXPECT_EQ(x.grad_to_accumulate(), nullptr);  // no gradient yet
  sum_all(x).backward();
  ASSERT_TRUE(x.has_grad());
  EXPECT_EQ(x.grad_to_accumulate(), nullptr);  // a leaf's gradient changes only through accumulate_grad

  // An op result, seen from the backward of the op that consumes it.
  const Var<double> h = mul(x, x);
  double* before = nullptr;
  double* unique = nullptr;
  double* grad_data = nullptr;
  double* shared = nullptr;
  Var<double> probe(h.value().clone(), {h}, "probe");
  probe.on_backward([&, h](const Tensor<double>& dy) {
    before = h.grad_to_accumulate();  // no gradient yet
    h.accumulate_grad(dy.clone());
    unique = h.grad_to_accumulate();
    grad_data = Var<double>(h).grad().data();
    const Tensor<double> held = h.grad();  // another handle on the buffer: writing into it would change `held`
    shared = h.grad_to_accumulate();
  });
  x.zero_grad();
  sum_all(probe).backward();
  EXPECT_EQ(before, nullptr);
  ASSERT_NE(unique, nullptr);
  EXPECT_EQ(unique, grad_data);
  EXPECT_EQ(shared, nullptr);
  EXPECT_TRUE(x.grad().allclose(Tensor<double>::from({2.0, 4.0}), 0.0, 0.0));  // d(x^2)/dx = 2x
}

TEST(Var, BackwardFromSeveralThreadsSumsIntoSharedLeaves) {
  // Every thread builds its own graphs over the same leaves: w gets the sum of all their gradients, c (no grad)
  // none. Run under ThreadSanitizer by .ci/run.
  Var<double> w = leaf({0.5, -1.0, 2.0});
  const Var<double> c = leaf({1.0, 1.0, 1.0}, false);
  constexpr int kThreads = 4, kSteps = 200;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&] {
      for (int step = 0; step < kSteps; ++step) {
        sum_all(mul(add(w, c), w)).backward();  // (w + 1) w: gradient 2w + 1
        w.backward(Tensor<double>::ones({3}));   // a leaf as the output: its seed is its gradient
      }
    });
  for (auto& th : threads) th.join();
  // 2w + 2 per step, small integers: every order of the additions gives the same, exact sum.
  const double n = kThreads * kSteps;
  EXPECT_TRUE(w.grad().allclose(Tensor<double>::from({3.0 * n, 0.0, 6.0 * n}), 0.0, 0.0));
  EXPECT_FALSE(c.has_grad());
}

TEST(PartGradients, PartsAddInPartOrderWhateverOrderTheThreadsFinishIn) {
  // Addends whose float sum depends on the order: 1e8 + 1 + ... rounds differently from 1 + ... + 1e8.
  const std::vector<Tensor<float>> addends = {Tensor<float>::from({1e8f, 3.0f}), Tensor<float>::from({1.0f, 1e-7f}),
                                              Tensor<float>::from({1.0f, -3.0f}), Tensor<float>::from({-1e8f, 1.0f})};
  const Index parts = static_cast<Index>(addends.size());
  auto contribute = [&](Var<float>& w, Index p) {
    Var<float> y(w.value().clone(), {w}, "identity");
    y.on_backward([w](const Tensor<float>& dy) { w.accumulate_grad(dy.clone()); });
    y.backward(addends[static_cast<std::size_t>(p)]);
  };
  auto run = [&](const std::vector<Index>& thread_order) {
    Var<float> w(Tensor<float>::zeros({2}), true);
    PartGradients<float> gradients(parts);
    for (Index p : thread_order) {  // one thread at a time, in this order
      std::thread([&] {
        auto part = gradients.part(p);
        contribute(w, p);
      }).join();
      EXPECT_FALSE(w.has_grad());  // held until finish
    }
    gradients.finish();
    return w.grad().clone();
  };
  const Tensor<float> forward = run({0, 1, 2, 3}), backward = run({3, 2, 1, 0}), mixed = run({2, 0, 3, 1});
  EXPECT_TRUE(forward.equal(backward));
  EXPECT_TRUE(forward.equal(mixed));
  // The same bits as adding the parts one after another on one thread; arrival order would differ.
  Var<float> serial(Tensor<float>::zeros({2}), true), reversed(Tensor<float>::zeros({2}), true);
  for (Index p = 0; p < parts; ++p) contribute(serial, p);
  for (Index p = parts - 1; p >= 0; --p) contribute(reversed, p);
  EXPECT_TRUE(forward.equal(serial.grad()));
  EXPECT_FALSE(reversed.grad().equal(serial.grad()));
}

TEST(PartGradients, PartsOnSeveralThreadsSumEveryContributionAndRejectABadPart) {
  // Run under ThreadSanitizer by .ci/run: parts run at once, each many backward passes into the same leaf.
  Var<double> w = leaf({0.5, -1.0, 2.0});
  constexpr int kParts = 4, kSteps = 100;
  PartGradients<double> gradients(kParts);
  std::vector<std::thread> threads;
  for (int t = 0; t < kParts; ++t)
    threads.emplace_back([&, t] {
      auto part = gradients.part(t);
      for (int step = 0; step < kSteps; ++step) sum_all(mul(w, w)).backward();
    });
  for (auto& th : threads) th.join();
  gradients.finish();
  const double n = kParts * kSteps;
  EXPECT_TRUE(w.grad().allclose(Tensor<double>::from({1.0 * n, -2.0 * n, 4.0 * n}), 0.0, 0.0));
  EXPECT_THROW(gradients.part(kParts), ValueError);
  EXPECT_THROW(PartGradients<double>(0), ValueError);
}

namespace {
struct ReadyLog : GradientReadyObserver<double> {
  std::vector<std::pair<detail::Node<double>*, Tensor<double>>> ready;
  void gradient_ready(const std::shared_ptr<detail::Node<double>>& leaf) override {
    ready.emplace_back(leaf.get(), leaf->grad.clone());
  }
};
}  // namespace

TEST(GradientReadyObserver, HearsOfEachLeafOnceWhenItsGradientIsFinal) {
  // y = sum((w1 * x) * w2) + sum(w1): w2 is final after the outer product's backward, w1 only after both uses.
  Var<double> w1 = leaf({1.0, 2.0}), w2 = leaf({3.0, -1.0}), unused = leaf({5.0});
  const Var<double> x = leaf({0.5, 4.0}, false);
  ReadyLog log;
  {
    GradientReadyScope<double> scope(log);
    add(sum_all(mul(mul(w1, x), w2)), sum_all(w1)).backward();
  }
  ASSERT_EQ(log.ready.size(), 2u);
  EXPECT_EQ(log.ready[0].first, w2.node_ptr().get());
  EXPECT_EQ(log.ready[1].first, w1.node_ptr().get());
  // What the observer saw is the final gradient.
  EXPECT_TRUE(log.ready[0].second.equal(w2.grad()));
  EXPECT_TRUE(log.ready[1].second.equal(w1.grad()));
  EXPECT_TRUE(w1.grad().allclose(Tensor<double>::from({2.5, -3.0}), 0.0, 0.0));  // x * w2 + 1

  // A leaf used twice by one op (w * w) is reported once, after that op; outside the scope nothing is heard.
  log.ready.clear();
  {
    GradientReadyScope<double> scope(log);
    sum_all(mul(w2, w2)).backward();
    w2.backward(Tensor<double>::ones({2}));  // a leaf as the output: ready at once
  }
  ASSERT_EQ(log.ready.size(), 2u);
  EXPECT_EQ(log.ready[0].first, w2.node_ptr().get());
  EXPECT_EQ(log.ready[1].first, w2.node_ptr().get());
  sum_all(w1).backward();
  EXPECT_EQ(log.ready.size(), 2u);
}

TEST(Var, UndefinedVarThrowsAutogradErrorOnUse) {
  const Var<double> u;
  EXPECT_FALSE(u.defined());
  EXPECT_THROW_WITH(u.value(), AutogradError, {"Var::value: the Var is undefined", "expected a Var made from"});
  EXPECT_THROW_WITH(u.requires_grad(), AutogradError, {"Var::requires_grad: the Var is undefined"});
  EXPECT_THROW_WITH(u.backward(), AutogradError, {"Var::backward: the Var is undefined"});
  EXPECT_THROW_WITH(u.grad(), AutogradError, {"Var::grad: the Var is undefined"});
  EXPECT_THROW_WITH(u.accumulate_grad(Tensor<double>::ones({1})), AutogradError,
                    {"Var::accumulate_grad: the Var is undefined"});
}

TEST(Var, RequiresGradPropagatesFromAnyInput) {
  Var<double> c = leaf({1, 2}, false), g = leaf({3, 4}, true);
  Var<double> y = mul(c, g);
  EXPECT_TRUE(y.requires_grad());
  EXPECT_FALSE(y.is_leaf());
  EXPECT_STREQ(y.op_name(), "mul");
  Var<double> z = exp(y);  // through a chain
  EXPECT_TRUE(z.requires_grad());
  Var<double> k = mul(c, c);  // no input requires grad: a leaf result, no graph
  EXPECT_FALSE(k.requires_grad());
  EXPECT_TRUE(k.is_leaf());
  EXPECT_STREQ(k.op_name(), "mul");
}

TEST(Var, ResultsThatDoNotRequireGradDropTheirBackwardAndItsCaptures) {
  auto sentinel = std::make_shared<int>(0);
  Var<double> c = leaf({1}, false);
  Var<double> y(c.value().clone(), {c}, "probe");
  y.on_backward([sentinel](const Tensor<double>&) {});
  EXPECT_EQ(sentinel.use_count(), 1);  // nothing recorded
  Var<double> g = leaf({1}, true);
  Var<double> z(g.value().clone(), {g}, "probe");
  z.on_backward([sentinel](const Tensor<double>&) {});
  EXPECT_EQ(sentinel.use_count(), 2);  // recorded
}

TEST(Var, BackwardClosuresOfAnySizeRunOnceAndReleaseTheirCapturesWithTheGraph) {
  auto sentinel = std::make_shared<int>(0);
  std::array<double, 1024> big{};  // 8 KiB of captures: more than a pool block holds
  big[1023] = 3.0;
  Var<double> x = leaf({1, 2});
  int small_calls = 0, big_calls = 0;
  Var<double> y;
  {
    Var<double> a(x.value().clone(), {x}, "small");
    a.on_backward([x, sentinel, &small_calls](const Tensor<double>& dy) {
      ++small_calls;
      x.accumulate_grad(dy);
    });
    Var<double> b(a.value().clone(), {a}, "big");
    b.on_backward([a, big, sentinel, &big_calls](const Tensor<double>& dy) {
      ++big_calls;
      Tensor<double> g = dy.clone();
      g.array() *= big[1023];
      a.accumulate_grad(std::move(g));
    });
    y = sum_all(b);
  }
  EXPECT_EQ(sentinel.use_count(), 3);
  y.backward();
  EXPECT_EQ(small_calls, 1);
  EXPECT_EQ(big_calls, 1);
  EXPECT_EQ(x.grad()[0], 3.0);
  EXPECT_EQ(x.grad()[1], 3.0);
  EXPECT_EQ(sentinel.use_count(), 1);  // both closures were destroyed as backward freed their nodes
}

TEST(Var, BackwardFunctionIsAMoveOnlyCallableThatEmptiesOnMoveAndNull) {
  auto sentinel = std::make_shared<int>(0);
  double seen = 0;
  detail::BackwardFunction<double> f([sentinel, &seen](const Tensor<double>& g) { seen = g[0]; });
  EXPECT_TRUE(static_cast<bool>(f));
  detail::BackwardFunction<double> g = std::move(f);
  EXPECT_FALSE(static_cast<bool>(f));  // NOLINT(bugprone-use-after-move): moved-from is empty, as documented
  Tensor<double> g_value = Tensor<double>::scalar(2.5);
  g(g_value);
  EXPECT_EQ(seen, 2.5);
  EXPECT_EQ(sentinel.use_count(), 2);
  f = std::move(g);
  EXPECT_EQ(sentinel.use_count(), 2);
  f = nullptr;
  EXPECT_FALSE(static_cast<bool>(f));
  EXPECT_EQ(sentinel.use_count(), 1);
}

TEST(Var, SetRequiresGradOnANonLeafThrowsNamingTheOp) {
  Var<double> x = leaf({1, 2});
  Var<double> y = exp(x);
  EXPECT_THROW_WITH(y.set_requires_grad(false), AutogradError, {"set_requires_grad", "leaves", "exp"});
  EXPECT_TRUE(y.requires_grad());
}

// ---------------------------------------------------------------------------------------------------------------
// Grad mode

TEST(GradMode, NoGradGuardRecordsNothing) {
  Var<double> x = leaf({1, 2});
  EXPECT_TRUE(is_grad_enabled());
  Var<double> y;
  {
    NoGradGuard no_grad;
    EXPECT_FALSE(is_grad_enabled());
    y = exp(mul(x, x));
  }
  EXPECT_TRUE(is_grad_enabled());
  EXPECT_FALSE(y.requires_grad());
  EXPECT_TRUE(y.is_leaf());
  EXPECT_TRUE(y.value().allclose(Tensor<double>::from({std::exp(1.0), std::exp(4.0)}, {2}), 1e-15));
  EXPECT_TRUE(exp(x).requires_grad());  // recording is back
}

TEST(GradMode, IsThreadLocal) {
  Var<double> x = leaf({1, 2});
  NoGradGuard no_grad;
  bool other_enabled = false, other_records = false;
  std::thread t([&] {
    other_enabled = is_grad_enabled();
    other_records = exp(x).requires_grad();
  });
  t.join();
  EXPECT_TRUE(other_enabled);
  EXPECT_TRUE(other_records);
  EXPECT_FALSE(exp(x).requires_grad());  // this thread still does not record
}

TEST(GradMode, GuardsNestAndEnableGradGuardReenables) {
  {
    NoGradGuard outer;
    {
      NoGradGuard inner;
      EXPECT_FALSE(is_grad_enabled());
    }
    EXPECT_FALSE(is_grad_enabled());  // the inner guard restores the outer state, not "enabled"
    {
      EnableGradGuard enable;
      EXPECT_TRUE(is_grad_enabled());
      Var<double> x = leaf({1});
      EXPECT_TRUE(exp(x).requires_grad());
      {
        NoGradGuard again;
        EXPECT_FALSE(is_grad_enabled());
      }
      EXPECT_TRUE(is_grad_enabled());
    }
    EXPECT_FALSE(is_grad_enabled());
  }
  EXPECT_TRUE(is_grad_enabled());
  {
    EnableGradGuard enable;  // already enabled: stays enabled, and stays so after
    EXPECT_TRUE(is_grad_enabled());
  }
  EXPECT_TRUE(is_grad_enabled());
}

// ---------------------------------------------------------------------------------------------------------------
// detach and zero_grad

TEST(Var, DetachSharesTheValueAndCutsTheGraph) {
  Var<double> x = leaf({2, 3});
  Var<double> d = x.detach();
  EXPECT_TRUE(d.is_leaf());
  EXPECT_FALSE(d.requires_grad());
  EXPECT_TRUE(d.value().shares_buffer_with(x.value()));
  Var<double> y = sum_all(mul(d, x));  // dy/dx counts only the non-detached factor: d
  y.backward();
  EXPECT_TRUE(x.grad().equal(Tensor<double>::from({2, 3}, {2})));
  EXPECT_FALSE(d.has_grad());
  Var<double> e = exp(x).detach();
  EXPECT_TRUE(e.is_leaf());
  EXPECT_FALSE(e.requires_grad());
}

TEST(Var, ZeroGradDropsOrZeroesTheGradient) {
  Var<double> x = leaf({1, 2});
  sum_all(mul(x, x)).backward();
  ASSERT_TRUE(x.has_grad());
  const double* buffer = x.grad().data();
  x.zero_grad(false);  // zeroes in place, keeps the buffer
  EXPECT_TRUE(x.has_grad());
  EXPECT_EQ(x.grad().data(), buffer);
  EXPECT_TRUE(x.grad().equal(Tensor<double>::zeros({2})));
  sum_all(mul(x, x)).backward();
  EXPECT_TRUE(x.grad().equal(Tensor<double>::from({2, 4}, {2})));
  x.zero_grad();  // set_to_none, PyTorch's default
  EXPECT_FALSE(x.has_grad());
  x.zero_grad(false);  // nothing to zero: stays undefined
  EXPECT_FALSE(x.has_grad());
  sum_all(mul(x, x)).backward();
  EXPECT_TRUE(x.grad().equal(Tensor<double>::from({2, 4}, {2})));
}

// ---------------------------------------------------------------------------------------------------------------
// backward

TEST(Backward, NonScalarOutputWithoutSeedThrowsAutogradError) {
  Var<double> x(Tensor<double>::ones({2, 3}), true);
  EXPECT_THROW_WITH(exp(x).backward(), AutogradError, {"backward", "(2, 3)", "one element", "seed"});
  EXPECT_FALSE(x.has_grad());
}

TEST(Backward, OneElementOutputsOfAnyRankNeedNoSeed) {
  Var<double> x(Tensor<double>::from({3}, {1, 1}), true);
  mul(x, x).backward();
  EXPECT_TRUE(x.grad().equal(Tensor<double>::from({6}, {1, 1})));
}

TEST(Backward, OutputThatDoesNotRequireGradThrows) {
  Var<double> c = leaf({1}, false);
  EXPECT_THROW_WITH(exp(c).backward(), AutogradError, {"backward", "does not require grad"});
}

TEST(Backward, SeedOfTheWrongShapeThrowsShapeError) {
  Var<double> x = leaf({1, 2});
  EXPECT_THROW_WITH(exp(x).backward(Tensor<double>::ones({3})), ShapeError, {"backward", "seed is (3)", "(2)"});
}

TEST(Backward, ExplicitSeedWeightsTheGradient) {
  // torch: x = [0.5, -1.5]; (x * x).backward([2, 3]) -> x.grad = [2, -9]
  Var<double> x = leaf({0.5, -1.5});
  mul(x, x).backward(Tensor<double>::from({2, 3}, {2}));
  EXPECT_TRUE(x.grad().equal(Tensor<double>::from({2, -9}, {2})));
}

TEST(Backward, AValueUsedTwiceAccumulates) {
  Var<double> x = leaf({1, -2, 3});
  sum_all(mul(x, x)).backward();
  EXPECT_TRUE(x.grad().equal(Tensor<double>::from({2, -4, 6}, {3})));
  // Along two paths of different lengths: y = x + exp(x) -> 1 + e^x.
  Var<double> z = leaf({0, 1});
  sum_all(add(z, exp(z))).backward();
  EXPECT_TRUE(z.grad().allclose(Tensor<double>::from({2.0, 1.0 + std::exp(1.0)}, {2}), 1e-15));
}

TEST(Backward, BackwardOnALeafAccumulatesTheSeed) {
  Var<double> x = leaf({1, 2});
  x.backward(Tensor<double>::from({3, 4}, {2}));
  x.backward(Tensor<double>::from({1, 1}, {2}));
  EXPECT_TRUE(x.grad().equal(Tensor<double>::from({4, 5}, {2})));
}

TEST(Backward, GradientsAccumulateAcrossTwoGraphsAsInPyTorch) {
  // torch, float64: x = [1, 2, 3]; (x*x*x).sum().backward() -> [3, 12, 27]; then exp(x).sum().backward()
  // -> [5.71828182845904465, 19.38905609893065218, 47.08553692318766792]
  Var<double> x = leaf({1, 2, 3});
  sum_all(mul(mul(x, x), x)).backward();
  EXPECT_TRUE(x.grad().equal(Tensor<double>::from({3, 12, 27}, {3})));
  sum_all(exp(x)).backward();
  EXPECT_TRUE(x.grad().allclose(
      Tensor<double>::from({5.71828182845904465, 19.38905609893065218, 47.08553692318766792}, {3}), 1e-15, 0));
}

TEST(Backward, GradientsDoNotAliasTheSeedOrEachOther) {
  Var<double> a = leaf({1, 2}), b = leaf({3, 4});
  const Tensor<double> seed = Tensor<double>::from({1, 1}, {2});
  add(a, b).backward(seed);
  EXPECT_FALSE(a.grad().shares_buffer_with(seed));
  EXPECT_FALSE(a.grad().shares_buffer_with(b.grad()));
  a.grad()[0] = 100;
  EXPECT_EQ(b.grad()[0], 1.0);
  EXPECT_EQ(seed[0], 1.0);
}

TEST(Backward, RetainGraphAllowsASecondBackward) {
  Var<double> x = leaf({1, 2});
  Var<double> y = sum_all(mul(x, x));
  y.backward(/*retain_graph=*/true);
  y.backward(true);
  EXPECT_TRUE(x.grad().equal(Tensor<double>::from({4, 8}, {2})));  // 2 * 2x
  y.backward();  // the last one frees the graph
  EXPECT_TRUE(x.grad().equal(Tensor<double>::from({6, 12}, {2})));
  EXPECT_THROW_WITH(y.backward(), AutogradError, {"backward", "freed", "retain_graph"});
}

TEST(Backward, WithoutRetainGraphASecondBackwardThrows) {
  Var<double> x = leaf({1, 2});
  Var<double> y = sum_all(exp(x));
  y.backward();
  EXPECT_THROW_WITH(y.backward(), AutogradError, {"backward", "sum_all", "freed"});
  // Through a shared intermediate reached from another output: torch's "backward through the graph a second time".
  Var<double> h = exp(x);
  Var<double> a = sum_all(h), b = sum_all(neg(h));
  a.backward();
  EXPECT_THROW_WITH(b.backward(), AutogradError, {"backward", "exp", "freed"});
}

TEST(Backward, AGradientOfTheWrongShapeThrowsNamingTheOp) {
  Var<double> x = leaf({1, 2});
  EXPECT_THROW_WITH(sum_all(bad_shape_op(x)).backward(), AutogradError, {"backward of bad_shape_op", "gradient is (3)", "expected (2)", "a leaf"});
}

// ---------------------------------------------------------------------------------------------------------------
// Deep graphs and memory

TEST(Backward, A200000NodeChainNeedsNoRecursion) {
  // 256 KiB of stack: recursing once per node (in the sort, the backward loop or the destructors) would overflow it.
  constexpr int kDepth = 200000;
  double grad_after_backward = 0, grad_retained = 0;
  bool freed_without_backward = false;
  run_with_small_stack(256 * 1024, [&] {
    {  // backward, then destruction of the freed graph
      Var<double> x(Tensor<double>::scalar(1.0), true);
      Var<double> y = x;
      for (int i = 0; i < kDepth; ++i) y = add_scalar(y, 1e-6);
      y = scale(y, 2.0);
      y.backward();
      grad_after_backward = x.grad().item();
    }
    {  // backward retaining the graph, then destruction of the whole chain
      Var<double> x(Tensor<double>::scalar(1.0), true);
      Var<double> y = x;
      for (int i = 0; i < kDepth; ++i) y = neg(y);
      y.backward(true);
      grad_retained = x.grad().item();
    }
    {  // no backward at all: the chain is destroyed when y goes
      Var<double> x(Tensor<double>::scalar(1.0), true);
      std::weak_ptr<detail::Node<double>> first;
      {
        Var<double> y = exp(x);
        first = y.node_ptr();
        for (int i = 0; i < kDepth; ++i) y = mul(y, x);
      }
      freed_without_backward = first.expired();
    }
  });
  EXPECT_EQ(grad_after_backward, 2.0);
  EXPECT_EQ(grad_retained, 1.0);  // an even number of negations
  EXPECT_TRUE(freed_without_backward);
}

TEST(Backward, TheGraphFreesItselfAfterBackward) {
  Var<double> x = leaf({1, 2});
  std::weak_ptr<detail::Node<double>> inner;
  Var<double> y;
  {
    Var<double> h = exp(x);
    inner = h.node_ptr();
    y = sum_all(neg(h));
  }
  EXPECT_FALSE(inner.expired());  // the output still holds the graph
  y.backward();
  EXPECT_TRUE(inner.expired());   // freed by backward while y is still alive
  EXPECT_TRUE(x.has_grad());      // leaves and their gradients stay
  EXPECT_TRUE(y.value().defined());
}

TEST(Backward, AnIntermediateNobodyHoldsIsFreedBeforeBackwardReachesItsInputs) {
  // Activations are released as backward walks down the graph, not all at its end: the peak memory of a training
  // step is then the forward's activations plus the gradients in flight, not both whole sets.
  Var<double> x = leaf({1, 2});
  std::weak_ptr<detail::Node<double>> upper, held;
  bool upper_freed = false, held_freed = true;
  Var<double> y;
  Var<double> kept;
  {
    Var<double> probe(x.value().clone(), {x}, "probe");
    probe.on_backward([x, &upper, &held, &upper_freed, &held_freed](const Tensor<double>& dy) {
      upper_freed = upper.expired();
      held_freed = held.expired();
      x.accumulate_grad(dy);
    });
    Var<double> h = exp(probe);
    upper = h.node_ptr();
    kept = neg(probe);  // a Var the caller keeps: it survives backward with its value
    held = kept.node_ptr();
    y = sum_all(add(h, kept));
  }
  y.backward();
  EXPECT_TRUE(upper_freed);
  EXPECT_FALSE(held_freed);
  EXPECT_TRUE(kept.value().defined());
  EXPECT_EQ(kept.value()[1], -2.0);
  EXPECT_NEAR(x.grad()[0], std::exp(1.0) - 1.0, 1e-12);
}

TEST(Backward, TheGraphFreesItselfWhenTheOutputIsDropped) {
  Var<double> x = leaf({1, 2});
  std::weak_ptr<detail::Node<double>> inner, output;
  {
    Var<double> y;
    {
      Var<double> h = exp(x);
      inner = h.node_ptr();
      y = sum_all(mul(h, h));
    }
    output = y.node_ptr();
    y.backward(/*retain_graph=*/true);
    EXPECT_FALSE(inner.expired());  // retained
  }
  EXPECT_TRUE(inner.expired());
  EXPECT_TRUE(output.expired());
  EXPECT_EQ(x.node_ptr().use_count(), 1);  // no node of the dead graph still points at the leaf
}

}  // namespace var_test
