// train::ProcessGroup over an MPI communicator, and the bucketed gradient all-reduce of a data-parallel step.
//
// Buckets: the trainable parameters, in reverse order of registration (the order backward finishes them in a
// layered model), are packed into buckets of about BucketOptions::bucket_bytes (the first one smaller, so that
// communication starts early). A bucket's non-blocking sum (MPI_Iallreduce) starts as soon as backward has
// finished every gradient in it and every earlier bucket has started: the ranks start the same collectives in the
// same order, as MPI requires, while the rest of the backward runs. finish_step() starts what is left (parameters
// that pass did not reach), waits, and writes the sums back. Each parameter carries a flag in its bucket: a
// gradient no rank produced stays undefined, as it would in one process.
#pragma once

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "eigenformer/core/error.hpp"
#include "eigenformer/train/process_group.hpp"

namespace eigenformer::dist {

/// An MPI call failed (the message names the call and MPI's reason).
class DistError : public Error {
 public:
  using Error::Error;
};

namespace detail {

inline void check(int code, const char* call) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw DistError(eigenformer::detail::concat(call, " failed: ", std::string(text, static_cast<std::size_t>(length))));
}

template <typename T>
MPI_Datatype mpi_type();
template <>
inline MPI_Datatype mpi_type<float>() { return MPI_FLOAT; }
template <>
inline MPI_Datatype mpi_type<double>() { return MPI_DOUBLE; }
template <>
inline MPI_Datatype mpi_type<std::int64_t>() { return MPI_INT64_T; }

/// MPI counts are ints: a larger message goes in pieces.
constexpr std::size_t kMaxCount = 1u << 30;

}  // namespace detail

using detail::check;

/// Sizes of the gradient buckets.
struct BucketOptions {
  std::size_t first_bucket_bytes = std::size_t(1) << 20;  // 1 MiB: the first sum starts early in the backward
  std::size_t bucket_bytes = std::size_t(4) << 20;        // 4 MiB
};

/// The bucketed gradient all-reduce of one model's trainable parameters (see the top of this file).
template <typename T>
class BucketedAllReduce : public train::GradientSynchronizer<T> {
 public:
  BucketedAllReduce(const NamedParameters<T>& params, MPI_Comm comm, const BucketOptions& options = {})
      : comm_(comm) {
    std::size_t bytes = 0, limit = options.first_bucket_bytes;
    for (auto it = params.rbegin(); it != params.rend(); ++it) {
      const Var<T>& p = it->second;
      if (!p.requires_grad() || index_.count(p.node_ptr().get())) continue;  // frozen, or tied (listed once)
      if (buckets_.empty() || bytes >= limit) {
        if (!buckets_.empty()) limit = options.bucket_bytes;
        buckets_.emplace_back();
        bytes = 0;
      }
      Bucket& b = buckets_.back();
      index_[p.node_ptr().get()] = entries_.size();
      entries_.push_back({p, buckets_.size() - 1, b.values, false});
      b.entries.push_back(entries_.size() - 1);
      b.values += static_cast<std::size_t>(p.numel());
      bytes += static_cast<std::size_t>(p.numel()) * sizeof(T);
    }
    for (Bucket& b : buckets_) b.data.assign(b.values + b.entries.size(), T(0));  // values, then one flag each
  }

  void begin_step() override {
    for (Entry& e : entries_) e.ready = false;
    for (Bucket& b : buckets_) {
      b.ready = 0;
      b.started = false;
    }
    next_ = 0;
  }

  void gradient_ready(const std::shared_ptr<eigenformer::detail::Node<T>>& leaf) override {
    const auto it = index_.find(leaf.get());
    if (it == index_.end()) return;
    Entry& e = entries_[it->second];
    if (e.ready) return;
    e.ready = true;
    ++buckets_[e.bucket].ready;
    start_ready_buckets();
    progress();
  }

  void finish_step() override {
    for (Bucket& b : buckets_) b.ready = b.entries.size();
    start_ready_buckets();
    const auto t0 = std::chrono::steady_clock::now();
    for (Bucket& b : buckets_) {
      check(MPI_Waitall(static_cast<int>(b.requests.size()), b.requests.data(), MPI_STATUSES_IGNORE), "MPI_Waitall");
      b.requests.clear();
    }
    wait_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (Bucket& b : buckets_) unpack(b);
  }

  double wait_seconds() const override { return wait_seconds_; }
  std::size_t buckets() const { return buckets_.size(); }
  /// Buckets whose sum has started in this step.
  std::size_t started() const { return next_; }
  /// Elements summed per step (gradients and flags).
  std::size_t elements() const {
    std::size_t n = 0;
    for (const Bucket& b : buckets_) n += b.data.size();
    return n;
  }

 private:
  struct Entry {
    Var<T> param;
    std::size_t bucket, offset;
    bool ready;
  };
  struct Bucket {
    std::vector<std::size_t> entries;
    std::size_t values = 0, ready = 0;
    bool started = false;
    std::vector<T> data;
    std::vector<MPI_Request> requests;
  };

