// Prometheus text-format metrics: counters and histograms that threads update concurrently.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace slm::server {

// Cumulative histogram with fixed upper bounds (seconds, tokens, ...).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double value);
  // `# HELP`, `# TYPE` and the _bucket/_sum/_count lines of metric `name`.
  std::string text(const std::string& name, const std::string& help) const;
  uint64_t count() const;

 private:
  mutable std::mutex mutex_;
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket, not cumulative; last: +Inf
  double sum_ = 0.0;
  uint64_t total_ = 0;
};

// Latency buckets from 1 ms to 60 s.
std::vector<double> latency_buckets();

// What the HTTP front counts: requests by route and status, open connections.
class HttpMetrics {
 public:
  void record(const std::string& route, int status);
  void connection_opened() { ++open_connections_; }
  void connection_closed() { --open_connections_; }
  int64_t open_connections() const { return open_connections_; }
  uint64_t requests(const std::string& route, int status) const;
  std::string text() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  std::atomic<int64_t> open_connections_{0};
};

// One sample line: `name{labels} value`.
std::string metric_line(const std::string& name, const std::string& labels, double value);
std::string metric_header(const std::string& name, const std::string& type, const std::string& help);
// A label value with \, " and newline escaped.
std::string escape_label(const std::string& value);

}  // namespace slm::server
