#include "slm/router/limits.hpp"

#include <ctime>

#include <fmt/format.h>

#include "slm/router/store.hpp"

namespace slm::router {

void Limits::Window::prune(Clock::time_point now) {
  while (!events.empty() && now - events.front().first >= std::chrono::seconds(60)) {
    tokens -= events.front().second;
    events.pop_front();
  }
  while (!requests.empty() && now - requests.front() >= std::chrono::seconds(60)) requests.pop_front();
}

Limits::Limits(const RouterConfig& config, std::map<std::string, double> key_spend, std::map<std::string, double> tier_spend)
    : config_(config), key_spend_(std::move(key_spend)), tier_spend_(std::move(tier_spend)) {}

Admission Limits::admit(const std::string& api_key, int64_t estimated_tokens, Clock::time_point now) {
  Admission a;
  const KeyLimit* limit = config_.key_limit(api_key);
  if (!limit) return a;
  Window& w = windows_[api_key];
  w.prune(now);
  auto refuse = [&](std::string why) {
    if (limit->on_exceed == OnExceed::downgrade) {
      a.downgrade = true;
    } else {
      a.allowed = false;
    }
    a.reason = std::move(why);
  };
  if (limit->requests_per_minute > 0 && int64_t(w.requests.size()) >= limit->requests_per_minute) {
    a.allowed = false;  // a rate limit always rejects: a cheaper tier does not make the key slower
    a.reason = fmt::format("rate limit: {} requests per minute for this key", limit->requests_per_minute);
    return a;
  }
  if (limit->tokens_per_minute > 0 && w.tokens + estimated_tokens > limit->tokens_per_minute) {
    a.allowed = false;
    a.reason = fmt::format("rate limit: {} tokens per minute for this key ({} used)", limit->tokens_per_minute, w.tokens);
    return a;
  }
  if (limit->budget_usd > 0) {
    const double spent = key_spend(api_key);
    if (spent >= limit->budget_usd) refuse(fmt::format("budget: key spent ${:.4f} of ${:.4f}", spent, limit->budget_usd));
  }
  if (a.allowed) {
    w.events.emplace_back(now, estimated_tokens);
    w.tokens += estimated_tokens;
    w.requests.push_back(now);
  }
  return a;
}

std::string Limits::tier_within_budget(const std::string& tier, std::string& why) const {
  int index = config_.tier_index(tier);
  while (index >= 0) {
    const std::string& name = config_.tiers[size_t(index)].name;
    const TierBudget* budget = nullptr;
    for (const auto& b : config_.tier_budgets) {
      if (b.tier == name) budget = &b;
    }
    if (!budget || tier_spend(name) < budget->budget_usd) return name;
    why += fmt::format("{}tier {} spent ${:.4f} of its ${:.4f} budget", why.empty() ? "" : "; ", name, tier_spend(name), budget->budget_usd);
    if (budget->on_exceed == OnExceed::reject) return "";
    --index;  // the next cheaper tier
  }
  return "";
}

void Limits::charge(const std::string& api_key, const std::string& tier, int64_t extra_tokens, double cost_usd,
                    Clock::time_point now) {
  if (config_.key_limit(api_key) && extra_tokens != 0) {
    Window& w = windows_[api_key];
    w.events.emplace_back(now, extra_tokens);
    w.tokens += extra_tokens;
  }
  if (cost_usd != 0) {
    key_spend_[key_fingerprint(api_key)] += cost_usd;
    tier_spend_[tier] += cost_usd;
  }
}

double Limits::key_spend(const std::string& api_key) const {
  auto it = key_spend_.find(key_fingerprint(api_key));
  return it == key_spend_.end() ? 0 : it->second;
}

double Limits::tier_spend(const std::string& tier) const {
  auto it = tier_spend_.find(tier);
  return it == tier_spend_.end() ? 0 : it->second;
}

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
