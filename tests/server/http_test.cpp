// Black-box tests of `slm serve` on the demo model over raw HTTP/1.1: routes, errors in OpenAI's
// shape, limits, streaming, cancellation on disconnect, many idle connections.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <thread>

#include "server_process.hpp"

using json = nlohmann::json;
using namespace slm_test;

namespace {

// One server for the tests that do not need special flags.
ServerProcess& shared_server() {
  static ServerProcess server({demo_model(), "--ctx", "256", "--parallel", "4", "--max-body-mb", "1", "--name", "demo"});
  return server;
}

json error_of(const HttpResponse& r) {
  const json body = json::parse(r.body, nullptr, false);
  EXPECT_TRUE(body.is_object()) << r.body;
  EXPECT_TRUE(body.contains("error")) << r.body;
  const json e = body.value("error", json::object());
  EXPECT_TRUE(e.contains("message") && e["message"].is_string()) << r.body;
  EXPECT_TRUE(e.contains("type") && e["type"].is_string()) << r.body;
  EXPECT_TRUE(e.contains("param")) << r.body;
  EXPECT_TRUE(e.contains("code")) << r.body;
  return e;
}

std::string chat_body(json extra = json::object()) {
  json r = {{"model", "demo"}, {"messages", {{{"role", "user"}, {"content", "Tell me a story."}}}}, {"max_tokens", 8},
            {"temperature", 0}};
  for (auto& [k, v] : extra.items()) r[k] = v;
  return r.dump();
}

// The data: lines of a server-sent event stream.
std::vector<std::string> sse_events(const std::string& body) {
  std::vector<std::string> events;
  size_t pos = 0;
  while ((pos = body.find("data: ", pos)) != std::string::npos) {
    const size_t end = body.find("\n\n", pos);
    events.push_back(body.substr(pos + 6, end - pos - 6));
    pos = end;
  }
  return events;
}

// Opens a streamed completion on a raw connection and returns the socket once its first event has
// come (the request is running); -1 when the server closed it first.
int open_stream(int port, const json& body) {
  const int fd = connect_to(port);
  send_all(fd, request_text("POST", "/v1/completions", body.dump()));
  std::string in;
  char buf[4096];
  while (in.find("data: ") == std::string::npos) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      ::close(fd);
      return -1;
    }
    in.append(buf, size_t(n));
  }
  return fd;
}

}  // namespace

TEST(Http, HealthModelsAndMetrics) {
  auto& s = shared_server();
  auto health = http(s.port(), "GET", "/health");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(json::parse(health.body)["status"], "ok");
  auto models = http(s.port(), "GET", "/v1/models");
  ASSERT_EQ(models.status, 200);
  const json m = json::parse(models.body);
  EXPECT_EQ(m["object"], "list");
  ASSERT_EQ(m["data"].size(), 1u);
  EXPECT_EQ(m["data"][0]["id"], "demo");
  EXPECT_EQ(m["data"][0]["object"], "model");
  EXPECT_EQ(http(s.port(), "GET", "/v1/models/demo").status, 200);
  EXPECT_EQ(error_of(http(s.port(), "GET", "/v1/models/nope"))["code"], "model_not_found");
  auto metrics = http(s.port(), "GET", "/metrics");
  ASSERT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.headers["content-type"].find("text/plain"), std::string::npos);
  for (const char* name : {"slm_http_requests_total", "slm_queue_depth", "slm_running_sequences", "slm_batch_size",
                           "slm_kv_blocks_used", "slm_time_to_first_token_seconds_bucket",
                           "slm_inter_token_latency_seconds_bucket", "slm_prompt_tokens_total", "slm_generated_tokens_total"}) {
    EXPECT_NE(metrics.body.find(name), std::string::npos) << name;
  }
  EXPECT_NE(metrics.body.find("slm_http_requests_total{route=\"/health\",status=\"200\"}"), std::string::npos);
}

TEST(Http, UnknownRouteIs404InOpenAIShape) {
  auto& s = shared_server();
  auto r = http(s.port(), "POST", "/v1/nothing", "{}");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(error_of(r)["type"], "invalid_request_error");
  EXPECT_EQ(http(s.port(), "GET", "/nowhere").status, 404);
  EXPECT_EQ(http(s.port(), "GET", "/v1/chat/completions").status, 405);
}

