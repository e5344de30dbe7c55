#include "agent/metrics_text.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace tendril {
namespace {

std::string Value(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return absl::StrFormat("%.0f", v);
  return absl::StrFormat("%.9g", v);
}

std::string Escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '\\' || c == '"') o += '\\';
    if (c == '\n') {
      o += "\\n";
      continue;
    }
    o += c;
  }
  return o;
}

}  // namespace

void PromText::Family(const std::string& name, const std::string& type, const std::string& help) {
  absl::StrAppend(&out_, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n");
}

void PromText::Sample(const std::string& name, const std::vector<std::pair<std::string, std::string>>& labels,
                      double v) {
  absl::StrAppend(&out_, name);
  if (!labels.empty()) {
    out_ += '{';
    for (size_t i = 0; i < labels.size(); ++i)
      absl::StrAppend(&out_, i ? "," : "", labels[i].first, "=\"", Escape(labels[i].second), "\"");
    out_ += '}';
  }
  absl::StrAppend(&out_, " ", Value(v), "\n");
}

void Histogram::Observe(double v) {
  for (size_t i = 0; i < bounds_.size(); ++i)
    if (v <= bounds_[i]) {
      counts_[i]++;
      break;
    }
  count_++;
  sum_ += v;
}

void Histogram::Write(PromText& t, const std::string& name, const std::string& help) const {
  t.Family(name, "histogram", help);
  uint64_t cum = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cum += counts_[i];
    t.Sample(name + "_bucket", {{"le", Value(bounds_[i])}}, static_cast<double>(cum));
  }
  t.Sample(name + "_bucket", {{"le", "+Inf"}}, static_cast<double>(count_));
  t.Sample(name + "_sum", sum_);
  t.Sample(name + "_count", static_cast<double>(count_));
}

std::vector<double> Histogram::SyncBuckets() {
  std::vector<double> b;
  for (double v = 0.001; v < 20; v *= 2) b.push_back(v);
  return b;
}

}  // namespace tendril
