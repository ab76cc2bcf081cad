// Prompt and answer lengths in tokens, counted the way each tier counts them: with the tier's
// in-process model (its chat template rendered, then tokenized), with a named tokenizer file, or as
// an estimate of bytes per token. The rules policy, context limits, token rate limits and the cost of
// answers without reported usage all count through these.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

#include "slm/router/config.hpp"
#include "slm/server/provider.hpp"

namespace slm {
class Tokenizer;
}

namespace slm::router {

// The text of a message's content: a string, or the text parts of an array joined by newlines.
std::string content_text(const nlohmann::json& content);

class TokenCounter {
 public:
  virtual ~TokenCounter() = default;
  // Prompt tokens of a chat request (messages) or a completions request (prompt).
  virtual int64_t prompt_tokens(const nlohmann::json& request) const = 0;
  // Tokens of a piece of text (an answer).
  virtual int64_t text_tokens(const std::string& text) const = 0;
  // How it counts, for reasons and `slm route explain`.
  virtual std::string describe() const = 0;
};

// The text of a request's messages (or prompt) and how many messages it has.
struct PromptText {
  std::string text;   // the messages' text, one after the other
  int64_t parts = 0;  // messages (chat) or 1 (completions)
};
PromptText prompt_text(const nlohmann::json& request);

// ceil(bytes / chars_per_token) over the text of every message.
class CharsPerTokenCounter : public TokenCounter {
 public:
  explicit CharsPerTokenCounter(double chars_per_token = 4.0);
  int64_t prompt_tokens(const nlohmann::json& request) const override;
  int64_t text_tokens(const std::string& text) const override;
  std::string describe() const override;

 private:
  double chars_per_token_;
};

// A tokenizer file (tokenizer.json, a GGUF file or a model folder). Chat requests: each message's
// text tokenized, plus kMessageOverhead tokens per message for the chat template's markers (role
// headers, end-of-turn), plus the BOS token where the tokenizer adds one.
class TokenizerCounter : public TokenCounter {
 public:
  static constexpr int64_t kMessageOverhead = 4;
  explicit TokenizerCounter(const std::string& path);
  explicit TokenizerCounter(std::shared_ptr<const Tokenizer> tokenizer, std::string name);
  ~TokenizerCounter() override;
  int64_t prompt_tokens(const nlohmann::json& request) const override;
  int64_t text_tokens(const std::string& text) const override;
  std::string describe() const override;

 private:
  std::shared_ptr<const Tokenizer> tokenizer_;
  std::string name_;
};

// An in-process model, through its provider's POST /tokenize: a chat request's messages are rendered
// with the model's chat template and tokenized, exactly as the model will see them. Requests the
// provider cannot tokenize (token-id prompts, unknown message shapes) fall back to the estimate.
class ProviderCounter : public TokenCounter {
 public:
  ProviderCounter(std::shared_ptr<server::Provider> provider, std::string model);
  int64_t prompt_tokens(const nlohmann::json& request) const override;
  int64_t text_tokens(const std::string& text) const override;
  std::string describe() const override;

 private:
  int64_t tokenize(const nlohmann::json& body) const;  // -1 when the provider refused
  std::shared_ptr<server::Provider> provider_;
  std::string model_;
  CharsPerTokenCounter estimate_;
};

// One counter per tier.
using TokenCounters = std::map<std::string, std::shared_ptr<const TokenCounter>>;

// A tier's counter from the configuration alone (below).
std::shared_ptr<const TokenCounter> counter_from_config(const TierConfig& tier, const std::string& source);

// Counters from the configuration alone: a tier's `tokenizer` or `chars_per_token`; otherwise,
// for an in-process tier whose model is a file or folder here, its tokenizer; otherwise 4 bytes per
// token. (The router itself counts in-process tiers with their loaded models instead.)
TokenCounters counters_from_config(const RouterConfig& config);

// One request's prompt length per tier, counted on first use.
class PromptTokens {
 public:
  PromptTokens(std::shared_ptr<const TokenCounters> counters, nlohmann::json request);
  // Tokens as `tier` counts them (the estimate for tiers without a counter).
  int64_t operator()(const std::string& tier) const;
  // The counter's description for `tier`.
  std::string how(const std::string& tier) const;

 private:
  std::shared_ptr<const TokenCounters> counters_;
  nlohmann::json request_;
  mutable std::mutex mutex_;
  mutable std::map<std::string, int64_t> cache_;
};

}  // namespace slm::router
