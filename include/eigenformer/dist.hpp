// The optional data-parallel part of eigenformer (needs MPI: link eigenformer::dist).
#pragma once

#include "eigenformer/dist/environment.hpp"
#include "eigenformer/dist/process_group.hpp"
