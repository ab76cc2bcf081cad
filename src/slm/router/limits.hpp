// Rate limits (requests and tokens per minute per API key) and spend budgets (per key, per tier),
// counted in a LimitState: this process's memory, or tables in a SQLite file that several router
// replicas share. Used from the router's thread only.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "slm/router/config.hpp"
#include "slm/router/events.hpp"
#include "slm/router/limit_state.hpp"

namespace slm::router {

struct Admission {
  bool allowed = true;
  bool downgrade = false;  // allowed, but on the cheapest tier
  std::string reason;      // why not allowed or downgraded
};

class Limits {
 public:
  Limits(const RouterConfig& config, std::unique_ptr<LimitState> state);

  // Before routing: the key's request rate, token rate (with the prompt's estimate) and budget.
  Admission admit(const std::string& api_key, int64_t estimated_tokens, Clock::time_point now);
  // The tier to use instead of `tier` when its budget is spent: itself when within budget, a cheaper
  // one (earlier in the list) when downgrading, "" when rejected. `why` says what happened.
  std::string tier_within_budget(const std::string& tier, std::string& why);
  // After a request: tokens beyond the estimate and the cost.
  void charge(const std::string& api_key, const std::string& tier, int64_t extra_tokens, double cost_usd, Clock::time_point now);

  double key_spend(const std::string& api_key);
  double tier_spend(const std::string& tier);

 private:
  double period_start() const;
  const RouterConfig& config_;
  std::unique_ptr<LimitState> state_;
};

// Unix seconds where the budget period began (0 for "total").
double budget_period_start(const std::string& period, double now_unix);
// Unix seconds of a steady-clock time point.
double unix_time(Clock::time_point t);

}  // namespace slm::router
