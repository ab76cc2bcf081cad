// What an evaluation asks of a model: log-likelihoods of continuations given contexts, and greedy
// generations up to stop strings. Two implementations: a model in this process (a Session for
// log-likelihoods, the Scheduler for concurrent generation) and an OpenAI-compatible endpoint
// (completions with echo + logprobs for log-likelihoods, chat or plain completions for generation).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "slm/model/model.hpp"

namespace slm::eval {

struct LoglikelihoodRequest {
  std::string context;
  std::string continuation;
  std::string key;  // the item it belongs to ("doc 3 choice 1"), for the result cache
};
struct LoglikelihoodResult {
  double logprob = 0;      // sum over the continuation's tokens
  bool is_greedy = false;  // every continuation token was the argmax (local backend only)
  int64_t tokens = 0;      // continuation tokens scored
};
struct GenerationSpec {
  std::string prompt;
  std::vector<std::string> until;  // the output ends before the first of these
  int64_t max_tokens = 256;
  double temperature = 0;  // 0: greedy
  uint64_t seed = 0;       // 0: the backend's seed
  std::string key;         // the item it belongs to ("doc 3 sample 2"), for the result cache
};
struct Generation {
  std::string text;
  // What answered and what it cost when the backend knows (a router: {"tier", "cost_usd",
  // "input_tokens", "output_tokens"}); null otherwise.
  nlohmann::json info;
};
// Called after each finished request with the number finished so far.
using Progress = std::function<void(size_t done)>;

// Runs f(i) for every i in [0, n) on `threads` threads (at least one), then done_one(i) and
// progress(count done) one at a time under a lock; the first error stops the rest and is rethrown.
void parallel_for(size_t n, int32_t threads, const std::function<void(size_t)>& f,
                  const std::function<void(size_t)>& done_one, const Progress& progress);
// Called once per finished request with its index and result, one call at a time (any thread):
// the result cache stores each result as soon as it exists.
using OnScored = std::function<void(size_t index, const LoglikelihoodResult& result)>;
using OnGenerated = std::function<void(size_t index, const Generation& result)>;

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::vector<LoglikelihoodResult> loglikelihood(const std::vector<LoglikelihoodRequest>& requests,
                                                         const Progress& progress, const OnScored& each = {}) = 0;
  virtual std::vector<Generation> generate(const std::vector<GenerationSpec>& specs, const Progress& progress,
                                           const OnGenerated& each = {}) = 0;
  virtual std::string name() const = 0;
  // What answers (model file, endpoint and model name, router configuration): part of the result
  // cache's key, so results of another model are never reused.
  virtual nlohmann::json identity() const { return name(); }
  // What the calls cost so far: {"requests", "prompt_tokens", "completion_tokens", "served_by":
  // {answer's "model": count}} for an endpoint (a router's tiers show up by the model that answered);
  // null when not tracked.
  virtual nlohmann::json usage() const { return nullptr; }
};

// The log-likelihood of a request's continuation from a /completions answer to
// {"prompt": context + continuation, "echo": true, "logprobs": 1, "max_tokens": 1}: the echoed prompt
// tokens that start inside the continuation's bytes. Throws Error(format) when the answer has none.
LoglikelihoodResult loglikelihood_from_echo(const nlohmann::json& answer, const LoglikelihoodRequest& request);
nlohmann::json loglikelihood_echo_request(const LoglikelihoodRequest& request, uint64_t seed);

// Cuts `text` before the earliest occurrence of any stop string.
std::string cut_at_stop(const std::string& text, const std::vector<std::string>& until);

struct LocalOptions {
  int32_t concurrency = 4;  // sequences generated at once
  int64_t n_ctx = 0;        // 0: the model's trained context (4096 when unknown)
  uint64_t seed = 1234;
};
// Log-likelihoods are computed as lm-eval does: tokens of context + continuation, the continuation's
// tokens being those after the tokens of the context alone (a context's trailing spaces move to the
// continuation), with the model's BOS in front when its tokenizer adds one; too-long inputs lose
// tokens from the left.
// `identity` names the model for the result cache (its path and modification time).
std::unique_ptr<Backend> make_local_backend(std::shared_ptr<const Model> model, const LocalOptions& options,
                                            nlohmann::json identity = nullptr);

struct EndpointOptions {
  std::string url;       // http[s]://host[:port][/v1]
  std::string api_key;   // sent as a bearer token when not empty
  std::string model;     // the request's "model" ("" : left out)
  int32_t concurrency = 4;
  bool chat = true;      // generation through /chat/completions (else /completions)
  double timeout_s = 300;
  uint64_t seed = 1234;
};
std::unique_ptr<Backend> make_endpoint_backend(const EndpointOptions& options);

}  // namespace slm::eval
