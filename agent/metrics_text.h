// The Prometheus text exposition format (version 0.0.4), written by hand:
// Debian 12 packages no C++ client library (prometheus-cpp is not in it),
// and the format is a few lines per family. Histograms with fixed buckets.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace tendril {

class PromText {
 public:
  // A family's HELP and TYPE lines ("counter", "gauge", "histogram").
  void Family(const std::string& name, const std::string& type, const std::string& help);
  // One sample; labels as {name, value} pairs (values escaped here).
  void Sample(const std::string& name, const std::vector<std::pair<std::string, std::string>>& labels, double v);
  void Sample(const std::string& name, double v) { Sample(name, {}, v); }
  const std::string& str() const { return out_; }

 private:
  std::string out_;
};

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size(), 0) {}
  void Observe(double v);
  // The family (HELP, TYPE, cumulative buckets, sum, count).
  void Write(PromText& t, const std::string& name, const std::string& help) const;
  uint64_t count() const { return count_; }

  // kube-proxy's buckets for its sync metrics: 1 ms doubling to about 16 s.
  static std::vector<double> SyncBuckets();

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket, not cumulative
  uint64_t count_ = 0;
  double sum_ = 0;
};

}  // namespace tendril