TEST(Http, MalformedJsonIs400) {
  auto& s = shared_server();
  for (const std::string body : {"{", "not json", "{\"messages\": [}", ""}) {
    auto r = http(s.port(), "POST", "/v1/chat/completions", body);
    EXPECT_EQ(r.status, 400) << body;
    EXPECT_EQ(error_of(r)["type"], "invalid_request_error") << body;
  }
  auto array = http(s.port(), "POST", "/v1/chat/completions", "[1, 2]");
  EXPECT_EQ(array.status, 400);
}

TEST(Http, WrongFieldTypesAre400NamingTheField) {
  auto& s = shared_server();
  const std::vector<std::pair<json, std::string>> cases = {
      {{{"temperature", "hot"}}, "temperature"}, {{{"max_tokens", "10"}}, "max_tokens"},
      {{{"n", 0}}, "n"},                         {{{"stop", 3}}, "stop"},
      {{{"messages", "hi"}}, "messages"},        {{{"stream", "yes"}}, "stream"},
  };
  for (const auto& [extra, param] : cases) {
    auto r = http(s.port(), "POST", "/v1/chat/completions", chat_body(extra));
    EXPECT_EQ(r.status, 400) << extra.dump();
    EXPECT_EQ(error_of(r)["param"], param) << r.body;
  }
  auto completions = http(s.port(), "POST", "/v1/completions", R"({"prompt": {"a": 1}})");
  EXPECT_EQ(completions.status, 400);
  EXPECT_EQ(error_of(completions)["param"], "prompt");
}

TEST(Http, UnknownModelIs404) {
  auto& s = shared_server();
  auto r = http(s.port(), "POST", "/v1/chat/completions", chat_body({{"model", "gpt-9"}}));
  EXPECT_EQ(r.status, 404);
  const json e = error_of(r);
  EXPECT_EQ(e["code"], "model_not_found");
  EXPECT_EQ(e["param"], "model");
}

TEST(Http, OversizedBodyIs413) {
  auto& s = shared_server();
  const std::string big = chat_body({{"messages", {{{"role", "user"}, {"content", std::string(1100000, 'a')}}}}});
  auto r = http(s.port(), "POST", "/v1/chat/completions", big);
  EXPECT_EQ(r.status, 413);
  error_of(r);
  EXPECT_TRUE(s.running());
}

TEST(Http, PromptLongerThanContextIs400NeverTruncated) {
  auto& s = shared_server();
  std::string text;
  for (int i = 0; i < 300; ++i) text += "the whale ";
  auto chat = http(s.port(), "POST", "/v1/chat/completions", chat_body({{"messages", {{{"role", "user"}, {"content", text}}}}}));
  EXPECT_EQ(chat.status, 400);
  EXPECT_EQ(error_of(chat)["code"], "context_length_exceeded");
  auto completion = http(s.port(), "POST", "/v1/completions", json{{"prompt", text}, {"max_tokens", 4}}.dump());
  EXPECT_EQ(completion.status, 400);
  EXPECT_EQ(error_of(completion)["code"], "context_length_exceeded");
}

