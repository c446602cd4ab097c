// Classification metrics: the confusion matrix and what is read from it (accuracy, per-class precision, recall
// and F1, macro-F1), matching sklearn.metrics' confusion_matrix, accuracy_score and f1_score(average="macro")
// with zero_division=0.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "eigenformer/core/config.hpp"
#include "eigenformer/core/error.hpp"
#include "eigenformer/tensor/tensor.hpp"

namespace eigenformer::train {

/// Counts of (true class, predicted class) pairs: row = true class, column = predicted class (sklearn's layout).
class ConfusionMatrix {
 public:
  ConfusionMatrix() = default;
  /// Throws ValueError unless num_classes >= 1.
  explicit ConfusionMatrix(Index num_classes) : n_(num_classes) {
    if (num_classes < 1)
      throw ValueError(
          eigenformer::detail::concat("ConfusionMatrix: num_classes is ", num_classes, ", expected at least 1"));
    counts_.assign(static_cast<std::size_t>(n_ * n_), 0);
  }

  /// The matrix of (n, n) row-major counts, as counts() returns them; throws ValueError for another size.
  ConfusionMatrix(Index num_classes, std::vector<Index> counts) : ConfusionMatrix(num_classes) {
    if (counts.size() != counts_.size())
      throw ValueError(eigenformer::detail::concat("ConfusionMatrix: got ", counts.size(), " counts for ", n_,
                                                   " classes, expected ", counts_.size()));
    counts_ = std::move(counts);
  }

  Index num_classes() const { return n_; }
  /// The counts, (n, n) row-major: row = true class.
  const std::vector<Index>& counts() const { return counts_; }

  /// Records one example; throws ValueError for a class outside [0, num_classes).
  void add(std::int64_t target, std::int64_t predicted) {
    check_class("target", target);
    check_class("predicted", predicted);
    ++counts_[static_cast<std::size_t>(target * n_ + predicted)];
  }

  /// Records every pair of two (N) tensors; throws ShapeError when their shapes differ or are not 1-D.
  void add(const Tensor<std::int64_t>& targets, const Tensor<std::int64_t>& predictions) {
    if (targets.dim() != 1 || targets.shape() != predictions.shape())
      throw ShapeError(eigenformer::detail::concat(
          "ConfusionMatrix::add: targets is ", eigenformer::to_string(targets.shape()), ", predictions is ",
          eigenformer::to_string(predictions.shape()), ", expected two (N) tensors"));
    for (Index i = 0; i < targets.numel(); ++i) add(targets[i], predictions[i]);
  }

  /// Adds the counts of another matrix of the same size (throws ValueError otherwise).
  void merge(const ConfusionMatrix& other) {
    if (other.n_ != n_)
      throw ValueError(eigenformer::detail::concat("ConfusionMatrix::merge: ", other.n_, " classes, expected ", n_));
    for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  }

  /// Examples of true class target predicted as predicted (unchecked beyond an assert).
  Index count(Index target, Index predicted) const {
    EIGENFORMER_ASSERT(target >= 0 && target < n_ && predicted >= 0 && predicted < n_);
    return counts_[static_cast<std::size_t>(target * n_ + predicted)];
  }
  /// All examples recorded.
  Index total() const {
    Index t = 0;
    for (Index c : counts_) t += c;
    return t;
  }
  /// Examples whose true class is c (the row sum).
  Index support(Index c) const {
    Index s = 0;
    for (Index p = 0; p < n_; ++p) s += count(c, p);
    return s;
  }
  /// Examples predicted as c (the column sum).
  Index predicted_count(Index c) const {
    Index s = 0;
    for (Index t = 0; t < n_; ++t) s += count(t, c);
    return s;
  }

