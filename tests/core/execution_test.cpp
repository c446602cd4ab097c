#include "eigenformer/core/execution.hpp"

#include <gtest/gtest.h>

using namespace eigenformer;

namespace execution_test {

TEST(MatmulPrecision, IsHighestUntilSetAndTakesTorchsNames) {
  EXPECT_EQ(get_float32_matmul_precision(), "highest");
  for (const char* name : {"medium", "high", "highest"}) {
    set_float32_matmul_precision(name);
    EXPECT_EQ(get_float32_matmul_precision(), name);
  }
}

TEST(MatmulPrecision, AnUnknownNameThrowsAndKeepsTheSetting) {
  set_float32_matmul_precision("medium");
  try {
    set_float32_matmul_precision("bf16");
    ADD_FAILURE() << "no exception";
  } catch (const ValueError& e) {
    EXPECT_STREQ(e.what(),
                 "set_float32_matmul_precision: precision is \"bf16\", expected \"highest\", \"high\" or \"medium\"");
  }
  EXPECT_EQ(get_float32_matmul_precision(), "medium");
  set_float32_matmul_precision("highest");
}

TEST(MatmulPrecision, TheGuardRestoresThePreviousSetting) {
  set_float32_matmul_precision("high");
  {
    MatmulPrecisionGuard guard("medium");
    EXPECT_EQ(get_float32_matmul_precision(), "medium");
    EXPECT_THROW(MatmulPrecisionGuard("fp8"), ValueError);
    EXPECT_EQ(get_float32_matmul_precision(), "medium");
  }
  EXPECT_EQ(get_float32_matmul_precision(), "high");
  set_float32_matmul_precision("highest");
}

}  // namespace execution_test