TEST(Http, ChatCompletionAndStreamAgree) {
  auto& s = shared_server();
  auto r = http(s.port(), "POST", "/v1/chat/completions", chat_body({{"max_tokens", 12}}));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.headers["content-type"], "application/json");
  const json body = json::parse(r.body);
  EXPECT_EQ(body["object"], "chat.completion");
  EXPECT_EQ(body["model"], "demo");
  const std::string content = body["choices"][0]["message"]["content"];
  EXPECT_EQ(body["choices"][0]["message"]["role"], "assistant");
  const int64_t completion_tokens = body["usage"]["completion_tokens"];
  EXPECT_GT(completion_tokens, 0);
  EXPECT_LE(completion_tokens, 12);
  EXPECT_GT(body["usage"]["prompt_tokens"].get<int64_t>(), 5);
  EXPECT_EQ(body["choices"][0]["finish_reason"], completion_tokens == 12 ? "length" : "stop");

  auto streamed = http(s.port(), "POST", "/v1/chat/completions",
                       chat_body({{"max_tokens", 12}, {"stream", true}, {"stream_options", {{"include_usage", true}}}}));
  ASSERT_EQ(streamed.status, 200);
  EXPECT_EQ(streamed.headers["content-type"], "text/event-stream");
  EXPECT_EQ(streamed.headers["transfer-encoding"], "chunked");
  const auto events = sse_events(streamed.body);
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(events.back(), "[DONE]");
  std::string joined;
  json usage;
  std::string finish;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    const json chunk = json::parse(events[i]);
    EXPECT_EQ(chunk["object"], "chat.completion.chunk");
    if (chunk["choices"].empty()) {
      usage = chunk["usage"];
      continue;
    }
    const json& delta = chunk["choices"][0]["delta"];
    if (delta.contains("content")) joined += delta["content"].get<std::string>();
    if (!chunk["choices"][0]["finish_reason"].is_null()) finish = chunk["choices"][0]["finish_reason"];
  }
  EXPECT_EQ(joined, content);
  EXPECT_EQ(finish, body["choices"][0]["finish_reason"]);
  ASSERT_TRUE(usage.is_object());
  EXPECT_EQ(usage["completion_tokens"], completion_tokens);
}

TEST(Http, StopStringsCutTheAnswer) {
  auto& s = shared_server();
  auto full = json::parse(http(s.port(), "POST", "/v1/completions",
                               json{{"prompt", "It is a truth universally acknowledged"}, {"max_tokens", 24}, {"temperature", 0}}.dump())
                              .body);
  const std::string text = full["choices"][0]["text"];
  ASSERT_GE(text.size(), 8u) << text;
  const std::string stop = text.substr(5, 3);
  const size_t cut = text.find(stop);
  for (bool stream : {false, true}) {
    auto r = http(s.port(), "POST", "/v1/completions",
                  json{{"prompt", "It is a truth universally acknowledged"}, {"max_tokens", 24}, {"temperature", 0},
                       {"stop", stop}, {"stream", stream}}
                      .dump());
    ASSERT_EQ(r.status, 200);
    std::string got, finish;
    if (stream) {
      for (const auto& e : sse_events(r.body)) {
        if (e == "[DONE]") continue;
        const json c = json::parse(e);
        got += c["choices"][0]["text"].get<std::string>();
        if (!c["choices"][0]["finish_reason"].is_null()) finish = c["choices"][0]["finish_reason"];
      }
    } else {
      const json b = json::parse(r.body);
      got = b["choices"][0]["text"];
      finish = b["choices"][0]["finish_reason"];
    }
    EXPECT_EQ(got, text.substr(0, cut)) << "stop '" << stop << "' stream " << stream;
    EXPECT_EQ(finish, "stop");
  }
}

TEST(Http, TokenizeDetokenizeRoundTrip) {
  auto& s = shared_server();
  auto t = http(s.port(), "POST", "/tokenize", R"({"content": "Call me Ishmael."})");
  ASSERT_EQ(t.status, 200) << t.body;
  const json tokens = json::parse(t.body)["tokens"];
  ASSERT_GT(tokens.size(), 2u);
  auto d = http(s.port(), "POST", "/detokenize", json{{"tokens", tokens}}.dump());
  ASSERT_EQ(d.status, 200);
  EXPECT_NE(json::parse(d.body)["content"].get<std::string>().find("Call me Ishmael."), std::string::npos);
  EXPECT_EQ(http(s.port(), "POST", "/detokenize", R"({"tokens": [99999999]})").status, 400);
}

TEST(Http, KeepAliveServesSeveralRequestsOnOneConnection) {
  auto& s = shared_server();
  const int fd = connect_to(s.port());
  std::string two;
  for (int i = 0; i < 2; ++i) {
    two += "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
  }
  send_all(fd, two);
  std::string in;
  char buf[4096];
  while (in.find("HTTP/1.1 200", in.find("HTTP/1.1 200") + 1) == std::string::npos) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    in.append(buf, size_t(n));
  }
  ::close(fd);
  EXPECT_NE(in.find("HTTP/1.1 200", in.find("HTTP/1.1 200") + 1), std::string::npos) << in;
}

