// Choosing a deployment within a tier: least outstanding requests weighted by observed latency and
// the configured weight; a circuit breaker benches a deployment after consecutive failures for a
// cool-down, after which one trial request decides whether it stays benched.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "slm/router/config.hpp"
#include "slm/router/events.hpp"

namespace slm::router {

struct DeploymentState {
  std::string name;
  double weight = 1;
  std::shared_ptr<Deployment> impl;
  int outstanding = 0;
  double latency_ewma_s = 0;  // 0: no observation yet
  int consecutive_failures = 0;
  Clock::time_point benched_until{};
  uint64_t requests = 0, failures = 0;
  bool benched(Clock::time_point now) const { return now < benched_until; }
};

class Balancer {
 public:
  explicit Balancer(BreakerConfig breaker) : breaker_(breaker) {}
  void add(std::string name, double weight, std::shared_ptr<Deployment> impl);

  // The best deployment not benched, preferring ones not in `tried`; nullptr when all are benched.
  DeploymentState* pick(Clock::time_point now, const std::vector<const DeploymentState*>& tried);
  void started(DeploymentState& d);
  void succeeded(DeploymentState& d, double latency_s);
  void failed(DeploymentState& d, Clock::time_point now);
  // Ended without a verdict on the deployment (client went away, 4xx of the request's own making).
  void released(DeploymentState& d);

  std::vector<DeploymentState>& deployments() { return deployments_; }
  const std::vector<DeploymentState>& deployments() const { return deployments_; }

 private:
  BreakerConfig breaker_;
  std::vector<DeploymentState> deployments_;
  size_t next_ = 0;  // rotates ties
};

}  // namespace slm::router
