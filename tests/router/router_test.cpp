// The router against scripted fake upstreams: for each fault, the right fallback, a complete answer
// or a clear error for the client, and exactly one log row per request.
#include <gtest/gtest.h>

#include <sstream>

#include "router_test_util.hpp"
#include "slm/router/router.hpp"

namespace slm::router {
namespace {

using test::FakeUpstream;
using test::RecordingSink;
using test::chat_request;
using test::request_info;

// Two tiers, small then strong, each one fake upstream (or more for small).
std::string two_tiers(const std::vector<const FakeUpstream*>& small, const FakeUpstream& strong, const std::string& extra = "",
                      const std::string& small_tier_extra = "") {
  std::string y = "tiers:\n  - name: small\n    price_per_million: {input: 1, output: 2}\n" + small_tier_extra + "    deployments:\n";
  for (size_t i = 0; i < small.size(); ++i) y += "      - {name: small" + std::to_string(i) + ", url: '" + small[i]->url() + "', model: s}\n";
  y += "  - name: strong\n    price_per_million: {input: 10, output: 20}\n    deployments:\n      - {name: strong0, url: '" + strong.url() +
       "', model: S}\n";
  y += "retry: {attempts: 1, backoff: 0.01}\n";
  y += extra;
  return y;
}

std::unique_ptr<Router> make_router(const std::string& yaml, const std::string& database = ":memory:") {
  RouterConfig c = parse_config(yaml, "router.yaml");
  c.database = database;
  return std::make_unique<Router>(std::move(c));
}

std::shared_ptr<RecordingSink> send(Router& r, const nlohmann::json& request, const std::string& id, const std::string& key = "",
                                    std::map<std::string, std::string> headers = {}) {
  auto sink = std::make_shared<RecordingSink>();
  r.chat_completions(request, request_info(id, key, std::move(headers)), sink);
  EXPECT_TRUE(sink->wait()) << "no answer for " << id;
  return sink;
}

std::string answer_content(const RecordingSink& s) { return s.json["choices"][0]["message"]["content"].get<std::string>(); }

// The log rows, oldest first.
nlohmann::json rows(Router& r) {
  r.store().flush();
  return r.store().stats();
}

class RouterFaults : public ::testing::Test {
 protected:
  FakeUpstream small{"small"};
  FakeUpstream strong{"strong"};
};

TEST_F(RouterFaults, AnswersFromTheChosenTierAndLogsOnce) {
  auto r = make_router(two_tiers({&small}, strong));
  auto s = send(*r, chat_request("small", "hello there"), "req-1");
  ASSERT_FALSE(s->failed) << s->error.message;
  EXPECT_EQ(answer_content(*s), "small: hello there");
  EXPECT_EQ(small.stats()["bodies"][0]["model"], "s");  // the deployment's model name goes upstream
  auto st = rows(*r);
  EXPECT_EQ(st["requests"], 1);
  EXPECT_EQ(st["tiers"]["small"]["requests"], 1);
  EXPECT_EQ(st["tiers"]["small"]["input_tokens"], 2);
  EXPECT_EQ(st["tiers"]["small"]["output_tokens"], 3);
  EXPECT_NEAR(st["tiers"]["small"]["cost_usd"].get<double>(), (2 * 1 + 3 * 2) / 1e6, 1e-12);
}

TEST_F(RouterFaults, RetriesA5xxThenAnswers) {
  auto r = make_router(two_tiers({&small}, strong));
  small.script({{{"mode", "status"}, {"status", 503}}});
  auto s = send(*r, chat_request("small", "retry me"), "req-1");
  ASSERT_FALSE(s->failed) << s->error.message;
  EXPECT_EQ(answer_content(*s), "small: retry me");
  EXPECT_EQ(small.stats()["requests"], 2);
  EXPECT_EQ(strong.stats()["requests"], 0);
  EXPECT_EQ(r->store().count_requests(), 1);
}

TEST_F(RouterFaults, FallsBackToTheNextTierWhenRetriesFail) {
  for (const nlohmann::json& fault : {nlohmann::json{{"mode", "status"}, {"status", 500}}, nlohmann::json{{"mode", "status"}, {"status", 429}},
                                      nlohmann::json{{"mode", "malformed"}}}) {
    small.script(nlohmann::json::array(), fault);
    strong.script(nlohmann::json::array(), {{"mode", "ok"}});
    auto r = make_router(two_tiers({&small}, strong, "circuit_breaker: {failures: 100}\n"));
    const auto small_before = small.stats()["requests"].get<int>();
    const auto strong_before = strong.stats()["requests"].get<int>();
    auto s = send(*r, chat_request("small", "fall back"), "req-" + fault.dump());
    ASSERT_FALSE(s->failed) << fault.dump() << ": " << s->error.message;
    EXPECT_EQ(answer_content(*s), "strong: fall back") << fault.dump();
    EXPECT_EQ(small.stats()["requests"].get<int>() - small_before, 2) << fault.dump();  // first try and one retry
    EXPECT_EQ(strong.stats()["requests"].get<int>() - strong_before, 1) << fault.dump();
    auto st = rows(*r);
    EXPECT_EQ(st["requests"], 1);
    EXPECT_EQ(st["tiers"]["strong"]["requests"], 1);
  }
}

TEST_F(RouterFaults, SlowDeploymentTimesOutAndFallsBack) {
  auto r = make_router(two_tiers({&small}, strong, "", "    timeout: 0.3\n"));
  small.script(nlohmann::json::array(), {{"mode", "ok"}, {"delay", 3}});
  const auto t0 = std::chrono::steady_clock::now();
  auto s = send(*r, chat_request("small", "too slow"), "req-1");
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_FALSE(s->failed) << s->error.message;
  EXPECT_EQ(answer_content(*s), "strong: too slow");
  EXPECT_LT(took, 2.5);  // two timeouts of 0.3 s and a backoff, not the 3 s delay
  // The timed-out requests were abandoned: the fake saw their connections close.
  for (int i = 0; i < 500 && small.stats()["cancelled"].get<int>() < 2; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(small.stats()["cancelled"], 2);
  EXPECT_EQ(small.stats()["completed"], 0);
}

TEST_F(RouterFaults, StreamPassesThroughAndCountsUsage) {
  auto r = make_router(two_tiers({&small}, strong));
  auto s = send(*r, chat_request("small", "one two three four", true), "req-1");
  ASSERT_FALSE(s->failed) << s->error.message;
  EXPECT_TRUE(s->stream_done);
  EXPECT_EQ(s->streamed_text(), "small: one two three four");
  // The router asked for usage for its own accounting; the client did not, so it gets no usage chunk.
  for (const auto& e : s->events) EXPECT_FALSE(e.contains("usage")) << e.dump();
  EXPECT_TRUE(small.stats()["bodies"][0]["stream_options"]["include_usage"].get<bool>());
  auto st = rows(*r);
  EXPECT_EQ(st["tiers"]["small"]["output_tokens"], 5);
  EXPECT_EQ(st["tiers"]["small"]["input_tokens"], 4);
}

TEST_F(RouterFaults, StreamCutAfterBytesReachedTheClientIsAClearErrorWithoutRetry) {
  auto r = make_router(two_tiers({&small}, strong));
  small.script({{{"mode", "cut"}, {"cut_after", 2}}});
  auto s = send(*r, chat_request("small", "a b c d e", true), "req-1");
  EXPECT_TRUE(s->failed);
  EXPECT_EQ(s->error.status, 502);
  EXPECT_NE(s->error.message.find("broke off"), std::string::npos) << s->error.message;
  EXPECT_EQ(s->event_count(), 2u);
  EXPECT_EQ(small.stats()["requests"], 1);
  EXPECT_EQ(strong.stats()["requests"], 0);
  auto st = rows(*r);
  EXPECT_EQ(st["requests"], 1);
  EXPECT_EQ(st["tiers"]["small"]["errors"], 1);
}

TEST_F(RouterFaults, StreamCutBeforeTheFirstChunkFallsBack) {
  auto r = make_router(two_tiers({&small}, strong));
  small.script({{{"mode", "cut"}, {"cut_after", 0}}, {{"mode", "cut"}, {"cut_after", 0}}});
  auto s = send(*r, chat_request("small", "x y", true), "req-1");
  ASSERT_FALSE(s->failed) << s->error.message;
  EXPECT_EQ(s->streamed_text(), "strong: x y");
  EXPECT_EQ(r->store().count_requests(), 1);
}

TEST_F(RouterFaults, MalformedStreamEventIsAClearError) {
  auto r = make_router(two_tiers({&small}, strong));
  small.script({{{"mode", "malformed_stream"}}});
  auto s = send(*r, chat_request("small", "a b c", true), "req-1");
  EXPECT_TRUE(s->failed);
  EXPECT_NE(s->error.message.find("malformed JSON"), std::string::npos) << s->error.message;
  EXPECT_EQ(s->event_count(), 1u);
}

TEST_F(RouterFaults, ClientDisconnectCancelsTheUpstream) {
  auto r = make_router(two_tiers({&small}, strong));
  small.script({{{"mode", "hang"}}});
  auto sink = std::make_shared<RecordingSink>();
  r->chat_completions(chat_request("small", "never mind", true), request_info("req-1"), sink);
  for (int i = 0; i < 500 && small.stats()["requests"].get<int>() < 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  sink->cancel();
  for (int i = 0; i < 500 && small.stats()["cancelled"].get<int>() < 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(small.stats()["cancelled"], 1);
  EXPECT_EQ(strong.stats()["requests"], 0);
  r->store().flush();
  for (int i = 0; i < 500 && r->store().count_requests() < 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(r->store().count_requests(), 1);
}

TEST_F(RouterFaults, CircuitBreakerBenchesAFailingDeployment) {
  FakeUpstream good("good");
  auto r = make_router(two_tiers({&small, &good}, strong, "circuit_breaker: {failures: 2, cooldown: 60}\n"));
  small.script(nlohmann::json::array(), {{"mode", "status"}, {"status", 502}});
  for (int i = 0; i < 12; ++i) {
    auto s = send(*r, chat_request("small", "n" + std::to_string(i)), "req-" + std::to_string(i));
    ASSERT_FALSE(s->failed) << s->error.message;
    EXPECT_EQ(answer_content(*s), "good: n" + std::to_string(i));
  }
  EXPECT_EQ(small.stats()["requests"], 2);  // benched after two failures, never tried again in the cool-down
  EXPECT_EQ(good.stats()["requests"], 12);
  auto d = r->deployments_json();
  EXPECT_TRUE(d["small"][0]["benched"].get<bool>());
  EXPECT_FALSE(d["small"][1]["benched"].get<bool>());
  EXPECT_EQ(r->store().count_requests(), 12);
}

TEST_F(RouterFaults, BalancesAcrossHealthyDeployments) {
  FakeUpstream other("other");
  auto r = make_router(two_tiers({&small, &other}, strong));
  std::vector<std::shared_ptr<RecordingSink>> sinks;
  for (int i = 0; i < 20; ++i) {
    auto sink = std::make_shared<RecordingSink>();
    r->chat_completions(chat_request("small", "q"), request_info("req-" + std::to_string(i)), sink);
    sinks.push_back(sink);
  }
  for (auto& s : sinks) ASSERT_TRUE(s->wait());
  const int a = small.stats()["requests"], b = other.stats()["requests"];
  EXPECT_EQ(a + b, 20);
  EXPECT_GE(a, 4);
  EXPECT_GE(b, 4);
  EXPECT_EQ(r->store().count_requests(), 20);
}

TEST_F(RouterFaults, EveryTierFailingIsOneClearError) {
  auto r = make_router(two_tiers({&small}, strong));
  small.script(nlohmann::json::array(), {{"mode", "status"}, {"status", 500}});
  strong.script(nlohmann::json::array(), {{"mode", "status"}, {"status", 503}});
  auto s = send(*r, chat_request("small", "doomed"), "req-1");
  ASSERT_TRUE(s->failed);
  EXPECT_EQ(s->error.status, 502);
  EXPECT_NE(s->error.message.find("every tier failed"), std::string::npos) << s->error.message;
  EXPECT_EQ(r->store().count_requests(), 1);
}

TEST_F(RouterFaults, ClientErrorsPassThroughWithoutRetry) {
  auto r = make_router(two_tiers({&small}, strong));
  small.script({{{"mode", "status"}, {"status", 400}}});
  auto s = send(*r, chat_request("small", "bad"), "req-1");
  ASSERT_TRUE(s->failed);
  EXPECT_EQ(s->error.status, 400);
  EXPECT_EQ(small.stats()["requests"], 1);
  EXPECT_EQ(strong.stats()["requests"], 0);
}

TEST_F(RouterFaults, UnknownModelIs404) {
  auto r = make_router(two_tiers({&small}, strong, "routes:\n  - {model: auto, tier: small}\n"));
  auto s = send(*r, chat_request("nope", "x"), "req-1");
  ASSERT_TRUE(s->failed);
  EXPECT_EQ(s->error.status, 404);
  EXPECT_NE(s->error.message.find("found 'nope'"), std::string::npos) << s->error.message;
}

TEST_F(RouterFaults, RateLimitAndTierBudget) {
  auto r = make_router(two_tiers({&small}, strong,
                                 "limits:\n  keys:\n    sk-a: {requests_per_minute: 3}\n"
                                 "budgets:\n  tiers:\n    strong: {budget_usd: 0.00005, on_exceed: downgrade}\n"));
  for (int i = 0; i < 3; ++i) {
    auto s = send(*r, chat_request("small", "x"), "a" + std::to_string(i), "sk-a");
    EXPECT_FALSE(s->failed) << s->error.message;
  }
  auto limited = send(*r, chat_request("small", "x"), "a3", "sk-a");
  ASSERT_TRUE(limited->failed);
  EXPECT_EQ(limited->error.status, 429);
  EXPECT_EQ(limited->error.type, "rate_limit_error");
  // Another key is not limited. The strong tier costs 10/20 USD per million: two words in, three out
  // is 80e-6 USD, over its budget after the first request, so the second goes to small.
  auto first = send(*r, chat_request("strong", "two words"), "b0", "sk-b");
  EXPECT_EQ(answer_content(*first), "strong: two words");
  auto second = send(*r, chat_request("strong", "two words"), "b1", "sk-b");
  EXPECT_EQ(answer_content(*second), "small: two words");
  EXPECT_EQ(r->store().count_requests(), 6);
}

TEST_F(RouterFaults, StatsAndMetrics) {
  auto r = make_router(two_tiers({&small}, strong));
  send(*r, chat_request("small", "a"), "r1");
  send(*r, chat_request("strong", "b"), "r2");
  auto sink = std::make_shared<RecordingSink>();
  ASSERT_TRUE(r->handle_other("GET", "/v1/router/stats", nullptr, request_info("s"), sink));
  ASSERT_TRUE(sink->wait());
  EXPECT_EQ(sink->json["requests"], 2);
  EXPECT_EQ(sink->json["tiers"]["strong"]["requests"], 1);
  EXPECT_EQ(sink->json["deployments"]["small"][0]["requests"], 1);
  EXPECT_FALSE(r->handle_other("GET", "/v1/other", nullptr, request_info("s"), std::make_shared<RecordingSink>()));
  const std::string m = r->metrics_text();
  EXPECT_NE(m.find("slm_router_requests_total{tier=\"small\"} 1"), std::string::npos) << m;
  EXPECT_NE(m.find("slm_router_requests_total{tier=\"strong\"} 1"), std::string::npos) << m;
}

TEST_F(RouterFaults, CapturesStrongAnswersAndExportsThemOnce) {
  const auto dir = test::fresh_dir("capture");
  const std::string db = (dir / "router.db").string();
  {
    auto r = make_router(two_tiers({&small}, strong, "capture: {tiers: [strong], tasks: [extract]}\n"), db);
    const std::map<std::string, std::string> extract{{"x-slm-task", "extract"}};
    send(*r, chat_request("strong", "invoice 17"), "c1", "", extract);
    send(*r, chat_request("strong", "invoice 17"), "c2", "", extract);  // the same conversation again
    send(*r, chat_request("strong", "invoice 18", true), "c3", "", extract);
    send(*r, chat_request("strong", "not extraction"), "c4", "", {{"x-slm-task", "chat"}});
    send(*r, chat_request("small", "small tier"), "c5", "", extract);
    nlohmann::json meta = chat_request("strong", "invoice 19");
    meta["metadata"] = {{"task", "extract"}};
    send(*r, meta, "c6");
    r->store().flush();
  }
  std::ostringstream out;
  EXPECT_EQ(export_captures(db, "extract", out), 3);
  std::istringstream lines(out.str());
  std::string line;
  std::vector<std::string> answers;
  while (std::getline(lines, line)) {
    const auto j = nlohmann::json::parse(line);
    ASSERT_EQ(j["messages"].size(), 2u);
    EXPECT_EQ(j["messages"][0]["role"], "user");
    EXPECT_EQ(j["messages"][1]["role"], "assistant");
    answers.push_back(j["messages"][1]["content"]);
  }
  EXPECT_EQ(answers, (std::vector<std::string>{"strong: invoice 17", "strong: invoice 18", "strong: invoice 19"}));
}

}  // namespace
}  // namespace slm::router