TEST(Http, DisconnectMidStreamFreesKvBlocks) {
  auto& s = shared_server();
  const int fd = open_stream(s.port(), json{{"prompt", "Call me Ishmael."}, {"max_tokens", 240}, {"stream", true},
                                           {"ignore_eos", true}, {"temperature", 0}});
  ASSERT_GE(fd, 0);
  const std::string during = http(s.port(), "GET", "/metrics").body;
  ::close(fd);
  // The cancellation acts between scheduler steps: wait for it (with a deadline).
  double used = -1;
  wait_until([&] {
    const std::string m = http(s.port(), "GET", "/metrics").body;
    used = metric(m, "slm_kv_blocks_used");
    return used == 0 && metric(m, "slm_running_sequences") == 0;
  });
  EXPECT_EQ(used, 0.0);
  // It was cut: fewer tokens were generated than asked.
  const std::string after = http(s.port(), "GET", "/metrics").body;
  EXPECT_LT(metric(after, "slm_generated_tokens_total") - metric(during, "slm_generated_tokens_total"), 240.0);
}

TEST(Http, FiveHundredIdleConnectionsDoNotBlockRequests) {
  auto& s = shared_server();
  std::vector<int> idle;
  for (int i = 0; i < 500; ++i) idle.push_back(connect_to(s.port()));
  // Half of them sent a partial request and stalled.
  for (size_t i = 0; i < idle.size(); i += 2) send_all(idle[i], "POST /v1/completions HTTP/1.1\r\nHost: x\r\n");
  const auto start = std::chrono::steady_clock::now();
  auto r = http(s.port(), "POST", "/v1/completions", json{{"prompt", "Call me"}, {"max_tokens", 4}}.dump());
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(r.status, 200);
  EXPECT_LT(seconds, 10.0);
  const std::string m = http(s.port(), "GET", "/metrics").body;
  EXPECT_GE(metric(m, "slm_http_open_connections"), 500.0);
  for (int fd : idle) ::close(fd);
}

TEST(HttpAuth, ApiKeyRequiredExceptForHealth) {
  ServerProcess s({demo_model(), "--ctx", "128", "--parallel", "1", "--api-key", "sekret"});
  EXPECT_EQ(http(s.port(), "GET", "/health").status, 200);
  auto none = http(s.port(), "GET", "/v1/models");
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(error_of(none)["code"], "invalid_api_key");
  auto wrong = http(s.port(), "POST", "/v1/chat/completions", chat_body(), {"Authorization: Bearer nope"});
  EXPECT_EQ(wrong.status, 401);
  EXPECT_EQ(error_of(wrong)["code"], "invalid_api_key");
  auto right = http(s.port(), "GET", "/v1/models", "", {"Authorization: Bearer sekret"});
  EXPECT_EQ(right.status, 200);
}

// --max-queue 0: what can start at once is served, what would wait is refused with 429.
TEST(HttpLimits, FullQueueIs429) {
  ServerProcess s({demo_model(), "--ctx", "512", "--parallel", "1", "--max-queue", "0"});
  auto idle = http(s.port(), "POST", "/v1/completions", json{{"prompt", "Call me"}, {"max_tokens", 4}}.dump());
  EXPECT_EQ(idle.status, 200) << idle.body;
  // A stream holds the only slot.
  const int fd = open_stream(s.port(), json{{"prompt", "Call me Ishmael."}, {"max_tokens", 400}, {"stream", true},
                                           {"ignore_eos", true}});
  ASSERT_GE(fd, 0);
  auto r = http(s.port(), "POST", "/v1/completions", json{{"prompt", "Call me"}, {"max_tokens", 4}}.dump());
  ::close(fd);
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(error_of(r)["type"], "rate_limit_error");
  const std::string m = http(s.port(), "GET", "/metrics").body;
  EXPECT_EQ(metric(m, "slm_requests_rejected_total"), 1.0);
  EXPECT_NE(m.find("slm_http_requests_total{route=\"/v1/completions\",status=\"429\"} 1"), std::string::npos);
}

