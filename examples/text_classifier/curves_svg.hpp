// Training curves as a standalone SVG file (no plotting library): two panels, the training and validation loss per
// epoch and the training and validation accuracy per epoch, read from a run's metrics.csv.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <eigenformer/train/history.hpp>
#include <filesystem>
#include <functional>
#include <limits>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace text_classifier {

using eigenformer::Index;

namespace detail {

struct Series {
  std::string name;
  std::string color;
  std::vector<std::pair<double, double>> points;  // (epoch, value); NaN values are skipped
};

inline std::string fmt(double v, const char* f = "%.4g") {
  char buf[32];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

/// A "nice" tick step (1, 2 or 5 times a power of ten) giving about `ticks` ticks over span.
inline double tick_step(double span, int ticks) {
  const double raw = span / ticks;
  const double p = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0})
    if (m * p >= raw) return m * p;
  return 10 * p;
}

/// One panel at (x0, y0) of size (w, h): axes, ticks, grid, a polyline with dots per series and a legend.
inline void panel(std::ostringstream& svg, double x0, double y0, double w, double h, const std::string& title,
                  const std::vector<Series>& series, Index epochs) {
  const double left = x0 + 55, right = x0 + w - 15, top = y0 + 30, bottom = y0 + h - 40;
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (const Series& s : series)
    for (const auto& [x, y] : s.points)
      if (std::isfinite(y)) lo = std::min(lo, y), hi = std::max(hi, y);
  if (!std::isfinite(lo)) lo = 0, hi = 1;
  if (hi - lo < 1e-9) lo -= 0.5, hi += 0.5;
  const double pad = 0.05 * (hi - lo);
  lo -= pad;
  hi += pad;
  const double x_max = std::max<double>(1, static_cast<double>(epochs));
  const auto px = [&](double e) {
    return epochs <= 1 ? (left + right) / 2 : left + (e - 1) / (x_max - 1) * (right - left);
  };
  const auto py = [&](double v) { return bottom - (v - lo) / (hi - lo) * (bottom - top); };

  svg << "<text x=\"" << (left + right) / 2 << "\" y=\"" << y0 + 18 << "\" text-anchor=\"middle\" font-size=\"14\">"
      << title << "</text>\n";
  const double step = tick_step(hi - lo, 5);
  for (double i = std::ceil(lo / step); i * step <= hi + 1e-12; i += 1) {
    const double v = i == 0 ? 0.0 : i * step;  // multiples of step without drift, and no "-0" label
    svg << "<line x1=\"" << left << "\" x2=\"" << right << "\" y1=\"" << py(v) << "\" y2=\"" << py(v)
        << "\" stroke=\"#e0e0e0\"/>\n<text x=\"" << left - 6 << "\" y=\"" << py(v) + 4
        << "\" text-anchor=\"end\" font-size=\"11\">" << fmt(v) << "</text>\n";
  }
  const Index every = std::max<Index>(1, static_cast<Index>(std::ceil(static_cast<double>(epochs) / 10)));
  for (Index e = 1; e <= epochs; e += every)
    svg << "<text x=\"" << px(static_cast<double>(e)) << "\" y=\"" << bottom + 16
        << "\" text-anchor=\"middle\" font-size=\"11\">" << e << "</text>\n";
  svg << "<text x=\"" << (left + right) / 2 << "\" y=\"" << bottom + 32
      << "\" text-anchor=\"middle\" font-size=\"12\">epoch</text>\n";
  svg << "<rect x=\"" << left << "\" y=\"" << top << "\" width=\"" << right - left << "\" height=\"" << bottom - top
      << "\" fill=\"none\" stroke=\"#444\"/>\n";

  double legend_y = top + 14;
  for (const Series& s : series) {
    std::ostringstream pts;
    for (const auto& [x, y] : s.points)
      if (std::isfinite(y)) pts << px(x) << ',' << py(y) << ' ';
    svg << "<polyline fill=\"none\" stroke=\"" << s.color << "\" stroke-width=\"2\" points=\"" << pts.str() << "\"/>\n";
    for (const auto& [x, y] : s.points)
      if (std::isfinite(y))
        svg << "<circle cx=\"" << px(x) << "\" cy=\"" << py(y) << "\" r=\"3\" fill=\"" << s.color << "\"/>\n";
    svg << "<line x1=\"" << right - 110 << "\" x2=\"" << right - 90 << "\" y1=\"" << legend_y - 4 << "\" y2=\""
        << legend_y - 4 << "\" stroke=\"" << s.color << "\" stroke-width=\"2\"/>\n<text x=\"" << right - 85 << "\" y=\""
        << legend_y << "\" font-size=\"11\">" << s.name << "</text>\n";
    legend_y += 16;
  }
}

}  // namespace detail

/// The SVG document of the loss and accuracy curves of a history (one point per epoch).
inline std::string curves_svg(const std::vector<eigenformer::train::EpochRecord>& history) {
  using detail::Series;
  const auto series = [&history](const char* name, const char* color,
                                 const std::function<double(const eigenformer::train::EpochRecord&)>& get) {
    Series s{name, color, {}};
    for (const auto& r : history) s.points.emplace_back(static_cast<double>(r.epoch), get(r));
    return s;
  };
  const Index epochs = history.empty() ? 1 : history.back().epoch;
  std::ostringstream svg;
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"880\" height=\"340\" viewBox=\"0 0 880 340\" "
         "font-family=\"sans-serif\">\n<rect width=\"880\" height=\"340\" fill=\"white\"/>\n";
  detail::panel(svg, 0, 0, 440, 340, "loss",
                {series("train", "#1f77b4", [](const auto& r) { return r.metric("train_loss"); }),
                 series("validation", "#d62728", [](const auto& r) { return r.metric("valid_loss"); })},
                epochs);
  detail::panel(svg, 440, 0, 440, 340, "accuracy",
                {series("train", "#1f77b4", [](const auto& r) { return r.metric("train_accuracy"); }),
                 series("validation", "#d62728", [](const auto& r) { return r.metric("valid_accuracy"); })},
                epochs);
  svg << "</svg>\n";
  return svg.str();
}

/// Reads metrics_csv and writes the curves to svg_path (throws eigenformer::IoError on failure).
inline void write_curves_svg(const std::filesystem::path& metrics_csv, const std::filesystem::path& svg_path) {
  eigenformer::io::write_text_file_atomically(svg_path, curves_svg(eigenformer::train::read_metrics_csv(metrics_csv)),
                                              "write_curves_svg");
}

}  // namespace text_classifier
