#include "eigenformer/runtime/eval_mode.hpp"

#include <gtest/gtest.h>

#include "eigenformer/nn/encoder_classifier.hpp"

using namespace eigenformer;

namespace eval_mode_test {

nn::EncoderClassifier<float> small_model() {
  nn::EncoderClassifier<float>::Options o;
  o.vocab_size = 20;
  o.encoder.layer.d_model = 8;
  o.encoder.layer.nhead = 2;
  o.encoder.layer.dim_feedforward = 16;
  o.encoder.num_layers = 1;
  return nn::EncoderClassifier<float>(o);
}

bool every_module_training(nn::EncoderClassifier<float>& model, bool training) {
  for (const auto& [name, module] : model.named_modules())
    if (module->is_training() != training) return false;
  return true;
}

TEST(EvalModeGuard, EvalForItsScopeThenTheModeTheModelHad) {
  nn::EncoderClassifier<float> model = small_model();
  model.train();
  {
    EvalModeGuard<nn::EncoderClassifier<float>> outer(model);
    EXPECT_TRUE(every_module_training(model, false));
    {
      EvalModeGuard<nn::EncoderClassifier<float>> inner(model);  // nested: still eval, and eval after it
      EXPECT_TRUE(every_module_training(model, false));
    }
    EXPECT_TRUE(every_module_training(model, false));
  }
  EXPECT_TRUE(every_module_training(model, true));

  model.eval();  // a model in eval mode stays there
  { EvalModeGuard<nn::EncoderClassifier<float>> guard(model); }
  EXPECT_TRUE(every_module_training(model, false));
}

}  // namespace eval_mode_test
