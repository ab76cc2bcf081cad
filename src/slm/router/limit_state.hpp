// Where rate limits and spend budgets keep their counts. MemoryLimitState: this process only (rates
// since start; spend loaded from the log at start, then kept per UTC day). SqliteLimitState: tables in the router's SQLite database
// (WAL mode) that several router processes on one host share; an admission is one IMMEDIATE
// transaction, so checking a key's minute and counting the request is atomic across processes.
// Another shared store (PostgreSQL, Redis) would be one more implementation of LimitState.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>

struct sqlite3;

namespace slm::router {

class LimitState {
 public:
  struct Usage {
    int64_t requests = 0;
    int64_t tokens = 0;
  };
  virtual ~LimitState() = default;
  // Atomically: the key's use over the minute before `now` (unix seconds) into `seen`; when
  // allow(seen) holds, one request and `tokens` are counted at `now`. Returns whether it was counted.
  virtual bool try_admit(const std::string& key, double now, int64_t tokens, const std::function<bool(const Usage&)>& allow,
                         Usage& seen) = 0;
  // Tokens counted after the answer (beyond the prompt's estimate); may be negative.
  virtual void add_tokens(const std::string& key, double now, int64_t tokens) = 0;
  // Spend of a request, by key fingerprint ("" none) and tier.
  virtual void add_spend(const std::string& key_id, const std::string& tier, double now, double usd) = 0;
  // Spend since `since` (unix seconds).
  virtual double key_spend(const std::string& key_id, double since) = 0;
  virtual double tier_spend(const std::string& tier, double since) = 0;
};

class MemoryLimitState : public LimitState {
 public:
  // Spend since `loaded_since` (unix seconds: the budget period's start) per key fingerprint and per
  // tier, from the log. Spend added later is kept per day, so a later period counts only its days.
  MemoryLimitState(std::map<std::string, double> key_spend, std::map<std::string, double> tier_spend, double loaded_since = 0);
  bool try_admit(const std::string& key, double now, int64_t tokens, const std::function<bool(const Usage&)>& allow,
                 Usage& seen) override;
  void add_tokens(const std::string& key, double now, int64_t tokens) override;
  void add_spend(const std::string& key_id, const std::string& tier, double now, double usd) override;
  double key_spend(const std::string& key_id, double since) override;
  double tier_spend(const std::string& tier, double since) override;

 private:
  struct Window {
    std::deque<std::pair<double, int64_t>> events;  // (time, tokens)
    std::deque<double> requests;
    int64_t tokens = 0;
    void prune(double now);
  };
  // Spend loaded at start (counted while `since` <= loaded_since_) and added since, per name and day.
  struct Spend {
    double loaded = 0;
    std::map<int64_t, double> by_day;
    double since(double loaded_since, double since) const;
  };
  std::map<std::string, Window> windows_;
  std::map<std::string, Spend> key_spend_;
  std::map<std::string, Spend> tier_spend_;
  double loaded_since_ = 0;
};

// Tables (created when missing):
//   rate_usage(key_id, second, requests, tokens): a key's use per whole second; a minute is the
//     60 seconds up to and including the current one;
//   spend(scope 'key' | 'tier', name, day, usd): spend per UTC day (unix seconds / 86400), so any
//     budget period is a sum of whole days; filled from the request log when the table is created.
// Keys in rate_usage are fingerprints, never the keys themselves.
class SqliteLimitState : public LimitState {
 public:
  explicit SqliteLimitState(const std::string& database);
  ~SqliteLimitState() override;
  SqliteLimitState(const SqliteLimitState&) = delete;
  SqliteLimitState& operator=(const SqliteLimitState&) = delete;
  bool try_admit(const std::string& key, double now, int64_t tokens, const std::function<bool(const Usage&)>& allow,
                 Usage& seen) override;
  void add_tokens(const std::string& key, double now, int64_t tokens) override;
  void add_spend(const std::string& key_id, const std::string& tier, double now, double usd) override;
  double key_spend(const std::string& key_id, double since) override;
  double tier_spend(const std::string& tier, double since) override;

 private:
  double spend(const char* scope, const std::string& name, double since);
  sqlite3* db_ = nullptr;
  uint64_t admissions_ = 0;
};

// Waits for a database another connection holds: short sleeps, growing, for up to `timeout_s`.
void set_busy_wait(sqlite3* db, double timeout_s);

}  // namespace slm::router
