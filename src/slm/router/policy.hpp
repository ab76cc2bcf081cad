// Routing decisions: which tier answers a request, and why. Evaluated without calling any tier (the
// semantic and learned policies call only the embedding model).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "slm/router/config.hpp"
#include "slm/router/embed.hpp"
#include "slm/router/tokens.hpp"

namespace slm::router {

// What the policies look at, taken from one request.
struct RouteInput {
  std::string model;           // requested alias
  std::string task;            // task tag (header or metadata.task)
  std::string prompt;          // the last user message (what the semantic and learned policies embed)
  int64_t prompt_tokens = 0;   // estimate over all messages: bytes / 4, rounded up
  bool tools = false;
  bool json_schema = false;
  std::shared_ptr<PromptTokens> tokens;  // per tier, as each tier counts (null: the estimate)
  // The prompt's length as `tier` counts it.
  int64_t tokens_for(const std::string& tier) const;
};

// Reads a chat or completions request. task_header: lower-cased header name carrying the task tag.
// counters: how each tier counts tokens (null: every tier uses the bytes / 4 estimate).
RouteInput route_input(const nlohmann::json& request, const std::map<std::string, std::string>& headers,
                       const std::string& task_header, std::shared_ptr<const TokenCounters> counters = nullptr);

struct Decision {
  std::string tier;                   // the tier that answers first
  std::string policy;                 // the deciding policy ("" fixed route or direct tier)
  std::vector<std::string> reasons;   // one line per step, in order
  const PolicyConfig* cascade = nullptr;  // set when a cascade decides: its tiers are tried in order
  nlohmann::json to_json() const;
};

// A prompt and whether the strong tier was needed for it (training data of the learned policy).
struct LabeledPrompt {
  std::string prompt;
  bool strong = false;
};

class Policies {
 public:
  // logged: outcomes from the accounting log (learned policies with train_from_log).
  Policies(const RouterConfig& config, std::shared_ptr<Embedder> embedder, const std::vector<LabeledPrompt>& logged = {});
  // Throws Error(not_found) when no route, policy or tier takes the requested model.
  Decision decide(const RouteInput& input) const;
  // The learned policy's classifier (nullptr when it is not trained); for tests and explain.
  const LogisticModel* learned_model(const std::string& policy) const;
  // Scores a prompt with a learned policy's classifier.
  double learned_score(const std::string& policy, const std::string& prompt) const;

 private:
  struct Semantic {
    std::vector<std::pair<std::string, std::vector<float>>> examples;  // tier, embedding
  };
  struct Learned {
    bool trained = false;
    std::string why_not;
    LogisticModel model;
    size_t examples = 0;
  };
  bool apply(const PolicyConfig& p, const RouteInput& input, Decision& d) const;

  const RouterConfig& config_;
  std::shared_ptr<Embedder> embedder_;
  std::map<std::string, Semantic> semantic_;
  std::map<std::string, Learned> learned_;
};

// Reads a JSONL file of {"prompt": ..., "strong": true|false}.
std::vector<LabeledPrompt> read_labeled_prompts(const std::string& path);

}  // namespace slm::router
