#include "slm/server/metrics.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace slm::server {

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {
  std::sort(bounds_.begin(), bounds_.end());
}

void Histogram::observe(double value) {
  if (!std::isfinite(value)) return;
  std::lock_guard lock(mutex_);
  const size_t i = size_t(std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin());
  ++counts_[i];
  sum_ += value;
  ++total_;
}

uint64_t Histogram::count() const {
  std::lock_guard lock(mutex_);
  return total_;
}

std::string Histogram::text(const std::string& name, const std::string& help) const {
  std::lock_guard lock(mutex_);
  std::string out = metric_header(name, "histogram", help);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, bounds_[i], cumulative);
  }
  cumulative += counts_.back();
  out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n", name, cumulative);
  out += fmt::format("{}_sum {}\n{}_count {}\n", name, sum_, name, total_);
  return out;
}

std::vector<double> latency_buckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0};
}

void HttpMetrics::record(const std::string& route, int status) {
  std::lock_guard lock(mutex_);
  ++requests_[{route, status}];
}

uint64_t HttpMetrics::requests(const std::string& route, int status) const {
  std::lock_guard lock(mutex_);
  auto it = requests_.find({route, status});
  return it == requests_.end() ? 0 : it->second;
}

std::string HttpMetrics::text() const {
  std::string out = metric_header("slm_http_requests_total", "counter", "HTTP requests by route and status");
  {
    std::lock_guard lock(mutex_);
    for (const auto& [key, n] : requests_) {
      out += metric_line("slm_http_requests_total",
                         fmt::format("route=\"{}\",status=\"{}\"", escape_label(key.first), key.second), double(n));
    }
  }
  out += metric_header("slm_http_open_connections", "gauge", "Open client connections");
  out += metric_line("slm_http_open_connections", "", double(open_connections_.load()));
  return out;
}

std::string metric_line(const std::string& name, const std::string& labels, double value) {
  if (labels.empty()) return fmt::format("{} {}\n", name, value);
  return fmt::format("{}{{{}}} {}\n", name, labels, value);
}

std::string metric_header(const std::string& name, const std::string& type, const std::string& help) {
  return fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

std::string escape_label(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

}  // namespace slm::server
