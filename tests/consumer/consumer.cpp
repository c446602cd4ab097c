// A program of a project that uses eigenformer as a dependency: a small graph, backward, a checked gradient.
#include <eigenformer/eigenformer.hpp>

#include <cmath>
#include <iostream>

int main() {
  using namespace eigenformer;
  Var<double> x(Tensor<double>::from({1.0, 2.0, 3.0}, {3}), true);
  Var<double> y = sum(mul(x, x));  // y = sum x^2, dy/dx = 2x
  y.backward();
  for (Index i = 0; i < 3; ++i)
    if (std::abs(x.grad()[i] - 2.0 * x.value()[i]) > 1e-12) {
      std::cerr << "consumer: wrong gradient " << x.grad() << "\n";
      return 1;
    }
  std::cout << "consumer ok: y = " << y.item() << ", grad " << x.grad() << "\n";
  return 0;
}
