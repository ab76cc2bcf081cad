#include "slm/router/store.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "slm/router/limit_state.hpp"
#include "slm/router/sqlite_util.hpp"
#include "slm/util/error.hpp"

namespace slm::router {
namespace {

const char* kSchema = R"(
CREATE TABLE IF NOT EXISTS requests (
  request_id TEXT PRIMARY KEY, time REAL, key_id TEXT, endpoint TEXT, model TEXT, task TEXT, stream INTEGER,
  tier TEXT, deployment TEXT, upstream_model TEXT, input_tokens INTEGER, output_tokens INTEGER,
  latency_s REAL, ttft_s REAL, cost_usd REAL, status INTEGER, error TEXT, policy TEXT, reasons TEXT,
  attempts TEXT, escalations INTEGER);
CREATE INDEX IF NOT EXISTS requests_time ON requests(time);
CREATE TABLE IF NOT EXISTS captures (
  request_id TEXT PRIMARY KEY, time REAL, task TEXT, tier TEXT, messages TEXT, answer TEXT);
CREATE INDEX IF NOT EXISTS captures_task ON captures(task);
CREATE TABLE IF NOT EXISTS outcomes (request_id TEXT PRIMARY KEY, prompt TEXT, strong INTEGER);
)";

using sqlite::exec;
using sqlite::Statement;

sqlite3* open_db(const std::string& path, bool create) {
  sqlite3* db = nullptr;
  const int flags = create ? (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) : SQLITE_OPEN_READONLY;
  if (sqlite3_open_v2(path.c_str(), &db, flags | SQLITE_OPEN_FULLMUTEX, nullptr) != SQLITE_OK) {
    const std::string m = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    fail(ErrorKind::io, "expected to open the router log '{}', found: {}", path, m);
  }
  set_busy_wait(db, 10.0);
  return db;
}

}  // namespace

std::string key_fingerprint(const std::string& api_key) {
  if (api_key.empty()) return "";
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : api_key) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return fmt::format("key-{:016x}", h);
}

Store::Store(const std::string& path) {
  db_ = open_db(path, true);
  try {
    if (path != ":memory:") exec(db_, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;");
    exec(db_, kSchema);
  } catch (...) {
    sqlite3_close(db_);
    throw;
  }
  writer_ = std::thread([this] { writer_loop(); });
}

Store::~Store() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  writer_.join();
  sqlite3_close(db_);
}

void Store::record(RequestRecord r) {
  std::lock_guard lock(mutex_);
  queue_.push_back(std::move(r));
  ++queued_;
  cv_.notify_one();
}

void Store::capture(CaptureRecord c) {
  std::lock_guard lock(mutex_);
  queue_.push_back(std::move(c));
  ++queued_;
  cv_.notify_one();
}

void Store::outcome(OutcomeRecord o) {
  std::lock_guard lock(mutex_);
  queue_.push_back(std::move(o));
  ++queued_;
  cv_.notify_one();
}

void Store::flush() {
  std::unique_lock lock(mutex_);
  const uint64_t target = queued_;
  flushed_cv_.wait(lock, [&] { return written_ >= target; });
}

void Store::writer_loop() {
  for (;;) {
    std::deque<Item> batch;
    {
      std::unique_lock lock(mutex_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty() && stop_) return;
      batch.swap(queue_);
    }
    {
      std::lock_guard db_lock(db_mutex_);
      // A row that fails (a constraint) fails alone: SQLite undoes that statement, the batch goes on.
      auto report = [this](const char* what) {
        if (++write_errors_ <= 5 || write_errors_ % 1000 == 0) {
          fmt::print(stderr, "slm router: log write failed ({} so far): {}\n", write_errors_, what);
        }
      };
      try {
        exec(db_, "BEGIN IMMEDIATE");
        for (const auto& item : batch) {
          try {
            write(item);
          } catch (const std::exception& e) {
            report(e.what());
          }
        }
        exec(db_, "COMMIT");
      } catch (const std::exception& e) {
        try {
          exec(db_, "ROLLBACK");
        } catch (...) {
        }
        report(e.what());
      }
    }
    {
      std::lock_guard lock(mutex_);
      written_ += batch.size();
    }
    flushed_cv_.notify_all();
  }
}

void Store::write(const Item& item) {
  if (const auto* r = std::get_if<RequestRecord>(&item)) {
    Statement s(db_, "INSERT INTO requests VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21)");
    s.bind(1, r->request_id).bind(2, r->time).bind(3, r->key_id).bind(4, r->endpoint).bind(5, r->model).bind(6, r->task);
    s.bind(7, int64_t(r->stream)).bind(8, r->tier).bind(9, r->deployment).bind(10, r->upstream_model);
    s.bind(11, r->input_tokens).bind(12, r->output_tokens).bind(13, r->latency_s).bind(14, r->ttft_s).bind(15, r->cost_usd);
    s.bind(16, int64_t(r->status)).bind(17, r->error).bind(18, r->policy).bind(19, r->reasons.dump()).bind(20, r->attempts.dump());
    s.bind(21, int64_t(r->escalations));
    s.step();
  } else if (const auto* c = std::get_if<CaptureRecord>(&item)) {
    Statement s(db_, "INSERT OR REPLACE INTO captures VALUES (?1,?2,?3,?4,?5,?6)");
    s.bind(1, c->request_id).bind(2, c->time).bind(3, c->task).bind(4, c->tier).bind(5, c->messages.dump()).bind(6, c->answer);
    s.step();
  } else if (const auto* o = std::get_if<OutcomeRecord>(&item)) {
    Statement s(db_, "INSERT OR REPLACE INTO outcomes VALUES (?1,?2,?3)");
    s.bind(1, o->request_id).bind(2, o->prompt).bind(3, int64_t(o->strong));
    s.step();
  }
}

