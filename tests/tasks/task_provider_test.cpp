// TaskProvider in process over a scripted inner provider: what the tasks ask of the model (task
// tags, request ids, bodies) and what they make of its answers (label log-probabilities).
#include <gtest/gtest.h>

#include <cmath>
#include <mutex>
#include <set>

#include "slm/server/errors.hpp"
#include "slm/tasks/task_provider.hpp"

namespace slm::tasks {
namespace {

using json = nlohmann::json;

// Answers /v1/completions from a script and records every request it saw.
class ScriptedProvider : public server::Provider {
 public:
  // The echoed tokens and log-probabilities for a prompt ending in " <label>".
  std::function<json(const std::string& prompt)> echo;

  struct Seen {
    json request;
    server::RequestInfo info;
  };
  std::vector<Seen> seen;
  std::mutex mutex;

  json models() override { return {{"object", "list"}, {"data", json::array()}}; }
  void chat_completions(const json& request, const server::RequestInfo& info, std::shared_ptr<server::ResponseSink> sink) override {
    record(request, info);
    sink->finish_json({{"choices", {{{"index", 0}, {"message", {{"role", "assistant"}, {"content", "{\"entities\": []}"}}}, {"finish_reason", "stop"}}}}});
  }
  void completions(const json& request, const server::RequestInfo& info, std::shared_ptr<server::ResponseSink> sink) override {
    record(request, info);
    if (request.contains("response_format")) {
      sink->fail(server::make_error(429, "rate_limit_error", "busy", "", "queue_full"));
      return;
    }
    json choices = json::array();
    for (size_t i = 0; i < request["prompt"].size(); ++i) {
      json c = echo(request["prompt"][i].get<std::string>());
      c["index"] = i;
      choices.push_back(c);
    }
    sink->finish_json({{"choices", choices}, {"usage", {{"prompt_tokens", 10}, {"completion_tokens", 0}}}});
  }
  void embeddings(const json&, const server::RequestInfo&, std::shared_ptr<server::ResponseSink> sink) override {
    sink->fail(server::make_error(400, "invalid_request_error", "no embeddings here"));
  }
  bool handle_other(const std::string&, const std::string& path, const json&, const server::RequestInfo&,
                    std::shared_ptr<server::ResponseSink> sink) override {
    if (path != "/inner") return false;
    sink->finish_json({{"inner", true}});
    return true;
  }

