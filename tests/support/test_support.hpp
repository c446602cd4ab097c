// Shared test helpers: the gradient-check assertion every op test uses, seeded random inputs, and an assertion
// that pins both an exception's type and the words of its message.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "eigenformer/autograd/gradcheck.hpp"

namespace eigenformer::testing {

/// A double-precision leaf of the given shape with N(0, 1) values from a fixed seed.
inline Var<double> random_var(const Shape& shape, std::uint64_t seed, bool requires_grad = true) {
  Generator gen(seed);
  return Var<double>(Tensor<double>::normal(shape, 0.0, 1.0, gen), requires_grad);
}

/// A float tensor with N(0, 1) values from a fixed seed.
inline Tensor<float> random_tensor(const Shape& shape, std::uint64_t seed) {
  Generator gen(seed);
  return Tensor<float>::normal(shape, 0.0f, 1.0f, gen);
}

}  // namespace eigenformer::testing

/// Runs eigenformer::gradcheck(f, inputs) and fails with its report (worst element, analytic vs numeric).
#define EXPECT_GRADCHECK(f, ...)                                                   \
  do {                                                                              \
    const ::eigenformer::GradcheckResult gc_result_ = ::eigenformer::gradcheck(f, __VA_ARGS__); \
    EXPECT_TRUE(gc_result_.passed) << gc_result_.message;                          \
  } while (0)

/// Expects `stmt` to throw `type` whose what() contains every string in the braced list `words`.
#define EXPECT_THROW_WITH(stmt, type, ...)                                                   \
  do {                                                                                        \
    bool thrown_ = false;                                                                     \
    try {                                                                                     \
      stmt;                                                                                   \
    } catch (const type& e_) {                                                                \
      thrown_ = true;                                                                         \
      const std::string what_ = e_.what();                                                    \
      for (const std::string& w_ : std::vector<std::string> __VA_ARGS__)                     \
        EXPECT_NE(what_.find(w_), std::string::npos) << "message \"" << what_ << "\" lacks \"" << w_ << "\""; \
    } catch (const std::exception& e_) {                                                     \
      ADD_FAILURE() << #stmt " threw the wrong type: " << e_.what();                         \
      thrown_ = true;                                                                         \
    }                                                                                         \
    if (!thrown_) ADD_FAILURE() << #stmt " did not throw " #type;                            \
  } while (0)
