#include "slm/router/limits.hpp"

#include <ctime>

#include <fmt/format.h>

#include "slm/router/store.hpp"

namespace slm::router {

double unix_time(Clock::time_point t) {
  const auto now_sys = std::chrono::system_clock::now();
  const auto now_steady = Clock::now();
  return std::chrono::duration<double>(now_sys.time_since_epoch()).count() + std::chrono::duration<double>(t - now_steady).count();
}

Limits::Limits(const RouterConfig& config, std::unique_ptr<LimitState> state) : config_(config), state_(std::move(state)) {}

double Limits::period_start() const {
  return budget_period_start(config_.budget_period,
                             std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count());
}

Admission Limits::admit(const std::string& api_key, int64_t estimated_tokens, Clock::time_point now) {
  Admission a;
  const KeyLimit* limit = config_.key_limit(api_key);
  if (!limit) return a;
  // A budget that is spent rejects or downgrades; the rates are checked (and the request counted) after.
  if (limit->budget_usd > 0) {
    const double spent = key_spend(api_key);
    if (spent >= limit->budget_usd) {
      if (limit->on_exceed == OnExceed::downgrade) a.downgrade = true;
      else a.allowed = false;
      a.reason = fmt::format("budget: key spent ${:.4f} of ${:.4f}", spent, limit->budget_usd);
      if (!a.allowed) return a;
    }
  }
  if (limit->requests_per_minute <= 0 && limit->tokens_per_minute <= 0) return a;
  std::string refusal;
  LimitState::Usage seen;
  const bool counted = state_->try_admit(api_key, unix_time(now), estimated_tokens, [&](const LimitState::Usage& u) {
    // A rate limit always rejects: a cheaper tier does not make the key slower.
    if (limit->requests_per_minute > 0 && u.requests >= limit->requests_per_minute) {
      refusal = fmt::format("rate limit: {} requests per minute for this key", limit->requests_per_minute);
      return false;
    }
    if (limit->tokens_per_minute > 0 && u.tokens + estimated_tokens > limit->tokens_per_minute) {
      refusal = fmt::format("rate limit: {} tokens per minute for this key ({} used)", limit->tokens_per_minute, u.tokens);
      return false;
    }
    return true;
  }, seen);
  if (!counted) {
    a.allowed = false;
    a.downgrade = false;
    a.reason = refusal;
  }
  return a;
}

std::string Limits::tier_within_budget(const std::string& tier, std::string& why) {
  int index = config_.tier_index(tier);
  while (index >= 0) {
    const std::string& name = config_.tiers[size_t(index)].name;
    const TierBudget* budget = nullptr;
    for (const auto& b : config_.tier_budgets) {
      if (b.tier == name) budget = &b;
    }
    if (!budget) return name;
    const double spent = tier_spend(name);
    if (spent < budget->budget_usd) return name;
    why += fmt::format("{}tier {} spent ${:.4f} of its ${:.4f} budget", why.empty() ? "" : "; ", name, spent, budget->budget_usd);
    if (budget->on_exceed == OnExceed::reject) return "";
    --index;  // the next cheaper tier
  }
  return "";
}

void Limits::charge(const std::string& api_key, const std::string& tier, int64_t extra_tokens, double cost_usd,
                    Clock::time_point now) {
  const KeyLimit* limit = config_.key_limit(api_key);
  if (limit && limit->tokens_per_minute > 0 && extra_tokens != 0) state_->add_tokens(api_key, unix_time(now), extra_tokens);
  if (cost_usd != 0) state_->add_spend(key_fingerprint(api_key), tier, unix_time(now), cost_usd);
}

double Limits::key_spend(const std::string& api_key) { return state_->key_spend(key_fingerprint(api_key), period_start()); }

double Limits::tier_spend(const std::string& tier) { return state_->tier_spend(tier, period_start()); }

double budget_period_start(const std::string& period, double now_unix) {
  if (period == "total") return 0;
  std::time_t t = std::time_t(now_unix);
  std::tm tm{};
  gmtime_r(&t, &tm);
  tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
  if (period == "month") tm.tm_mday = 1;
  return double(timegm(&tm));
}

}  // namespace slm::router