 private:
  void record(const json& request, const server::RequestInfo& info) {
    std::lock_guard lock(mutex);
    seen.push_back({request, info});
  }
};

// A label's tokens: " ur" + "gent" (two tokens), " spam" (one), after a BOS and the prompt's tokens.
json echo_for(const std::string& prompt) {
  json tokens = {"<s>", "Text", ":"};
  json lps = {nullptr, -3.0, -1.0};
  if (prompt.size() >= 7 && prompt.compare(prompt.size() - 7, 7, " urgent") == 0) {
    tokens.push_back(" ur");
    lps.push_back(-0.5);
    tokens.push_back("gent");
    lps.push_back(-0.25);
  } else {
    tokens.push_back(" spam");
    lps.push_back(-2.0);
  }
  // The one generated token comes last (finish "length") and is not part of the label.
  tokens.push_back(" to");
  lps.push_back(-9.0);
  return {{"text", prompt + " to"}, {"finish_reason", "length"}, {"logprobs", {{"tokens", tokens}, {"token_logprobs", lps}}}};
}

server::RequestInfo client_info() {
  server::RequestInfo info;
  info.request_id = "req-7";
  info.api_key = "key";
  info.headers["user-agent"] = "test";
  return info;
}

TEST(TaskProvider, ClassifySumsTheLabelTokensAndTagsItsRequests) {
  auto inner = std::make_shared<ScriptedProvider>();
  inner->echo = echo_for;
  TaskProvider provider(inner);
  const json out = provider.run("/v1/classify", {{"input", {"a", "b", "c"}}, {"labels", {"urgent", "spam"}}, {"model", "m"}}, client_info());
  ASSERT_EQ(out["data"].size(), 3u);
  // urgent: -0.5 + -0.25 = -0.75 (the prompt's tokens and the BOS are left out); spam: -2.
  const double pu = 1.0 / (1.0 + std::exp(-2.0 + 0.75));
  for (size_t i = 0; i < 3; ++i) {
    const json& d = out["data"][i];
    EXPECT_EQ(d["index"], i);
    EXPECT_DOUBLE_EQ(d["logprobs"]["urgent"].get<double>(), -0.75);
    EXPECT_DOUBLE_EQ(d["logprobs"]["spam"].get<double>(), -2.0);
    EXPECT_NEAR(d["probs"]["urgent"].get<double>(), pu, 1e-12);
    EXPECT_NEAR(d["probs"]["spam"].get<double>(), 1.0 - pu, 1e-12);
    EXPECT_EQ(d["label"], "urgent");
  }
  EXPECT_EQ(out["usage"]["prompt_tokens"], 30);

  ASSERT_EQ(inner->seen.size(), 3u);
  std::set<std::string> ids;
  for (const auto& s : inner->seen) {
    EXPECT_EQ(s.request["model"], "m");
    EXPECT_EQ(s.request["echo"], true);
    EXPECT_EQ(s.request["max_tokens"], 1);
    EXPECT_EQ(s.request["ignore_eos"], true);
    EXPECT_EQ(s.request["metadata"]["task"], "classify");
    EXPECT_EQ(s.info.headers.at("x-slm-task"), "classify");
    EXPECT_EQ(s.info.headers.at("user-agent"), "test");
    EXPECT_EQ(s.info.api_key, "key");
    EXPECT_EQ(json::parse(s.info.body), s.request);  // the raw body says the same
    EXPECT_EQ(s.info.request_id.rfind("req-7-", 0), 0u) << s.info.request_id;
    ids.insert(s.info.request_id);
    ASSERT_EQ(s.request["prompt"].size(), 2u);
    const std::string p0 = s.request["prompt"][0];
    EXPECT_EQ(p0.substr(p0.size() - 7), " urgent");
  }
  EXPECT_EQ(ids.size(), 3u);  // each inner request is its own
}

TEST(TaskProvider, InnerErrorsReachTheClientAndOtherPathsPassThrough) {
  auto inner = std::make_shared<ScriptedProvider>();
  inner->echo = echo_for;
  TaskProvider provider(inner);
  // Extraction asks with response_format; the script answers 429, which comes back as it is.
  try {
    provider.run("/v1/extract", {{"input", "x"}, {"schema", {{"type", "object"}}}}, client_info());
    FAIL() << "expected the inner 429";
  } catch (const server::ApiException& e) {
    EXPECT_EQ(e.error().status, 429);
    EXPECT_EQ(e.error().code, "queue_full");
  }
  // A label the answer does not cover is the inner provider's fault (502), not the client's.
  inner->echo = [](const std::string& prompt) {
    json answer = {{"text", prompt}};
    answer["logprobs"] = {{"tokens", {"<s>", "x"}}, {"token_logprobs", {nullptr, -1.0}}};
    return answer;
  };
  try {
    provider.run("/v1/classify", {{"input", "x"}, {"labels", {"urgent", "spam"}}}, client_info());
    FAIL() << "expected 502";
  } catch (const server::ApiException& e) {
    EXPECT_EQ(e.error().status, 502);
  }
  // Redact with a model type goes through the completions route with the task tag "redact".
  inner->seen.clear();
  EXPECT_THROW(provider.run("/v1/redact", {{"input", "Anna"}, {"entities", {"PERSON"}}}, client_info()), server::ApiException);
  ASSERT_FALSE(inner->seen.empty());
  EXPECT_EQ(inner->seen[0].info.headers.at("x-slm-task"), "redact");
  // With chat, through /v1/chat/completions: the scripted answer names nobody.
  const json chat = provider.run("/v1/redact", {{"input", "Anna"}, {"entities", {"PERSON"}}, {"chat", true}}, client_info());
  EXPECT_TRUE(chat["data"][0]["entities"].empty());
  EXPECT_EQ(chat["data"][0]["text"], "Anna");

  // Not a task path: the inner provider's own routes still answer, unknown ones stay unknown.
  struct Null : server::ResponseSink {
    json body;
    void finish_json(const json& b) override { body = b; }
    void send_event(const std::string&) override {}
    void end_stream() override {}
    void fail(const server::ApiError&) override {}
    bool cancelled() const override { return false; }
    void on_cancel(std::function<void()>) override {}
  };
  auto sink = std::make_shared<Null>();
  EXPECT_TRUE(provider.handle_other("POST", "/inner", json::object(), client_info(), sink));
  EXPECT_EQ(sink->body["inner"], true);
  EXPECT_FALSE(provider.handle_other("POST", "/v1/other", json::object(), client_info(), sink));
  // /v1/chunk without a tokenizer lookup: 400 unsupported, before any work.
  try {
    provider.handle_other("POST", "/v1/chunk", {{"input", "x"}}, client_info(), sink);
    FAIL() << "expected 400";
  } catch (const server::ApiException& e) {
    EXPECT_EQ(e.error().status, 400);
    EXPECT_EQ(e.error().code, "unsupported");
  }
}

}  // namespace
}  // namespace slm::tasks