  void start_ready_buckets() {
    while (next_ < buckets_.size() && buckets_[next_].ready == buckets_[next_].entries.size()) start(buckets_[next_++]);
  }

  void start(Bucket& b) {
    for (std::size_t k = 0; k < b.entries.size(); ++k) {
      const Entry& e = entries_[b.entries[k]];
      T* dst = b.data.data() + e.offset;
      const Index n = e.param.numel();
      const bool has = e.param.has_grad();
      if (has)
        std::copy_n(e.param.grad().data(), n, dst);
      else
        std::fill_n(dst, n, T(0));
      b.data[b.values + k] = has ? T(1) : T(0);
    }
    for (std::size_t begin = 0; begin < b.data.size(); begin += detail::kMaxCount) {
      const std::size_t count = std::min(detail::kMaxCount, b.data.size() - begin);
      b.requests.emplace_back();
      check(MPI_Iallreduce(MPI_IN_PLACE, b.data.data() + begin, static_cast<int>(count), detail::mpi_type<T>(), MPI_SUM,
                           comm_, &b.requests.back()),
            "MPI_Iallreduce");
    }
    b.started = true;
  }

  /// Lets the MPI library advance the sums in flight (most progress only inside MPI calls).
  void progress() {
    for (std::size_t i = 0; i < next_; ++i)
      for (MPI_Request& r : buckets_[i].requests) {
        if (r == MPI_REQUEST_NULL) continue;
        int done = 0;
        check(MPI_Test(&r, &done, MPI_STATUS_IGNORE), "MPI_Test");
      }
  }

  void unpack(Bucket& b) {
    for (std::size_t k = 0; k < b.entries.size(); ++k) {
      Entry& e = entries_[b.entries[k]];
      if (b.data[b.values + k] == T(0)) continue;  // no rank had a gradient: it stays undefined
      Tensor<T>& g = e.param.grad();
      if (!g.defined() || !g.is_unique()) g = Tensor<T>::empty(e.param.shape());
      std::copy_n(b.data.data() + e.offset, e.param.numel(), g.data());
    }
  }

  MPI_Comm comm_;
  std::vector<Entry> entries_;
  std::vector<Bucket> buckets_;
  std::unordered_map<const void*, std::size_t> index_;
  std::size_t next_ = 0;
  double wait_seconds_ = 0;
};

/// A train::ProcessGroup over its own duplicate of an MPI communicator (errors come back as DistError instead of
/// ending the program).
class MpiProcessGroup : public train::ProcessGroup {
 public:
  explicit MpiProcessGroup(MPI_Comm comm, const BucketOptions& buckets = {}) : buckets_(buckets) {
    check(MPI_Comm_dup(comm, &comm_), "MPI_Comm_dup");
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  MpiProcessGroup(const MpiProcessGroup&) = delete;
  MpiProcessGroup& operator=(const MpiProcessGroup&) = delete;
  ~MpiProcessGroup() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Comm_free(&comm_);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  MPI_Comm comm() const { return comm_; }
  void set_bucket_options(const BucketOptions& o) { buckets_ = o; }

  using train::ProcessGroup::all_reduce_sum;
  using train::ProcessGroup::broadcast;
  void all_reduce_sum(double* values, std::size_t count) override {
    for (std::size_t begin = 0; begin < count; begin += detail::kMaxCount)
      check(MPI_Allreduce(MPI_IN_PLACE, values + begin, static_cast<int>(std::min(detail::kMaxCount, count - begin)),
                          MPI_DOUBLE, MPI_SUM, comm_),
            "MPI_Allreduce");
  }
  void broadcast(float* data, std::size_t count, int root) override { bcast(data, count, root); }
  void broadcast(double* data, std::size_t count, int root) override { bcast(data, count, root); }
  void broadcast(std::int64_t* data, std::size_t count, int root) override { bcast(data, count, root); }
  void barrier() { check(MPI_Barrier(comm_), "MPI_Barrier"); }

  std::unique_ptr<train::GradientSynchronizer<float>> gradient_synchronizer(
      const NamedParameters<float>& params) override {
    return std::make_unique<BucketedAllReduce<float>>(params, comm_, buckets_);
  }
  std::unique_ptr<train::GradientSynchronizer<double>> gradient_synchronizer(
      const NamedParameters<double>& params) override {
    return std::make_unique<BucketedAllReduce<double>>(params, comm_, buckets_);
  }

 private:
  template <typename U>
  void bcast(U* data, std::size_t count, int root) {
    for (std::size_t begin = 0; begin < count; begin += detail::kMaxCount)
      check(MPI_Bcast(data + begin, static_cast<int>(std::min(detail::kMaxCount, count - begin)), detail::mpi_type<U>(),
                      root, comm_),
            "MPI_Bcast");
  }

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  BucketOptions buckets_;
};

}  // namespace eigenformer::dist