nlohmann::json Store::stats() {
  flush();
  std::lock_guard lock(db_mutex_);
  nlohmann::json tiers = nlohmann::json::object();
  {
    Statement s(db_, "SELECT tier, COUNT(*), SUM(status<>200), SUM(input_tokens), SUM(output_tokens), SUM(cost_usd), "
                     "SUM(escalations) FROM requests GROUP BY tier");
    while (s.step()) {
      tiers[s.text(0)] = {{"requests", s.integer(1)}, {"errors", s.integer(2)}, {"input_tokens", s.integer(3)},
                          {"output_tokens", s.integer(4)}, {"cost_usd", s.real(5)}, {"escalations", s.integer(6)}};
    }
  }
  for (auto& [tier, j] : tiers.items()) {
    std::vector<double> latencies, ttfts;
    Statement s(db_, "SELECT latency_s, ttft_s FROM requests WHERE tier = ?1 AND status = 200");
    s.bind(1, tier);
    while (s.step()) {
      latencies.push_back(s.real(0));
      ttfts.push_back(s.real(1));
    }
    auto pct = [](std::vector<double>& v, double q) {
      if (v.empty()) return 0.0;
      std::sort(v.begin(), v.end());
      return v[std::min(v.size() - 1, size_t(std::floor(q * double(v.size() - 1) + 0.5)))];
    };
    j["latency_p50_s"] = pct(latencies, 0.5);
    j["latency_p99_s"] = pct(latencies, 0.99);
    j["ttft_p50_s"] = pct(ttfts, 0.5);
  }
  nlohmann::json out{{"object", "router.stats"}, {"tiers", tiers}};
  Statement s(db_, "SELECT COUNT(*), COALESCE(SUM(cost_usd), 0) FROM requests");
  if (s.step()) {
    out["requests"] = s.integer(0);
    out["cost_usd"] = s.real(1);
  }
  Statement c(db_, "SELECT COUNT(*) FROM captures");
  if (c.step()) out["captures"] = c.integer(0);
  return out;
}

std::vector<LabeledPrompt> Store::outcomes() {
  flush();
  std::lock_guard lock(db_mutex_);
  std::vector<LabeledPrompt> out;
  Statement s(db_, "SELECT prompt, strong FROM outcomes");
  while (s.step()) out.push_back({s.text(0), s.integer(1) != 0});
  return out;
}

std::map<std::string, double> Store::spend_by_key(double since) {
  flush();
  std::lock_guard lock(db_mutex_);
  std::map<std::string, double> out;
  Statement s(db_, "SELECT key_id, SUM(cost_usd) FROM requests WHERE time >= ?1 GROUP BY key_id");
  s.bind(1, since);
  while (s.step()) out[s.text(0)] = s.real(1);
  return out;
}

std::map<std::string, double> Store::spend_by_tier(double since) {
  flush();
  std::lock_guard lock(db_mutex_);
  std::map<std::string, double> out;
  Statement s(db_, "SELECT tier, SUM(cost_usd) FROM requests WHERE time >= ?1 GROUP BY tier");
  s.bind(1, since);
  while (s.step()) out[s.text(0)] = s.real(1);
  return out;
}

int64_t Store::count_requests() {
  flush();
  std::lock_guard lock(db_mutex_);
  Statement s(db_, "SELECT COUNT(*) FROM requests");
  return s.step() ? s.integer(0) : 0;
}

int64_t export_captures(const std::string& database, const std::string& task, std::ostream& out) {
  sqlite3* db = open_db(database, false);
  struct Closer {
    sqlite3* db;
    ~Closer() { sqlite3_close(db); }
  } closer{db};
  Statement s(db, task.empty() ? "SELECT messages, answer FROM captures ORDER BY time, request_id"
                               : "SELECT messages, answer FROM captures WHERE task = ?1 ORDER BY time, request_id");
  if (!task.empty()) s.bind(1, task);
  std::set<std::string> seen;
  int64_t written = 0;
  while (s.step()) {
    nlohmann::json messages;
    try {
      messages = nlohmann::json::parse(s.text(0));
    } catch (const nlohmann::json::exception&) {
      continue;
    }
    if (!messages.is_array()) continue;
    // Only the fields fine-tuning tools read.
    nlohmann::json clean = nlohmann::json::array();
    for (const auto& m : messages) {
      if (!m.is_object() || !m.contains("role")) continue;
      nlohmann::json c{{"role", m["role"]}, {"content", m.contains("content") ? m["content"] : nlohmann::json("")}};
      clean.push_back(std::move(c));
    }
    // One example per conversation: the first answer captured for the same messages wins.
    if (!seen.insert(clean.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)).second) continue;
    clean.push_back({{"role", "assistant"}, {"content", s.text(1)}});
    nlohmann::json line{{"messages", clean}};
    std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    out << text << "\n";
    ++written;
  }
  return written;
}

}  // namespace slm::router