  /// Fraction predicted correctly (the trace over the total); NaN when nothing was recorded.
  double accuracy() const {
    Index correct = 0;
    for (Index c = 0; c < n_; ++c) correct += count(c, c);
    return ratio(correct, total(), std::numeric_limits<double>::quiet_NaN());
  }
  /// tp / (tp + fp) of class c; 0 when c was never predicted (zero_division=0).
  double precision(Index c) const { return ratio(count(checked(c), c), predicted_count(c), 0.0); }
  /// tp / (tp + fn) of class c; 0 when c never occurs (zero_division=0).
  double recall(Index c) const { return ratio(count(checked(c), c), support(c), 0.0); }
  /// 2 tp / (2 tp + fp + fn) of class c (the harmonic mean of precision and recall); 0 when both are 0.
  double f1(Index c) const {
    const Index tp = count(checked(c), c);
    return ratio(2 * tp, support(c) + predicted_count(c), 0.0);
  }
  /// The unweighted mean of f1 over the classes that occur as a target or a prediction (sklearn's default
  /// labels: the union of y_true and y_pred); NaN when nothing was recorded.
  double macro_f1() const {
    double sum = 0;
    Index classes = 0;
    for (Index c = 0; c < n_; ++c) {
      if (support(c) == 0 && predicted_count(c) == 0) continue;
      sum += f1(c);
      ++classes;
    }
    return classes ? sum / static_cast<double>(classes) : std::numeric_limits<double>::quiet_NaN();
  }

  /// A table with a header row of predicted labels and one row per true label; labels default to class numbers.
  /// Throws ValueError when labels is given with a size other than num_classes.
  std::string to_string(const std::vector<std::string>& labels = {}) const {
    if (!labels.empty() && static_cast<Index>(labels.size()) != n_)
      throw ValueError(eigenformer::detail::concat("ConfusionMatrix::to_string: got ", labels.size(), " labels for ",
                                                   n_, " classes"));
    std::vector<std::string> names;
    for (Index c = 0; c < n_; ++c) names.push_back(labels.empty() ? std::to_string(c) : labels[c]);
    std::size_t width = std::string("true\\pred").size();
    for (const std::string& s : names) width = std::max(width, s.size());
    for (Index c : counts_) width = std::max(width, std::to_string(c).size());
    const auto pad = [width](const std::string& s) { return std::string(width - s.size(), ' ') + s; };
    std::ostringstream out;
    out << pad("true\\pred");
    for (const std::string& s : names) out << ' ' << pad(s);
    for (Index t = 0; t < n_; ++t) {
      out << '\n' << pad(names[static_cast<std::size_t>(t)]);
      for (Index p = 0; p < n_; ++p) out << ' ' << pad(std::to_string(count(t, p)));
    }
    return out.str();
  }

 private:
  static double ratio(Index num, Index den, double if_zero) {
    return den == 0 ? if_zero : static_cast<double>(num) / static_cast<double>(den);
  }
  void check_class(const char* what, std::int64_t c) const {
    if (c < 0 || c >= n_)
      throw ValueError(eigenformer::detail::concat("ConfusionMatrix::add: ", what, " class ", c,
                                                   " is out of range, expected 0 <= ", what, " < ", n_));
  }
  Index checked(Index c) const {
    if (c < 0 || c >= n_)
      throw ValueError(
          eigenformer::detail::concat("ConfusionMatrix: class ", c, " is out of range for ", n_, " classes"));
    return c;
  }

  Index n_ = 0;
  std::vector<Index> counts_;  // (n_, n_) row-major
};

/// The confusion matrix of (N) targets and predictions over num_classes classes.
inline ConfusionMatrix confusion_matrix(const Tensor<std::int64_t>& targets, const Tensor<std::int64_t>& predictions,
                                        Index num_classes) {
  ConfusionMatrix m(num_classes);
  m.add(targets, predictions);
  return m;
}

/// Fraction of equal entries of two (N) tensors (sklearn.metrics.accuracy_score); NaN for N = 0.
inline double accuracy(const Tensor<std::int64_t>& targets, const Tensor<std::int64_t>& predictions) {
  if (targets.dim() != 1 || targets.shape() != predictions.shape())
    throw ShapeError(eigenformer::detail::concat("accuracy: targets is ", to_string(targets.shape()),
                                                 ", predictions is ", to_string(predictions.shape()),
                                                 ", expected two (N) tensors"));
  Index correct = 0;
  for (Index i = 0; i < targets.numel(); ++i) correct += targets[i] == predictions[i];
  return targets.numel() ? static_cast<double>(correct) / static_cast<double>(targets.numel())
                         : std::numeric_limits<double>::quiet_NaN();
}

/// Macro-averaged F1 of (N) targets and predictions (sklearn f1_score(average="macro", zero_division=0)).
inline double macro_f1(const Tensor<std::int64_t>& targets, const Tensor<std::int64_t>& predictions,
                       Index num_classes) {
  return confusion_matrix(targets, predictions, num_classes).macro_f1();
}

}  // namespace eigenformer::train
