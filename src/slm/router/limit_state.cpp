#include "slm/router/limit_state.hpp"

#include <sqlite3.h>

#include <chrono>
#include <cmath>
#include <thread>

#include "slm/router/sqlite_util.hpp"
#include "slm/router/store.hpp"
#include "slm/util/error.hpp"

namespace slm::router {

using sqlite::exec;
using sqlite::Statement;

// --- this process only ---------------------------------------------------------------------------

void MemoryLimitState::Window::prune(double now) {
  while (!events.empty() && now - events.front().first >= 60) {
    tokens -= events.front().second;
    events.pop_front();
  }
  while (!requests.empty() && now - requests.front() >= 60) requests.pop_front();
}

MemoryLimitState::MemoryLimitState(std::map<std::string, double> key_spend, std::map<std::string, double> tier_spend,
                                   double loaded_since)
    : loaded_since_(loaded_since) {
  for (const auto& [name, usd] : key_spend) key_spend_[name].loaded = usd;
  for (const auto& [name, usd] : tier_spend) tier_spend_[name].loaded = usd;
}

double MemoryLimitState::Spend::since(double loaded_since, double since) const {
  // The loaded total counts while the period asked for starts no later than the one loaded.
  double total = since <= loaded_since ? loaded : 0.0;
  for (auto it = by_day.lower_bound(int64_t(std::floor(since / 86400))); it != by_day.end(); ++it) total += it->second;
  return total;
}

bool MemoryLimitState::try_admit(const std::string& key, double now, int64_t tokens, const std::function<bool(const Usage&)>& allow,
                                 Usage& seen) {
  Window& w = windows_[key];
  w.prune(now);
  seen.requests = int64_t(w.requests.size());
  seen.tokens = w.tokens;
  if (!allow(seen)) return false;
  w.events.emplace_back(now, tokens);
  w.tokens += tokens;
  w.requests.push_back(now);
  return true;
}

void MemoryLimitState::add_tokens(const std::string& key, double now, int64_t tokens) {
  Window& w = windows_[key];
  w.events.emplace_back(now, tokens);
  w.tokens += tokens;
}

void MemoryLimitState::add_spend(const std::string& key_id, const std::string& tier, double now, double usd) {
  const int64_t day = int64_t(std::floor(now / 86400));
  key_spend_[key_id].by_day[day] += usd;
  tier_spend_[tier].by_day[day] += usd;
}

double MemoryLimitState::key_spend(const std::string& key_id, double since) {
  auto it = key_spend_.find(key_id);
  return it == key_spend_.end() ? 0 : it->second.since(loaded_since_, since);
}

double MemoryLimitState::tier_spend(const std::string& tier, double since) {
  auto it = tier_spend_.find(tier);
  return it == tier_spend_.end() ? 0 : it->second.since(loaded_since_, since);
}

// --- shared through SQLite -------------------------------------------------------------------------

namespace {

struct BusyWait {
  double timeout_s;
};

int busy_wait(void* arg, int attempt) {
  // sqlite3_busy_handler gives no clock: sum the sleeps. 50 us, doubling, at most 250 us each (a
  // writer holds the lock for a batch of rows: short polls waste less than long sleeps overshoot).
  static thread_local double waited_s = 0;
  if (attempt == 0) waited_s = 0;
  const double timeout = static_cast<BusyWait*>(arg)->timeout_s;
  if (waited_s >= timeout) return 0;
  const double sleep_s = std::min(250e-6, 50e-6 * double(1 << std::min(attempt, 3)));
  std::this_thread::sleep_for(std::chrono::duration<double>(sleep_s));
  waited_s += sleep_s;
  return 1;
}

const char* kStateSchema = R"(
CREATE TABLE IF NOT EXISTS rate_usage (
  key_id TEXT NOT NULL, second INTEGER NOT NULL, requests INTEGER NOT NULL, tokens INTEGER NOT NULL,
  PRIMARY KEY (key_id, second));
)";

const auto fingerprint = key_fingerprint;  // the state tables never hold keys

// Rolls back an open transaction unless committed.
class Transaction {
 public:
  explicit Transaction(sqlite3* db) : db_(db) { exec(db_, "BEGIN IMMEDIATE"); }
  ~Transaction() {
    if (!done_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  void commit() {
    exec(db_, "COMMIT");
    done_ = true;
  }

 private:
  sqlite3* db_;
  bool done_ = false;
};

}  // namespace

void set_busy_wait(sqlite3* db, double timeout_s) {
  // One handler argument per process is enough: every connection waits as long.
  static BusyWait wait{10.0};
  wait.timeout_s = timeout_s;
  sqlite3_busy_handler(db, busy_wait, &wait);
}

SqliteLimitState::SqliteLimitState(const std::string& database) {
  if (database == ":memory:") {
    fail(ErrorKind::invalid_argument, "expected a database file for shared limits (accounting.shared), found ':memory:'");
  }
  if (sqlite3_open_v2(database.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr) != SQLITE_OK) {
    const std::string m = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    fail(ErrorKind::io, "expected to open the router database '{}', found: {}", database, m);
  }
  try {
    set_busy_wait(db_, 10.0);
    exec(db_, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;");
    exec(db_, kStateSchema);
    // The spend table, filled once from the request log by whichever replica creates it.
    Transaction t(db_);
    bool exists = false;
    {
      Statement s(db_, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'spend'");
      exists = s.step();
    }
    if (!exists) {
      exec(db_, "CREATE TABLE spend (scope TEXT NOT NULL, name TEXT NOT NULL, day INTEGER NOT NULL, usd REAL NOT NULL, "
                "PRIMARY KEY (scope, name, day))");
      bool have_log = false;
      {
        Statement s(db_, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'requests'");
        have_log = s.step();
      }
      if (have_log) {
        exec(db_, "INSERT INTO spend SELECT 'key', key_id, CAST(time / 86400 AS INTEGER), SUM(cost_usd) FROM requests "
                  "WHERE key_id <> '' AND cost_usd <> 0 GROUP BY 2, 3");
        exec(db_, "INSERT INTO spend SELECT 'tier', tier, CAST(time / 86400 AS INTEGER), SUM(cost_usd) FROM requests "
                  "WHERE cost_usd <> 0 GROUP BY 2, 3");
      }
    }
    t.commit();
  } catch (...) {
    sqlite3_close(db_);
    throw;
  }
}

SqliteLimitState::~SqliteLimitState() { sqlite3_close(db_); }

bool SqliteLimitState::try_admit(const std::string& key, double now, int64_t tokens, const std::function<bool(const Usage&)>& allow,
                                 Usage& seen) {
  const std::string id = fingerprint(key);
  const int64_t second = int64_t(std::floor(now));
  Transaction t(db_);
  {
    Statement prune(db_, "DELETE FROM rate_usage WHERE key_id = ?1 AND second <= ?2");
    prune.bind(1, id).bind(2, second - 60).step();
  }
  {
    Statement s(db_, "SELECT COALESCE(SUM(requests), 0), COALESCE(SUM(tokens), 0) FROM rate_usage WHERE key_id = ?1");
    s.bind(1, id);
    if (s.step()) {
      seen.requests = s.integer(0);
      seen.tokens = s.integer(1);
    }
  }
  if (!allow(seen)) return false;  // rolled back: nothing was written
  Statement add(db_, "INSERT INTO rate_usage VALUES (?1, ?2, 1, ?3) ON CONFLICT (key_id, second) DO UPDATE "
                     "SET requests = requests + 1, tokens = tokens + excluded.tokens");
  add.bind(1, id).bind(2, second).bind(3, tokens).step();
  if (++admissions_ % 1024 == 0) {
    // Keys that went quiet: their old seconds go too, now and then.
    Statement old(db_, "DELETE FROM rate_usage WHERE second <= ?1");
    old.bind(1, second - 60).step();
  }
  t.commit();
  return true;
}

void SqliteLimitState::add_tokens(const std::string& key, double now, int64_t tokens) {
  Statement add(db_, "INSERT INTO rate_usage VALUES (?1, ?2, 0, ?3) ON CONFLICT (key_id, second) DO UPDATE "
                     "SET tokens = tokens + excluded.tokens");
  add.bind(1, fingerprint(key)).bind(2, int64_t(std::floor(now))).bind(3, tokens).step();
}

void SqliteLimitState::add_spend(const std::string& key_id, const std::string& tier, double now, double usd) {
  const int64_t day = int64_t(std::floor(now / 86400));
  Transaction t(db_);
  const char* sql = "INSERT INTO spend VALUES (?1, ?2, ?3, ?4) ON CONFLICT (scope, name, day) DO UPDATE SET usd = usd + excluded.usd";
  if (!key_id.empty()) {
    Statement s(db_, sql);
    s.bind(1, std::string("key")).bind(2, key_id).bind(3, day).bind(4, usd).step();
  }
  Statement s(db_, sql);
  s.bind(1, std::string("tier")).bind(2, tier).bind(3, day).bind(4, usd).step();
  t.commit();
}

double SqliteLimitState::spend(const char* scope, const std::string& name, double since) {
  Statement s(db_, "SELECT COALESCE(SUM(usd), 0) FROM spend WHERE scope = ?1 AND name = ?2 AND day >= ?3");
  s.bind(1, std::string(scope)).bind(2, name).bind(3, int64_t(std::floor(since / 86400)));
  return s.step() ? s.real(0) : 0.0;
}

double SqliteLimitState::key_spend(const std::string& key_id, double since) { return spend("key", key_id, since); }

double SqliteLimitState::tier_spend(const std::string& tier, double since) { return spend("tier", tier, since); }

}  // namespace slm::router