TEST(HttpCli, MissingConfigFileAndBadFlagsFail) {
  const std::string cmd = std::string(SLM_EXE) + " serve --config no-such-router.yaml --port 0 >/dev/null 2>&1";
  const int status = std::system(cmd.c_str());
  EXPECT_NE(WEXITSTATUS(status), 0);
  const std::string bad = std::string(SLM_EXE) + " serve " + demo_model() + " --parallel 0 --port 0 >/dev/null 2>&1";
  EXPECT_EQ(WEXITSTATUS(std::system(bad.c_str())), 2);
}

// A request's time limit ends it with what was generated and finish_reason "length" (streamed or
// not); the server's --request-timeout is the default and the most a request may ask for. The
// demo model's context is 512 tokens, which it fills in about half a second on an idle machine:
// the limits are well below that, and the answers must end short of the context (cut by time).
TEST(HttpTimeouts, RequestTimeoutEndsGenerationWithLength) {
  ServerProcess s({demo_model(), "--ctx", "2048", "--parallel", "2", "--request-timeout", "30", "--name", "demo"});
  const auto start = std::chrono::steady_clock::now();
  auto r = http(s.port(), "POST", "/v1/completions",
                json{{"prompt", "Call me"}, {"max_tokens", 2000}, {"ignore_eos", true}, {"timeout", 0.1}}.dump());
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_EQ(r.status, 200) << r.body;
  const json body = json::parse(r.body);
  EXPECT_EQ(body["choices"][0]["finish_reason"], "length");
  EXPECT_LT(body["usage"]["total_tokens"].get<int64_t>(), 512) << "the context ran out before the time limit";
  EXPECT_EQ(body["choices"][0]["text"].is_string(), true);
  EXPECT_GE(elapsed, 0.1);
  EXPECT_LT(elapsed, 25.0);

  auto streamed = http(s.port(), "POST", "/v1/chat/completions",
                       chat_body({{"max_tokens", 2000}, {"ignore_eos", true}, {"timeout", 0.05}, {"stream", true},
                                  {"stream_options", {{"include_usage", true}}}}));
  ASSERT_EQ(streamed.status, 200);
  const auto events = sse_events(streamed.body);
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events.back(), "[DONE]");
  // The last events: the finish, then the usage (no choices), then [DONE].
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(json::parse(events[events.size() - 3])["choices"][0]["finish_reason"], "length");
  EXPECT_LT(json::parse(events[events.size() - 2])["usage"]["total_tokens"].get<int64_t>(), 512);

  // The last event can reach the client before the scheduler's step that frees the blocks ends.
  std::string m;
  wait_until([&] {
    m = http(s.port(), "GET", "/metrics").body;
    return metric(m, "slm_kv_blocks_used") == 0 && metric(m, "slm_request_timeouts_total") == 2;
  });
  EXPECT_EQ(metric(m, "slm_request_timeouts_total"), 2.0) << m;
  EXPECT_EQ(metric(m, "slm_kv_blocks_used"), 0.0);
  auto bad = http(s.port(), "POST", "/v1/completions", json{{"prompt", "Call me"}, {"timeout", 0}}.dump());
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(error_of(bad)["param"], "timeout");
  EXPECT_EQ(http(s.port(), "POST", "/v1/completions", json{{"prompt", "Call me"}, {"timeout", "1"}}.dump()).status, 400);
}

TEST(HttpTimeouts, ServerDefaultAppliesToEveryRequest) {
  ServerProcess s({demo_model(), "--ctx", "2048", "--parallel", "1", "--request-timeout", "0.1"});
  // A request asking for longer still gets the server's limit.
  auto r = http(s.port(), "POST", "/v1/completions",
                json{{"prompt", "Call me"}, {"max_tokens", 2000}, {"ignore_eos", true}, {"timeout", 100}}.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  const json body = json::parse(r.body);
  EXPECT_EQ(body["choices"][0]["finish_reason"], "length");
  EXPECT_LT(body["usage"]["total_tokens"].get<int64_t>(), 512) << "the context ran out before the time limit";
  EXPECT_EQ(metric(http(s.port(), "GET", "/metrics").body, "slm_request_timeouts_total"), 1.0);
}
