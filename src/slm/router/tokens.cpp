#include "slm/router/tokens.hpp"

#include <cmath>
#include <filesystem>

#include <fmt/format.h>

#include "slm/tokenizer/tokenizer.hpp"
#include "slm/util/error.hpp"

namespace slm::router {
namespace {

// Answers a provider's handle_other at once (POST /tokenize answers synchronously).
struct ImmediateSink : server::ResponseSink {
  nlohmann::json body;
  bool ok = false;
  void finish_json(const nlohmann::json& b) override {
    body = b;
    ok = true;
  }
  void send_event(const std::string&) override {}
  void end_stream() override {}
  void fail(const server::ApiError&) override {}
  bool cancelled() const override { return false; }
  void on_cancel(std::function<void()>) override {}
};

}  // namespace

std::string content_text(const nlohmann::json& content) {
  if (content.is_string()) return content.get<std::string>();
  std::string out;
  if (content.is_array()) {
    for (const auto& part : content) {
      if (part.is_object() && part.contains("text") && part["text"].is_string()) {
        if (!out.empty()) out += "\n";
        out += part["text"].get<std::string>();
      }
    }
  }
  return out;
}

PromptText prompt_text(const nlohmann::json& request) {
  PromptText p;
  if (!request.is_object()) return p;
  if (request.contains("messages") && request["messages"].is_array()) {
    for (const auto& msg : request["messages"]) {
      if (!msg.is_object()) continue;
      ++p.parts;
      if (msg.contains("content")) p.text += content_text(msg["content"]);
    }
  } else if (request.contains("prompt")) {
    const auto& prompt = request["prompt"];
    if (prompt.is_string()) p.text = prompt.get<std::string>();
    else if (prompt.is_array() && !prompt.empty() && prompt.back().is_string()) p.text = prompt.back().get<std::string>();
    p.parts = 1;
  } else if (request.contains("input")) {  // embeddings
    const auto& input = request["input"];
    if (input.is_string()) {
      p.text = input.get<std::string>();
      p.parts = 1;
    } else if (input.is_array()) {
      for (const auto& i : input) {
        if (i.is_string()) {
          p.text += i.get<std::string>();
          ++p.parts;
        }
      }
    }
  }
  return p;
}

CharsPerTokenCounter::CharsPerTokenCounter(double chars_per_token) : chars_per_token_(chars_per_token) {
  if (!(chars_per_token > 0)) fail(ErrorKind::invalid_argument, "expected chars_per_token above 0, found {}", chars_per_token);
}

int64_t CharsPerTokenCounter::prompt_tokens(const nlohmann::json& request) const { return text_tokens(prompt_text(request).text); }

int64_t CharsPerTokenCounter::text_tokens(const std::string& text) const {
  return int64_t(std::ceil(double(text.size()) / chars_per_token_ - 1e-9));
}

std::string CharsPerTokenCounter::describe() const { return fmt::format("estimated at {:g} bytes per token", chars_per_token_); }

TokenizerCounter::TokenizerCounter(const std::string& path)
    : tokenizer_(std::make_shared<const Tokenizer>(Tokenizer::load(path))),
      name_(std::filesystem::path(path).filename().string()) {}

TokenizerCounter::TokenizerCounter(std::shared_ptr<const Tokenizer> tokenizer, std::string name)
    : tokenizer_(std::move(tokenizer)), name_(std::move(name)) {}

TokenizerCounter::~TokenizerCounter() = default;

int64_t TokenizerCounter::prompt_tokens(const nlohmann::json& request) const {
  const int64_t specials = int64_t(tokenizer_->encode("", true, false).size());  // BOS/EOS the tokenizer adds
  if (request.is_object() && request.contains("messages") && request["messages"].is_array()) {
    int64_t n = specials;
    for (const auto& msg : request["messages"]) {
      if (!msg.is_object()) continue;
      n += kMessageOverhead;
      if (msg.contains("content")) n += int64_t(tokenizer_->encode(content_text(msg["content"]), false, false).size());
    }
    return n;
  }
  if (request.is_object() && request.contains("prompt") && request["prompt"].is_array() && !request["prompt"].empty() &&
      request["prompt"][0].is_number_integer()) {
    return int64_t(request["prompt"].size());  // already token ids
  }
  return specials + text_tokens(prompt_text(request).text);
}

int64_t TokenizerCounter::text_tokens(const std::string& text) const { return int64_t(tokenizer_->encode(text, false, false).size()); }

std::string TokenizerCounter::describe() const { return "counted with tokenizer " + name_; }

ProviderCounter::ProviderCounter(std::shared_ptr<server::Provider> provider, std::string model)
    : provider_(std::move(provider)), model_(std::move(model)) {}

int64_t ProviderCounter::tokenize(const nlohmann::json& body) const {
  auto sink = std::make_shared<ImmediateSink>();
  try {
    server::RequestInfo info;
    info.request_id = "route-count";
    if (!provider_->handle_other("POST", "/tokenize", body, info, sink) || !sink->ok) return -1;
  } catch (const std::exception&) {
    return -1;
  }
  const auto& count = sink->body.contains("count") ? sink->body["count"] : nlohmann::json();
  return count.is_number_integer() ? count.get<int64_t>() : -1;
}

int64_t ProviderCounter::prompt_tokens(const nlohmann::json& request) const {
  nlohmann::json body{{"model", model_}};
  if (request.is_object() && request.contains("messages")) {
    body["messages"] = request["messages"];
  } else if (request.is_object() && request.contains("prompt") && request["prompt"].is_string()) {
    body["content"] = request["prompt"];
  } else if (request.is_object() && request.contains("prompt") && request["prompt"].is_array() && !request["prompt"].empty() &&
             request["prompt"][0].is_number_integer()) {
    return int64_t(request["prompt"].size());
  } else {
    return estimate_.prompt_tokens(request);
  }
  const int64_t n = tokenize(body);
  return n >= 0 ? n : estimate_.prompt_tokens(request);
}

int64_t ProviderCounter::text_tokens(const std::string& text) const {
  const int64_t n = tokenize({{"model", model_}, {"content", text}, {"add_special", false}});
  return n >= 0 ? n : estimate_.text_tokens(text);
}

std::string ProviderCounter::describe() const { return "counted with the in-process model " + model_; }

std::shared_ptr<const TokenCounter> counter_from_config(const TierConfig& t, const std::string& source) {
  if (!t.tokenizer.empty()) {
    try {
      return std::make_shared<TokenizerCounter>(t.tokenizer);
    } catch (const Error& e) {
      fail(ErrorKind::invalid_argument, "{}:{}:{}: tier {} expected a tokenizer at '{}', found: {}", source, t.where.line, t.where.column,
           t.name, t.tokenizer, e.what());
    }
  }
  if (t.chars_per_token > 0) return std::make_shared<CharsPerTokenCounter>(t.chars_per_token);
  const auto& first = t.deployments.front();
  if (first.local() && std::filesystem::exists(first.model_path)) {
    try {
      return std::make_shared<TokenizerCounter>(first.model_path);
    } catch (const Error&) {
      // A model without a readable tokenizer: the estimate.
    }
  }
  return std::make_shared<CharsPerTokenCounter>(4.0);
}

TokenCounters counters_from_config(const RouterConfig& config) {
  TokenCounters out;
  for (const auto& t : config.tiers) out[t.name] = counter_from_config(t, config.source);
  return out;
}

PromptTokens::PromptTokens(std::shared_ptr<const TokenCounters> counters, nlohmann::json request)
    : counters_(std::move(counters)), request_(std::move(request)) {}

int64_t PromptTokens::operator()(const std::string& tier) const {
  std::lock_guard lock(mutex_);
  if (auto it = cache_.find(tier); it != cache_.end()) return it->second;
  int64_t n = 0;
  const auto it = counters_ ? counters_->find(tier) : TokenCounters::const_iterator();
  if (counters_ && it != counters_->end() && it->second) n = it->second->prompt_tokens(request_);
  else n = CharsPerTokenCounter(4.0).prompt_tokens(request_);
  cache_[tier] = n;
  return n;
}

std::string PromptTokens::how(const std::string& tier) const {
  if (counters_) {
    const auto it = counters_->find(tier);
    if (it != counters_->end() && it->second) return it->second->describe();
  }
  return CharsPerTokenCounter(4.0).describe();
}

}  // namespace slm::router
