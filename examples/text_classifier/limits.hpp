// What text_classifier checks before it starts any work: the thread count against the machine's cores, the
// optimizer step count against Index, and the memory a model and one batch need against the machine's memory.
// Estimates are in double, so that no size the options can name overflows while it is checked.
#pragma once

#include <algorithm>
#include <cstdio>
#include <cstdint>
#include <eigenformer/eigenformer.hpp>
#include <filesystem>
#include <limits>
#include <string>
#include <system_error>
#include <thread>

#include "bow_classifier.hpp"

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

namespace text_classifier {

using eigenformer::Index;
using eigenformer::detail::concat;

/// Threads per core at most: more only add switching, and each costs a stack.
constexpr int kThreadsPerCore = 8;

/// The cores the machine reports (at least one).
inline int cores() { return std::max(1, static_cast<int>(std::thread::hardware_concurrency())); }

/// The most threads --threads accepts.
inline int max_threads() { return kThreadsPerCore * cores(); }

/// The message for a thread count out of range, or "" when it is fine.
inline std::string check_threads(long long threads) {
  if (threads < 1) return concat(threads, " is not a thread count: expected at least 1");
  if (threads > max_threads())
    return concat(threads, " threads is more than ", kThreadsPerCore, " per core (this machine reports ", cores(),
                  cores() == 1 ? " core" : " cores", "): expected 1 to ", max_threads());
  return "";
}

/// Optimizer steps per epoch: ceil(ceil(examples / batch_size) / accumulation), without overflow.
inline Index steps_per_epoch(Index examples, Index batch_size, Index accumulation) {
  const Index batches = examples / batch_size + (examples % batch_size != 0);
  return batches / accumulation + (batches % accumulation != 0);
}

/// Throws ValueError naming --epochs when epochs * steps per epoch does not fit in an Index.
inline void check_step_count(Index epochs, Index examples, Index batch_size, Index accumulation) {
  const Index steps = std::max<Index>(1, steps_per_epoch(examples, batch_size, accumulation));
  const Index most = std::numeric_limits<Index>::max() / steps;
  if (epochs > most)
    throw eigenformer::ValueError(concat("--epochs ", epochs, ": with ", steps, " optimizer steps per epoch (", examples,
                                         " training examples, --batch-size ", batch_size, ", --accumulation ",
                                         accumulation, ") the step count overflows; expected at most ", most));
}

/// The machine's memory in bytes; 0 when the system does not say.
inline double physical_memory_bytes() {
#if defined(_SC_PHYS_PAGES) && defined(_SC_PAGE_SIZE)
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  if (pages > 0 && page > 0) return static_cast<double>(pages) * static_cast<double>(page);
#endif
  return 0;
}

/// What training a model costs in memory, estimated from its options.
struct MemoryEstimate {
  double parameters = 0;         // the model's weights (a lower bound: optional parts such as a pooler left out)
  double buffer_floats = 0;      // constant tables (sinusoidal positions)
  double activation_floats = 0;  // what the forward pass of one (batch, length) batch keeps for the backward pass
};

/// The encoder classifier: token and position tables, per layer the attention's four projections, the two
/// feed-forward ones and two layer norms, the head's layer norm and linear layer. One batch keeps per layer about
/// 12 (B, T, C) and 3 (B, T, F) activations, and 3 (B, H, T, T) attention maps.
inline MemoryEstimate memory_estimate(const eigenformer::nn::EncoderClassifier<float>::Options& o, double batch,
                                      double length) {
  using eigenformer::nn::PositionalKind;
  const double V = double(o.vocab_size), P = double(o.max_len), C = double(o.d_model()),
               F = double(o.encoder.layer.dim_feedforward), L = double(o.encoder.num_layers),
               H = double(o.encoder.layer.nhead), K = double(o.head.num_classes);
  MemoryEstimate m;
  m.parameters = V * C + (o.positional == PositionalKind::learned ? P * C : 0) +
                 L * (4 * C * C + 2 * C * F + 9 * C + F) + 2 * C + C * K + K;
  m.buffer_floats = o.positional == PositionalKind::sinusoidal ? P * C : 0;
  const double BT = batch * length;
  m.activation_floats = 2 * BT * C + L * (BT * (12 * C + 3 * F) + 3 * batch * H * length * length);
  return m;
}

/// The bag-of-words baseline: the embedding table and one linear layer; a batch keeps its (B, T, dim) embeddings.
inline MemoryEstimate memory_estimate(const BowClassifier<float>::Options& o, double batch, double length) {
  const double V = double(o.vocab_size), D = double(o.dim), K = double(o.num_classes);
  MemoryEstimate m;
  m.parameters = V * D + D * K + K;
  m.activation_floats = 2 * batch * length * D;
  return m;
}

/// "1.5 GiB".
inline std::string gibibytes(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g GiB", bytes / (1024.0 * 1024.0 * 1024.0));
  return buf;
}

/// Throws ValueError when training needs more memory than the machine has: four floats per parameter (weights,
/// gradients and AdamW's two moments) and one batch's activations. options names the options that set the sizes.
inline void check_training_memory(const MemoryEstimate& m, const std::string& options) {
  const double memory = physical_memory_bytes();
  const double params_bytes = 4 * (4 * m.parameters + m.buffer_floats), batch_bytes = 4 * m.activation_floats;
  if (memory <= 0 || params_bytes + batch_bytes <= memory) return;
  char count[32];
  std::snprintf(count, sizeof count, "%.3g", m.parameters);
  const std::string batch = batch_bytes > 0 ? "; one batch's activations: " + gibibytes(batch_bytes) : "";
  throw eigenformer::ValueError(concat(options, ": training would need about ", gibibytes(params_bytes + batch_bytes),
                                       " (", count, " parameters with their gradients and AdamW's moments: ",
                                       gibibytes(params_bytes), batch, "), more than the ", gibibytes(memory),
                                       " of memory this machine has"));
}

/// Throws IoError when model_file is too small for the parameters config_file's model has (at least two bytes each:
/// F16 or BF16; F32 takes four): the files are not of one model, and building the model could exhaust the memory.
inline void check_weights_fit_config(const std::filesystem::path& config_file, const std::filesystem::path& model_file,
                                     const MemoryEstimate& m) {
  std::error_code ec;
  const auto bytes = std::filesystem::file_size(model_file, ec);
  if (ec || 2 * m.parameters <= static_cast<double>(bytes)) return;  // a missing file: load_state_dict names it
  char count[32];
  std::snprintf(count, sizeof count, "%.3g", m.parameters);
  throw eigenformer::IoError(concat(config_file.string(), " describes a model of ", count, " parameters, but ",
                                    model_file.string(), " holds ", bytes, " bytes (at least 2 per parameter): ",
                                    "the two files are not of one model"));
}

}  // namespace text_classifier
