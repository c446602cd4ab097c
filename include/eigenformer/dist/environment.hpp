// The MPI environment of a program: MPI initialized for the environment's lifetime (unless the program did it
// itself), the rank and size of the world, and the world as a train::ProcessGroup for fit(). Optional: needs MPI
// (link eigenformer::dist; Debian: libopenmpi-dev, openmpi-bin).
//
// Only the thread that created the Environment calls MPI (MPI_THREAD_FUNNELED): kernels run on OpenMP threads
// inside each rank as they do in one process. A program run without a launcher (mpirun, mpiexec, srun) need not
// initialize MPI at all: launched() tells, and the program then runs alone as it would without MPI.
#pragma once

#include <mpi.h>

#include <cstdlib>
#include <memory>

#include "eigenformer/dist/process_group.hpp"

namespace eigenformer::dist {

/// Whether an MPI launcher started this process (the variables Open MPI's mpirun, MPICH's Hydra, PMI and PMIx
/// launchers such as Slurm's srun set). A process started directly is not part of any world.
inline bool launched() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMI_RANK", "PMIX_RANK", "MPI_LOCALNRANKS"})
    if (std::getenv(name)) return true;
  return false;
}

/// MPI for the lifetime of this object (MPI_Init_thread at MPI_THREAD_FUNNELED, MPI_Finalize at the end, both
/// only if MPI was not initialized already). One per program, made on the thread that will call MPI.
class Environment {
 public:
  Environment() : Environment(nullptr, nullptr) {}
  /// With main()'s arguments, which some MPI implementations read.
  Environment(int* argc, char*** argv) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
      int provided = 0;
      check(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
      owns_ = true;
      if (provided < MPI_THREAD_FUNNELED) {
        MPI_Finalize();
        throw DistError(eigenformer::detail::concat("dist::Environment: the MPI library provides thread level ",
                                                    provided, ", expected at least MPI_THREAD_FUNNELED"));
      }
    }
    world_ = std::make_unique<MpiProcessGroup>(MPI_COMM_WORLD);
  }
  Environment(const Environment&) = delete;
  Environment& operator=(const Environment&) = delete;
  ~Environment() {
    world_.reset();  // frees its communicator before MPI ends
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owns_ && !finalized) MPI_Finalize();
  }

  int rank() const { return world_->rank(); }
  int size() const { return world_->size(); }
  /// The world as a process group (its own duplicate of MPI_COMM_WORLD).
  MpiProcessGroup& world() { return *world_; }

  /// Ends every process of the world with this exit code (MPI_Abort): what a program calls when one rank fails
  /// and the others would wait for it forever in a collective. Called only by the program, never by the library.
  [[noreturn]] void abort(int code) const {
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);  // MPI_Abort does not return; this satisfies [[noreturn]] if an implementation did
  }

 private:
  bool owns_ = false;
  std::unique_ptr<MpiProcessGroup> world_;
};

}  // namespace eigenformer::dist
