// Umbrella header: includes every public header of eigenformer, nothing else.
#pragma once

#include "eigenformer/core/config.hpp"
#include "eigenformer/core/error.hpp"
#include "eigenformer/core/shape.hpp"
#include "eigenformer/tensor/tensor.hpp"
#include "eigenformer/autograd/grad_mode.hpp"
#include "eigenformer/autograd/var.hpp"
#include "eigenformer/autograd/gradcheck.hpp"
#include "eigenformer/ops/elementwise.hpp"
