#include "eigenformer/optim/lr_schedule.hpp"

#include "eigenformer/optim/sgd.hpp"
#include "optim/tiny_problem.hpp"
#include "support/test_support.hpp"

using namespace eigenformer;
using namespace eigenformer::optim;

namespace lr_schedule_test {

namespace {

// Learning rates (base lr 0.5, 10 warmup steps, 100 total steps) at kSteps, from tests/optim/make_reference.py:
// transformers' schedule lambdas (copied into the script) driving torch.optim.lr_scheduler.LambdaLR.
const std::vector<Index> kSteps = {0, 1, 5, 9, 10, 11, 40, 99, 100, 120};
const std::vector<double> kLinear = {0.0, 0.05, 0.25, 0.45, 0.5, 0.49444444444444446, 0.3333333333333333, 0.005555555555555556, 0.0, 0.0};
const std::vector<double> kCosine = {0.0, 0.05, 0.25, 0.45, 0.5, 0.49984770675477397, 0.375, 0.00015229324522605947, 0.0, 0.0584888892202555};
const std::vector<double> kCosineNoWarmup = {0.5, 0.4998766400914329, 0.49692208514878444, 0.49007342141923577, 0.4877641290737884, 0.4852201922385564, 0.32725424859373686, 0.0001233599085671, 0.0, 0.04774575140626311};
const std::vector<double> kCosineTwoCycles = {0.0, 0.05, 0.25, 0.45, 0.5, 0.4975670171853926, 0.12499999999999989, 0.49756701718539253, 0.5, 0.01507684480352292};

template <typename Schedule>
std::vector<double> at_steps(const Schedule& s) {
  std::vector<double> out;
  for (Index k : kSteps) out.push_back(static_cast<double>(s(k)));
  return out;
}

}  // namespace

TEST(LrSchedule, ConstantIsTheSameAtEveryStep) {
  const ConstantSchedule<float> s(0.25f);
  for (Index k : {0, 1, 1000, 1000000}) EXPECT_EQ(s(k), 0.25f);
}

TEST(LrSchedule, LinearWarmupThenDecayMatchesTransformers) {
  EXPECT_TRUE(eigenformer::testing::all_near(at_steps(LinearSchedule<double>(0.5, 10, 100)), kLinear, 1e-15, 1e-17));
  EXPECT_TRUE(eigenformer::testing::all_near(at_steps(LinearSchedule<float>(0.5f, 10, 100)), kLinear, 1e-7, 1e-9));
}

TEST(LrSchedule, CosineWithAndWithoutWarmupMatchesTransformers) {
  EXPECT_TRUE(eigenformer::testing::all_near(at_steps(CosineSchedule<double>(0.5, 10, 100)), kCosine, 1e-15, 1e-17));
  EXPECT_TRUE(
      eigenformer::testing::all_near(at_steps(CosineSchedule<double>(0.5, 0, 100)), kCosineNoWarmup, 1e-15, 1e-17));
  EXPECT_TRUE(eigenformer::testing::all_near(at_steps(CosineSchedule<double>(0.5, 10, 100, 2.0)), kCosineTwoCycles,
                                             1e-14, 1e-16));
  EXPECT_TRUE(eigenformer::testing::all_near(at_steps(CosineSchedule<float>(0.5f, 10, 100)), kCosine, 1e-7, 1e-9));
}

TEST(LrSchedule, WarmupOfZeroStepsAndZeroTotalStepsAreAllowed) {
  const LinearSchedule<double> no_warmup(1.0, 0, 4);
  EXPECT_EQ(no_warmup(0), 1.0);
  EXPECT_EQ(no_warmup(1), 0.75);
  EXPECT_EQ(no_warmup(4), 0.0);
  const LinearSchedule<double> all_warmup(1.0, 4, 4);
  EXPECT_EQ(all_warmup(2), 0.5);
  EXPECT_EQ(all_warmup(4), 0.0);
  const CosineSchedule<double> empty(1.0, 0, 0);
  EXPECT_EQ(empty(0), 1.0);  // transformers: progress 0 / max(1, 0)
}

TEST(LrSchedule, DrivesAnOptimizerThroughSetLr) {
  eigenformer::testing::TinyProblem<float> pb;
  SGD<float> opt(pb.params());
  const LinearSchedule<float> schedule(0.5f, 2, 6);
  std::vector<float> used;
  for (std::size_t k = 0; k < eigenformer::testing::kGrads.size(); ++k) {
    opt.set_lr(schedule(opt.step_count()));
    used.push_back(opt.lr());
    pb.set_grads(k);
    opt.step();
  }
  EXPECT_EQ(used, std::vector<float>({0.0f, 0.25f, 0.5f, 0.375f, 0.25f}));
}

TEST(LrSchedule, InvalidOptionsAndStepsThrowValueError) {
  EXPECT_THROW_WITH(LinearSchedule<float>(0.1f, 11, 10), ValueError,
                    {"LinearSchedule", "warmup_steps is 11", "total_steps 10"});
  EXPECT_THROW_WITH(LinearSchedule<float>(0.1f, -1, 10), ValueError, {"LinearSchedule", "warmup_steps is -1"});
  EXPECT_THROW_WITH(CosineSchedule<float>(0.1f, 0, -5), ValueError, {"CosineSchedule", "total_steps is -5"});
  EXPECT_THROW_WITH(CosineSchedule<float>(0.1f, 20, 10), ValueError, {"CosineSchedule", "warmup_steps is 20"});
  EXPECT_THROW_WITH(CosineSchedule<float>(0.1f, 0, 10, -0.5), ValueError, {"CosineSchedule", "num_cycles"});
  EXPECT_THROW_WITH(ConstantSchedule<float>(-0.1f), ValueError, {"ConstantSchedule", "lr is -0.1"});
  EXPECT_THROW_WITH(LinearSchedule<float>(std::nanf(""), 0, 10), ValueError, {"LinearSchedule", "lr is nan"});
  EXPECT_THROW_WITH(LinearSchedule<float>(0.1f, 0, 10)(-1), ValueError, {"LinearSchedule", "step is -1"});
  EXPECT_THROW_WITH(CosineSchedule<float>(0.1f, 0, 10)(-3), ValueError, {"CosineSchedule", "step is -3"});
  EXPECT_THROW_WITH(ConstantSchedule<float>(0.1f)(-2), ValueError, {"ConstantSchedule", "step is -2"});
}

}  // namespace lr_schedule_test
