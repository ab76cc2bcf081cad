// Rate limits (requests and tokens per minute per API key) and spend budgets (per key, per tier).
// Used from the router's thread only.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <string>

#include "slm/router/config.hpp"
#include "slm/router/events.hpp"

namespace slm::router {

struct Admission {
  bool allowed = true;
  bool downgrade = false;  // allowed, but on the cheapest tier
  std::string reason;      // why not allowed or downgraded
};

class Limits {
 public:
  // key_spend: spend so far per key fingerprint; tier_spend: per tier (from the log, for the period).
  Limits(const RouterConfig& config, std::map<std::string, double> key_spend, std::map<std::string, double> tier_spend);

  // Before routing: the key's request rate, token rate (with the prompt's estimate) and budget.
  Admission admit(const std::string& api_key, int64_t estimated_tokens, Clock::time_point now);
  // The tier to use instead of `tier` when its budget is spent: itself when within budget, a cheaper
  // one (earlier in the list) when downgrading, "" when rejected. `why` says what happened.
  std::string tier_within_budget(const std::string& tier, std::string& why) const;
  // After a request: tokens beyond the estimate and the cost.
  void charge(const std::string& api_key, const std::string& tier, int64_t extra_tokens, double cost_usd, Clock::time_point now);

  double key_spend(const std::string& api_key) const;
  double tier_spend(const std::string& tier) const;

 private:
  struct Window {
    std::deque<std::pair<Clock::time_point, int64_t>> events;  // (time, tokens)
    std::deque<Clock::time_point> requests;
    int64_t tokens = 0;
    void prune(Clock::time_point now);
  };
  const RouterConfig& config_;
  std::map<std::string, Window> windows_;
  std::map<std::string, double> key_spend_;   // by fingerprint
  std::map<std::string, double> tier_spend_;
};

// Unix seconds where the budget period began (0 for "total").
double budget_period_start(const std::string& period, double now_unix);

}  // namespace slm::router
