// The router's configuration (router.yaml): tiers and their deployments, routes, policies, limits,
// budgets, accounting and capture. Parsed and validated once at start; every error names the file,
// line and column, what was expected and what was found. docs/router.md documents the format.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace slm::router {

// Where in the YAML file a value came from (1-based), for messages about it after parsing.
struct Where {
  int line = 0;
  int column = 0;
};

struct DeploymentConfig {
  std::string name;         // "<tier>/<index>" unless given
  std::string model_path;   // in-process model: a file, folder or store name (model: ...)
  std::string url;          // upstream OpenAI-compatible base URL, e.g. http://host:8080/v1
  std::string api_key_env;  // environment variable holding the upstream's bearer token ("" none)
  std::string model;        // model name sent upstream ("" keep the client's)
  double weight = 1.0;      // relative share when latencies are equal
  bool local() const { return !model_path.empty(); }
};

struct TierConfig {
  std::string name;
  std::vector<DeploymentConfig> deployments;
  double price_input = 0;   // USD per million input tokens
  double price_output = 0;  // USD per million output tokens
  int64_t context = 0;      // context limit in tokens; 0: none
  double timeout_s = 60;    // whole attempt (first byte for streams: see first_byte_timeout_s)
  double first_byte_timeout_s = 0;  // 0: same as timeout_s
  double connect_timeout_s = 5;
  std::string fallback;     // next tier on failure; "" the next tier in the list; "none" no fallback
  // How prompt lengths are counted for this tier: a tokenizer file (tokenizer.json, GGUF, model
  // folder), or an estimate of chars_per_token bytes per token. Neither: an in-process tier counts
  // with its model (chat template included), a remote tier estimates 4 bytes per token.
  std::string tokenizer;
  double chars_per_token = 0;  // 0: not given
  Where where;
};

// A rule's condition: every given field must hold.
struct Condition {
  std::vector<std::string> models;  // requested model alias in this list
  std::vector<std::string> tasks;   // task tag in this list
  std::optional<int64_t> min_prompt_tokens;
  std::optional<int64_t> max_prompt_tokens;
  std::optional<bool> tools;        // request has tools
  std::optional<bool> json_schema;  // request has response_format json_schema / json_object
};

struct Rule {
  Condition when;
  std::string tier;
  std::string name;  // shown in reasons; default "rule <index>"
};

enum class PolicyKind { rules, semantic, learned, cascade };

struct PolicyConfig {
  std::string name;
  PolicyKind kind = PolicyKind::rules;
  std::string default_tier;  // "" : undecided, the next policy of the route decides
  // rules
  std::vector<Rule> rules;
  // semantic: labeled example prompts per tier
  std::map<std::string, std::vector<std::string>> examples;
  double threshold = 0.5;  // best similarity below this: default_tier
  // learned: logistic regression over prompt embeddings, labels "strong tier needed"
  std::string weak_tier, strong_tier;
  std::string training_file;  // JSONL {"prompt": ..., "strong": true|false}
  bool train_from_log = true;  // also learn from logged cascade outcomes
  double target_strong_share = 0.3;
  // cascade: tiers tried in order, cheapest first
  std::vector<std::string> cascade_tiers;
  double min_mean_logprob = -1.0;
  double min_token_logprob = -1e30;  // default: not checked
  bool check_json = true;            // escalate when a JSON answer does not parse or fit its schema
  int samples = 1;                   // >1: ask for several samples and measure agreement
  double min_agreement = 1.0;        // share of samples equal to the first
  Where where;
};

struct RouteConfig {
  std::string model;                  // alias the client sends ("*": any other)
  std::string tier;                   // fixed tier, or
  std::vector<std::string> policies;  // policies tried in order; the first that decides wins
  Where where;
};

enum class OnExceed { reject, downgrade };

struct KeyLimit {
  std::string key;  // API key, or "default" for keys without their own entry
  int64_t requests_per_minute = 0;  // 0: no limit
  int64_t tokens_per_minute = 0;
  double budget_usd = 0;            // spend limit; 0: none
  OnExceed on_exceed = OnExceed::reject;
};

struct TierBudget {
  std::string tier;
  double budget_usd = 0;
  OnExceed on_exceed = OnExceed::downgrade;  // downgrade: the tier before it in the list
};

struct RetryConfig {
  int attempts = 2;         // retries per tier after the first try
  double backoff_s = 0.05;  // doubled each retry, with jitter, capped
  double max_backoff_s = 1.0;
};

struct BreakerConfig {
  int failures = 3;        // consecutive failures that bench a deployment
  double cooldown_s = 30;  // how long it stays benched
};

struct EmbeddingConfig {
  std::string model_path;  // in-process embedding model; "" : hashed n-gram features
  int dim = 512;           // hashed features only
};

struct CaptureConfig {
  std::vector<std::string> tiers;  // capture answers of these tiers (empty: capture off)
  std::vector<std::string> tasks;  // only these task tags (empty: all)
};

struct RouterConfig {
  std::string source;  // file name, for messages
  std::vector<TierConfig> tiers;
  std::vector<RouteConfig> routes;
  std::map<std::string, PolicyConfig> policies;
  std::vector<KeyLimit> key_limits;
  std::vector<TierBudget> tier_budgets;
  std::string budget_period = "total";  // total | day | month
  RetryConfig retry;
  BreakerConfig breaker;
  EmbeddingConfig embedding;
  CaptureConfig capture;
  std::string database = "router.db";  // SQLite file; ":memory:" keeps nothing
  // Limits and budgets counted in the database (WAL) so that several router processes on one host
  // share them; false: counted in this process's memory.
  bool shared = false;
  std::string replica;  // this process's name in request ids when shared ("" : random)
  std::string task_header = "x-slm-task";

  const TierConfig* find_tier(const std::string& name) const;
  int tier_index(const std::string& name) const;  // -1 when absent
  const KeyLimit* key_limit(const std::string& key) const;  // the key's own entry, else "default"
};

// Throws Error(invalid_argument) "FILE:LINE:COLUMN: expected ..., found ...".
RouterConfig parse_config(const std::string& yaml_text, const std::string& source_name);
RouterConfig load_config(const std::string& path);

}  // namespace slm::router
