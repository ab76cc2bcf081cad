#include "slm/router/balancer.hpp"

#include <algorithm>

namespace slm::router {

void Balancer::add(std::string name, double weight, std::shared_ptr<Deployment> impl) {
  DeploymentState d;
  d.name = std::move(name);
  d.weight = weight;
  d.impl = std::move(impl);
  deployments_.push_back(std::move(d));
}

DeploymentState* Balancer::pick(Clock::time_point now, const std::vector<const DeploymentState*>& tried) {
  if (deployments_.empty()) return nullptr;
  // Deployments without a latency yet count as the mean of the others (or 1 s), so they get tried.
  double sum = 0;
  int known = 0;
  for (const auto& d : deployments_) {
    if (d.latency_ewma_s > 0) {
      sum += d.latency_ewma_s;
      ++known;
    }
  }
  const double default_latency = known ? sum / known : 1.0;
  DeploymentState* best = nullptr;
  double best_score = 0;
  bool best_tried = true;
  const size_t n = deployments_.size();
  for (size_t k = 0; k < n; ++k) {
    DeploymentState& d = deployments_[(next_ + k) % n];
    if (d.benched(now)) continue;
    const bool was_tried = std::find(tried.begin(), tried.end(), &d) != tried.end();
    const double latency = d.latency_ewma_s > 0 ? d.latency_ewma_s : default_latency;
    const double score = (d.outstanding + 1) * latency / d.weight;
    if (!best || (best_tried && !was_tried) || (was_tried == best_tried && score < best_score)) {
      best = &d;
      best_score = score;
      best_tried = was_tried;
    }
  }
  next_ = (next_ + 1) % n;
  return best;
}

void Balancer::started(DeploymentState& d) {
  ++d.outstanding;
  ++d.requests;
}

void Balancer::succeeded(DeploymentState& d, double latency_s) {
  d.outstanding = std::max(0, d.outstanding - 1);
  d.consecutive_failures = 0;
  d.benched_until = {};
  d.latency_ewma_s = d.latency_ewma_s > 0 ? 0.8 * d.latency_ewma_s + 0.2 * latency_s : latency_s;
}

void Balancer::failed(DeploymentState& d, Clock::time_point now) {
  d.outstanding = std::max(0, d.outstanding - 1);
  ++d.failures;
  ++d.consecutive_failures;
  if (d.consecutive_failures >= breaker_.failures) {
    d.benched_until = now + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(breaker_.cooldown_s));
  }
}

void Balancer::released(DeploymentState& d) { d.outstanding = std::max(0, d.outstanding - 1); }

}  // namespace slm::router
