// The router's log in SQLite: one row per request (tiers tried, tokens, latency, cost, the policy's
// decision), the outcomes the learned policy trains on, and captured answers of stronger tiers for
// distillation. Writes go through one background thread in batched transactions.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <ostream>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "slm/router/policy.hpp"

struct sqlite3;

namespace slm::router {

struct RequestRecord {
  std::string request_id;
  double time = 0;            // unix seconds at arrival
  std::string key_id;         // fingerprint of the API key ("" none)
  std::string endpoint;       // chat, completions, embeddings
  std::string model;          // requested alias
  std::string task;
  bool stream = false;
  std::string tier;           // tier that answered (or last tried)
  std::string deployment;
  std::string upstream_model;
  int64_t input_tokens = 0;
  int64_t output_tokens = 0;
  double latency_s = 0;
  double ttft_s = 0;
  double cost_usd = 0;
  int status = 200;           // what the client got
  std::string error;
  std::string policy;
  nlohmann::json reasons = nlohmann::json::array();
  nlohmann::json attempts = nlohmann::json::array();  // [{tier, deployment, error, status}]
  int escalations = 0;
};

struct CaptureRecord {
  std::string request_id;
  double time = 0;
  std::string task;
  std::string tier;
  nlohmann::json messages;  // the request's messages
  std::string answer;       // the assistant's text
};

struct OutcomeRecord {
  std::string request_id;
  std::string prompt;
  bool strong = false;  // the cheaper tier's answer was not good enough
};

struct TierTotals {
  uint64_t requests = 0, errors = 0;
  int64_t input_tokens = 0, output_tokens = 0;
  double cost_usd = 0, latency_s = 0;
};

// Fingerprint of an API key for the log (never the key itself).
std::string key_fingerprint(const std::string& api_key);

class Store {
 public:
  // ":memory:" keeps nothing after the process ends.
  explicit Store(const std::string& path);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  void record(RequestRecord r);
  void capture(CaptureRecord c);
  void outcome(OutcomeRecord o);
  // Waits until everything queued so far is written.
  void flush();

  // Per tier: requests, errors, tokens, cost, latency percentiles (from the log).
  nlohmann::json stats();
  std::vector<LabeledPrompt> outcomes();
  // Spend since `since` (unix seconds) per key fingerprint and per tier.
  std::map<std::string, double> spend_by_key(double since);
  std::map<std::string, double> spend_by_tier(double since);
  int64_t count_requests();

 private:
  using Item = std::variant<RequestRecord, CaptureRecord, OutcomeRecord>;
  void writer_loop();
  void write(const Item& item);

  sqlite3* db_ = nullptr;
  std::mutex db_mutex_;
  std::mutex mutex_;
  std::condition_variable cv_, flushed_cv_;
  std::deque<Item> queue_;
  uint64_t queued_ = 0, written_ = 0;
  uint64_t write_errors_ = 0;  // writer thread only
  bool stop_ = false;
  std::thread writer_;
};

// Writes captured answers of `task` ("" all) as chat-format JSONL ({"messages": [...]}, the
// assistant's answer last); one line per distinct conversation (the first answer captured). Returns the number of lines written.
int64_t export_captures(const std::string& database, const std::string& task, std::ostream& out);

}  // namespace slm::router
