// A program of a project that trains data-parallel with eigenformer::dist: it must compile and link.
#include <eigenformer/eigenformer.hpp>

#include <iostream>

int main(int argc, char** argv) {
  if (!eigenformer::dist::launched()) {  // started without mpirun: alone, without MPI
    std::cout << "consumer_dist: one process\n";
    return 0;
  }
  eigenformer::dist::Environment env(&argc, &argv);
  std::cout << "consumer_dist: rank " << env.rank() << " of " << env.size() << "\n";
  return 0;
}
