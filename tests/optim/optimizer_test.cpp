// Behaviour every optimizer shares through OptimizerBase, checked on SGD, Adam and AdamW: which parameters are
// updated, zero_grad, the all-or-nothing NaN/Inf check, the step count kept in the "step" state tensor, and an
// exact resume from state saved and loaded through visit_state.
#include "eigenformer/optim/optimizer.hpp"

#include <cmath>
#include <limits>
#include <map>

#include "eigenformer/optim/adam.hpp"
#include "eigenformer/optim/sgd.hpp"
#include "optim/tiny_problem.hpp"
#include "support/test_support.hpp"

using namespace eigenformer;
using namespace eigenformer::optim;

namespace optimizer_test {

using eigenformer::testing::kGrads;
using eigenformer::testing::saved_state;
using eigenformer::testing::TinyProblem;

namespace {

using State = std::map<std::string, Tensor<float>>;

// Each optimizer with every state slot in use.
template <typename Opt>
struct Setup;
template <>
struct Setup<SGD<float>> {
  static constexpr const char* name = "SGD";
  static SGD<float>::Options options() {
    SGD<float>::Options o;
    o.lr = 0.1f;
    o.momentum = 0.9f;
    o.weight_decay = 0.05f;
    o.nesterov = true;
    return o;
  }
};
template <>
struct Setup<Adam<float>> {
  static constexpr const char* name = "Adam";
  static Adam<float>::Options options() {
    Adam<float>::Options o;
    o.lr = 0.1f;
    o.weight_decay = 0.1f;
    o.amsgrad = true;
    return o;
  }
};
template <>
struct Setup<AdamW<float>> {
  static constexpr const char* name = "AdamW";
  static AdamW<float>::Options options() {
    AdamW<float>::Options o;
    o.lr = 0.1f;
    o.amsgrad = true;
    return o;
  }
};

/// Parameters and state, deep-copied.
template <typename Opt>
State snapshot(const Opt& opt, const TinyProblem<float>& pb) {
  State s = saved_state(opt);
  s["param:w"] = pb.w.value().clone();
  s["param:b"] = pb.b.value().clone();
  return s;
}

::testing::AssertionResult same(const State& a, const State& b) {
  if (a.size() != b.size()) return ::testing::AssertionFailure() << a.size() << " vs " << b.size() << " tensors";
  for (const auto& [name, t] : a) {
    const auto it = b.find(name);
    if (it == b.end()) return ::testing::AssertionFailure() << name << " missing";
    if (!t.equal(it->second)) return ::testing::AssertionFailure() << name << " differs";
  }
  return ::testing::AssertionSuccess();
}

template <typename Opt>
void run_steps(Opt& opt, TinyProblem<float>& pb, std::size_t first, std::size_t last) {
  for (std::size_t k = first; k < last; ++k) {
    pb.set_grads(k);
    opt.step();
  }
}

/// Writes v into the "step" state tensor, as a loader would.
template <typename Opt>
void load_step(Opt& opt, float v) {
  opt.visit_state([v](const std::string& n, Tensor<float>& t) {
    if (n == "step") t[0] = v;
  });
}

}  // namespace

template <typename Opt>
class OptimizerTest : public ::testing::Test {};
using Optimizers = ::testing::Types<SGD<float>, Adam<float>, AdamW<float>>;
// No name generator: CTest names typed tests after their type only when gtest numbers them (OptimizerTest.<test>
// <eigenformer::optim::AdamW<float>>); with names instead of numbers its test discovery garbles them.
TYPED_TEST_SUITE(OptimizerTest, Optimizers);

TYPED_TEST(OptimizerTest, NonFiniteGradientThrowsNamingTheParameterAndChangesNothing) {
  using Opt = TypeParam;
  const std::string step_fn = std::string(Setup<Opt>::name) + "::step";
  for (const float bad : {std::nanf(""), std::numeric_limits<float>::infinity(),
                          -std::numeric_limits<float>::infinity()}) {
    TinyProblem<float> pb;
    Opt opt(pb.params(), Setup<Opt>::options());
    run_steps(opt, pb, 0, 2);
    const State before = snapshot(opt, pb);
    pb.set_grads(2);
    pb.b.grad()[1] = bad;
    EXPECT_THROW_WITH(opt.step(), ValueError, {step_fn, "'layer.bias'", "element 1", "not finite"});
    EXPECT_TRUE(same(snapshot(opt, pb), before));
    EXPECT_EQ(opt.step_count(), 2);
    pb.w.grad()[4] = bad;  // the first offending parameter is named
    EXPECT_THROW_WITH(opt.step(), ValueError, {step_fn, "'layer.weight'", "element 4"});
    EXPECT_TRUE(same(snapshot(opt, pb), before));

    // After the throw, good gradients continue exactly as a run that never saw the bad ones.
    TinyProblem<float> ref_pb;
    Opt ref(ref_pb.params(), Setup<Opt>::options());
    run_steps(ref, ref_pb, 0, 5);
    run_steps(opt, pb, 2, 5);
    EXPECT_TRUE(same(snapshot(opt, pb), snapshot(ref, ref_pb)));
  }
}

TYPED_TEST(OptimizerTest, ParameterWithoutGradientIsSkippedAndKeepsZeroState) {
  using Opt = TypeParam;
  TinyProblem<float> pb;
  Opt opt(pb.params(), Setup<Opt>::options());
  const Tensor<float> b0 = pb.b.value().clone(), w0 = pb.w.value().clone();
  pb.set_grads(0);
  pb.b.zero_grad();  // set_to_none: like p.grad is None
  opt.step();
  EXPECT_TRUE(pb.b.value().equal(b0));
  EXPECT_FALSE(pb.w.value().equal(w0));
  EXPECT_EQ(opt.step_count(), 1);
  opt.visit_state([](const std::string& n, const Tensor<float>& t) {
    if (n.rfind("layer.bias.", 0) == 0) {
      EXPECT_TRUE(t.equal(Tensor<float>::zeros({3}))) << n;
    } else if (n.rfind("layer.weight.", 0) == 0) {
      EXPECT_FALSE(t.equal(Tensor<float>::zeros({2, 3}))) << n;
    }
  });
}

TYPED_TEST(OptimizerTest, FrozenParametersGetNoStateAndAreNeverUpdated) {
  using Opt = TypeParam;
  TinyProblem<float> pb;
  pb.b.set_requires_grad(false);
  Opt opt(pb.params(), Setup<Opt>::options());
  ASSERT_EQ(opt.parameters().size(), 1u);
  EXPECT_EQ(opt.parameters()[0].first, "layer.weight");
  opt.visit_state([](const std::string& n, const Tensor<float>&) { EXPECT_EQ(n.find("layer.bias"), std::string::npos); });
  const Tensor<float> b0 = pb.b.value().clone();
  pb.set_grads(0);  // a stale gradient on a frozen parameter is ignored
  opt.step();
  EXPECT_TRUE(pb.b.value().equal(b0));

  // Frozen after construction: skipped too, even with a gradient left over.
  const Tensor<float> w1 = pb.w.value().clone();
  pb.w.set_requires_grad(false);
  pb.set_grads(1);
  opt.step();
  EXPECT_TRUE(pb.w.value().equal(w1));
}

TYPED_TEST(OptimizerTest, ZeroGradDropsOrZeroesEveryGradient) {
  using Opt = TypeParam;
  TinyProblem<float> pb;
  Opt opt(pb.params(), Setup<Opt>::options());
  pb.set_grads(0);
  opt.zero_grad(false);
  ASSERT_TRUE(pb.w.has_grad() && pb.b.has_grad());
  EXPECT_TRUE(pb.w.grad().equal(Tensor<float>::zeros({2, 3})));
  EXPECT_TRUE(pb.b.grad().equal(Tensor<float>::zeros({3})));
  opt.zero_grad();
  EXPECT_FALSE(pb.w.has_grad());
  EXPECT_FALSE(pb.b.has_grad());
  opt.step();  // no gradients: nothing moves, the count still advances
  EXPECT_TRUE(pb.w.value().equal(TinyProblem<float>().w.value()));
  EXPECT_EQ(opt.step_count(), 1);
}

TYPED_TEST(OptimizerTest, StateSavedAndLoadedThroughVisitStateResumesExactly) {
  using Opt = TypeParam;
  // Run A: two steps, save a checkpoint (state copies and parameter values), three more steps.
  TinyProblem<float> a;
  Opt opt_a(a.params(), Setup<Opt>::options());
  run_steps(opt_a, a, 0, 2);
  const State checkpoint = saved_state(opt_a);
  const Tensor<float> w_saved = a.w.value().clone(), b_saved = a.b.value().clone();
  run_steps(opt_a, a, 2, 5);

  // Run B: fresh parameters and optimizer, restored from the checkpoint, the same three steps. Once by writing
  // into the state tensors, once by replacing them.
  for (const bool replace : {false, true}) {
    TinyProblem<float> b;
    b.w.value().array() = w_saved.array();
    b.b.value().array() = b_saved.array();
    Opt opt_b(b.params(), Setup<Opt>::options());
    std::size_t loaded = 0;
    opt_b.visit_state([&](const std::string& n, Tensor<float>& t) {
      const Tensor<float>& src = checkpoint.at(n);
      if (replace)
        t = src.clone();
      else
        t.array() = src.array();
      ++loaded;
    });
    EXPECT_EQ(loaded, checkpoint.size());
    EXPECT_EQ(opt_b.step_count(), 2);
    run_steps(opt_b, b, 2, 5);
    EXPECT_TRUE(same(snapshot(opt_b, b), snapshot(opt_a, a))) << (replace ? "replaced" : "written into");
  }
}

TYPED_TEST(OptimizerTest, MovedOptimizerContinuesWithItsState) {
  using Opt = TypeParam;
  TinyProblem<float> a, b;
  Opt opt_a(a.params(), Setup<Opt>::options());
  Opt opt_b(b.params(), Setup<Opt>::options());
  run_steps(opt_a, a, 0, 2);
  run_steps(opt_b, b, 0, 2);
  Opt moved = std::move(opt_b);
  run_steps(opt_a, a, 2, 5);
  run_steps(moved, b, 2, 5);
  EXPECT_EQ(moved.step_count(), 5);
  EXPECT_TRUE(same(snapshot(moved, b), snapshot(opt_a, a)));
}

TYPED_TEST(OptimizerTest, StepCountIsReadFromTheStepTensor) {
  using Opt = TypeParam;
  TinyProblem<float> pb;
  Opt opt(pb.params(), Setup<Opt>::options());
  load_step(opt, 7);
  EXPECT_EQ(opt.step_count(), 7);
  pb.set_grads(0);
  opt.step();
  EXPECT_EQ(opt.step_count(), 8);
}

TYPED_TEST(OptimizerTest, InvalidLoadedStateThrowsAndChangesNothing) {
  using Opt = TypeParam;
  const std::string name = Setup<Opt>::name;
  TinyProblem<float> pb;
  Opt opt(pb.params(), Setup<Opt>::options());
  run_steps(opt, pb, 0, 1);
  pb.set_grads(1);
  const State before = snapshot(opt, pb);
  for (const float bad : {2.5f, -1.0f, std::nanf("")}) {
    load_step(opt, bad);
    EXPECT_THROW_WITH(opt.step(), ValueError, {name, "'step'", "whole number"});
    EXPECT_THROW_WITH(opt.step_count(), ValueError, {name, "'step'"});
  }
  load_step(opt, 1);
  EXPECT_TRUE(same(snapshot(opt, pb), before));

  // A state tensor replaced by one of another shape.
  const std::string slot = name == "SGD" ? "layer.bias.momentum_buffer" : "layer.bias.exp_avg_sq";
  Tensor<float> kept;
  opt.visit_state([&](const std::string& n, Tensor<float>& t) {
    if (n == slot) {
      kept = t;
      t = Tensor<float>::zeros({4});
    }
  });
  EXPECT_THROW_WITH(opt.step(), ShapeError, {name + "::step", slot, "(4)", "expected (3)"});
  opt.visit_state([&](const std::string& n, Tensor<float>& t) {
    if (n == slot) t = kept;
  });
  EXPECT_TRUE(same(snapshot(opt, pb), before));

  // A gradient of the wrong shape.
  pb.b.grad() = Tensor<float>::zeros({2});
  EXPECT_THROW_WITH(opt.step(), ShapeError, {name + "::step", "'layer.bias'", "(2)", "(3)"});
  EXPECT_TRUE(same(snapshot(opt, pb), before));
}

TYPED_TEST(OptimizerTest, FloatStepCountStopsWhereFloatStopsCountingExactly) {
  using Opt = TypeParam;
  TinyProblem<float> pb;
  Opt opt(pb.params(), Setup<Opt>::options());
  pb.set_grads(0);
  load_step(opt, 16777215.0f);  // 2^24 - 1
  opt.step();
  EXPECT_EQ(opt.step_count(), 16777216);
  const State before = snapshot(opt, pb);
  EXPECT_THROW_WITH(opt.step(), ValueError, {std::string(Setup<Opt>::name) + "::step", "16777216"});
  EXPECT_TRUE(same(snapshot(opt, pb), before));
}

TYPED_TEST(OptimizerTest, SetLrChangesTheNextStepAndRejectsNegativeValues) {
  using Opt = TypeParam;
  TinyProblem<float> a, b;
  typename Opt::Options o = Setup<Opt>::options();
  Opt opt_a(a.params(), o);
  o.lr = 0.05f;
  Opt opt_b(b.params(), o);
  opt_a.set_lr(0.05f);
  EXPECT_EQ(opt_a.lr(), 0.05f);
  EXPECT_EQ(opt_a.options().lr, 0.05f);
  run_steps(opt_a, a, 0, 3);
  run_steps(opt_b, b, 0, 3);
  EXPECT_EQ(a.values(), b.values());
  EXPECT_THROW_WITH(opt_a.set_lr(-1.0f), ValueError, {Setup<Opt>::name, "lr is -1"});
  EXPECT_EQ(opt_a.lr(), 0.05f);
}

TYPED_TEST(OptimizerTest, BadParameterListsThrowValueError) {
  using Opt = TypeParam;
  const std::string name = Setup<Opt>::name;
  TinyProblem<float> pb;
  const auto o = Setup<Opt>::options();
  EXPECT_THROW_WITH(Opt(NamedParameters<float>{}, o), ValueError, {name, "empty parameter list"});
  EXPECT_THROW_WITH(Opt(NamedParameters<float>({{"w", pb.w}, {"w", pb.b}}), o), ValueError,
                    {name, "'w'", "twice"});
  EXPECT_THROW_WITH(Opt(NamedParameters<float>({{"w", pb.w}, {"tied", pb.w}}), o), ValueError,
                    {name, "'w'", "'tied'", "same Var"});
  EXPECT_THROW_WITH(Opt(NamedParameters<float>({{"w", pb.w}, {"x", Var<float>()}}), o), ValueError,
                    {name, "'x'", "undefined"});
}

}  // namespace optimizer_test
