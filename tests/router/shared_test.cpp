// Limits and budgets shared by several router replicas through one SQLite database file (WAL): two
// Router objects, each with its own connections, as two processes on one host would be.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <atomic>
#include <set>

#include "../server/server_process.hpp"
#include "router_test_util.hpp"
#include "slm/router/limits.hpp"
#include "slm/util/error.hpp"

namespace slm::router {
namespace {

// Answers every chat request at once: 10 prompt tokens, 5 completion tokens.
class InstantProvider : public server::Provider {
 public:
  nlohmann::json models() override { return {{"object", "list"}, {"data", {{{"id", "instant"}}}}}; }
  void chat_completions(const nlohmann::json&, const server::RequestInfo&, std::shared_ptr<server::ResponseSink> sink) override {
    ++calls;
    sink->finish_json({{"id", "c"}, {"object", "chat.completion"}, {"model", "instant"},
                       {"choices", {{{"index", 0}, {"message", {{"role", "assistant"}, {"content", "ok"}}}, {"finish_reason", "stop"}}}},
                       {"usage", {{"prompt_tokens", 10}, {"completion_tokens", 5}, {"total_tokens", 15}}}});
  }
  void completions(const nlohmann::json& r, const server::RequestInfo& i, std::shared_ptr<server::ResponseSink> s) override {
    chat_completions(r, i, s);
  }
  void embeddings(const nlohmann::json&, const server::RequestInfo&, std::shared_ptr<server::ResponseSink> s) override {
    s->fail({400, "no embeddings"});
  }
  std::atomic<int> calls{0};
};

// price: 10,000 USD per million input tokens, so each request costs $0.10 (10 tokens).
std::string shared_yaml(const std::string& db, const std::string& replica) {
  return "tiers:\n  - name: small\n    price_per_million: {input: 10000, output: 0}\n    deployments: [{model: instant}]\n"
         "limits:\n  keys:\n    sk-rate: {requests_per_minute: 7}\n    sk-budget: {budget_usd: 0.5}\n"
         "accounting: {database: '" + db + "', shared: true, replica: " + replica + "}\n";
}

std::unique_ptr<Router> replica(const std::string& db, const std::string& name, std::shared_ptr<InstantProvider> provider) {
  RouterOptions options;
  options.local_factory = [provider](const std::string&) { return provider; };
  return std::make_unique<Router>(parse_config(shared_yaml(db, name), "router.yaml"), options);
}

// Sends one request and waits; returns the status the client got.
int ask(Router& r, const std::string& id, const std::string& key) {
  auto sink = std::make_shared<test::RecordingSink>();
  r.chat_completions(test::chat_request("small", "hello"), test::request_info(id, key), sink);
  EXPECT_TRUE(sink->wait(20));
  return sink->failed ? sink->error.status : 200;
}

int64_t query_int(const std::string& db, const std::string& sql) {
  sqlite3* h = nullptr;
  EXPECT_EQ(sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* s = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(h, sql.c_str(), -1, &s, nullptr), SQLITE_OK) << sql;
  int64_t v = -1;
  if (sqlite3_step(s) == SQLITE_ROW) v = sqlite3_column_int64(s, 0);
  sqlite3_finalize(s);
  sqlite3_close(h);
  return v;
}

double query_real(const std::string& db, const std::string& sql) {
  sqlite3* h = nullptr;
  EXPECT_EQ(sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* s = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(h, sql.c_str(), -1, &s, nullptr), SQLITE_OK) << sql;
  double v = -1;
  if (sqlite3_step(s) == SQLITE_ROW) v = sqlite3_column_double(s, 0);
  sqlite3_finalize(s);
  sqlite3_close(h);
  return v;
}

TEST(RouterShared, RateLimitAndBudgetHoldAcrossTwoReplicas) {
  const std::string db = (test::fresh_dir("shared") / "router.db").string();
  auto provider = std::make_shared<InstantProvider>();
  auto a = replica(db, "a", provider);
  auto b = replica(db, "b", provider);
  Router* both[2] = {a.get(), b.get()};

  // 7 requests per minute for sk-rate, asked 10 times alternately: the 8th, 9th and 10th are refused
  // whichever replica they reach (each alone would allow 7).
  std::vector<int> rate;
  for (int i = 0; i < 10; ++i) rate.push_back(ask(*both[i % 2], "rate-" + std::to_string(i), "sk-rate"));
  EXPECT_EQ(std::count(rate.begin(), rate.end(), 200), 7);
  EXPECT_EQ(std::count(rate.begin(), rate.end(), 429), 3);
  EXPECT_EQ(rate[7], 429);

  // $0.50 for sk-budget at $0.10 a request: five answered across both, then refused by both.
  std::vector<int> budget;
  for (int i = 0; i < 8; ++i) budget.push_back(ask(*both[(i + 1) % 2], "budget-" + std::to_string(i), "sk-budget"));
  EXPECT_EQ(std::vector<int>(budget.begin(), budget.begin() + 5), std::vector<int>(5, 200));
  EXPECT_EQ(std::vector<int>(budget.begin() + 5, budget.end()), std::vector<int>(3, 429));

  // A replica started later sees the spent budget.
  auto c = replica(db, "c", provider);
  EXPECT_EQ(ask(*c, "budget-late", "sk-budget"), 429);
  EXPECT_EQ(provider->calls.load(), 12);

  a->store().flush();
  b->store().flush();
  c->store().flush();
  // One row per request, each replica's ids apart.
  EXPECT_EQ(query_int(db, "SELECT COUNT(*) FROM requests"), 19);
  EXPECT_EQ(query_int(db, "SELECT COUNT(*) FROM requests WHERE request_id LIKE '%@a'"), 9);
  EXPECT_EQ(query_int(db, "SELECT COUNT(*) FROM requests WHERE request_id LIKE '%@b'"), 9);
  EXPECT_NEAR(query_real(db, "SELECT SUM(cost_usd) FROM requests"), 1.2, 1e-9);  // 7 + 5 answered at $0.10
  // Spend in the shared table equals the log's.
  EXPECT_NEAR(query_real(db, "SELECT SUM(usd) FROM spend WHERE scope = 'tier'"),
              query_real(db, "SELECT SUM(cost_usd) FROM requests"), 1e-9);
}

TEST(RouterShared, ConcurrentRequestsOnTwoReplicasAreCountedOnce) {
  const std::string db = (test::fresh_dir("shared_concurrent") / "router.db").string();
  auto provider = std::make_shared<InstantProvider>();
  auto a = replica(db, "a", provider);
  auto b = replica(db, "b", provider);
  // 40 requests at once, 20 on each replica, all for sk-rate (7 per minute): exactly 7 answered.
  std::vector<std::shared_ptr<test::RecordingSink>> sinks;
  for (int i = 0; i < 40; ++i) {
    auto sink = std::make_shared<test::RecordingSink>();
    (i % 2 ? *a : *b).chat_completions(test::chat_request("small", "hi"), test::request_info("c" + std::to_string(i / 2), "sk-rate"), sink);
    sinks.push_back(sink);
  }
  int ok = 0, limited = 0;
  for (auto& s : sinks) {
    ASSERT_TRUE(s->wait(20));
    if (!s->failed) ++ok;
    else if (s->error.status == 429) ++limited;
  }
  EXPECT_EQ(ok, 7);
  EXPECT_EQ(limited, 33);
  a->store().flush();
  b->store().flush();
  // The same request ids on both replicas: both rows kept, none lost, none twice.
  EXPECT_EQ(query_int(db, "SELECT COUNT(*) FROM requests"), 40);
  EXPECT_EQ(query_int(db, "SELECT COUNT(DISTINCT request_id) FROM requests"), 40);
  EXPECT_EQ(query_int(db, "SELECT COUNT(*) FROM requests WHERE status = 200"), 7);
  EXPECT_EQ(query_int(db, "SELECT SUM(requests) FROM rate_usage"), 7);
  EXPECT_NEAR(query_real(db, "SELECT SUM(usd) FROM spend WHERE scope = 'tier'"), 0.7, 1e-9);
}

TEST(RouterShared, TwoServeProcessesShareOneDatabase) {
  test::FakeUpstream remote("remote");
  const auto dir = test::fresh_dir("shared_processes");
  // The fake upstream reports one prompt token per word: "hello" costs $0.10 at this price.
  std::ofstream(dir / "router.yaml") << "tiers:\n  - name: big\n    price_per_million: {input: 100000, output: 0}\n"
                                        "    deployments: [{url: '" << remote.url() << "', model: big}]\n"
                                        "limits:\n  keys:\n    sk-rate: {requests_per_minute: 4}\n    sk-budget: {budget_usd: 0.3}\n"
                                        "accounting: {database: router.db, shared: true}\n";
  slm_test::ServerProcess one({"--config", (dir / "router.yaml").string()});
  slm_test::ServerProcess two({"--config", (dir / "router.yaml").string()});
  const int ports[2] = {one.port(), two.port()};
  const std::string body = test::chat_request("big", "hello").dump();
  std::vector<int> rate, budget;
  for (int i = 0; i < 6; ++i) {
    rate.push_back(slm_test::http(ports[i % 2], "POST", "/v1/chat/completions", body, {"Authorization: Bearer sk-rate"}).status);
  }
  for (int i = 0; i < 5; ++i) {
    budget.push_back(slm_test::http(ports[(i + 1) % 2], "POST", "/v1/chat/completions", body, {"Authorization: Bearer sk-budget"}).status);
  }
  EXPECT_EQ(rate, (std::vector<int>{200, 200, 200, 200, 429, 429}));
  EXPECT_EQ(budget, (std::vector<int>{200, 200, 200, 429, 429}));
  // Both processes' rows in the one log, each once (the writers commit a moment after the answers).
  const std::string db = (dir / "router.db").string();
  for (int i = 0; i < 500 && query_int(db, "SELECT COUNT(*) FROM requests") < 11; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(query_int(db, "SELECT COUNT(*) FROM requests"), 11);
  EXPECT_EQ(query_int(db, "SELECT COUNT(DISTINCT request_id) FROM requests"), 11);
  const auto stats = nlohmann::json::parse(slm_test::http(ports[0], "GET", "/v1/router/stats").body);
  EXPECT_EQ(stats["tiers"]["big"]["requests"], 7) << stats.dump();
  EXPECT_NEAR(stats["tiers"]["big"]["cost_usd"].get<double>(), 0.7, 1e-9);
}

TEST(RouterShared, TurningSharingOnKeepsTheSpendAlreadyLogged) {
  const std::string db = (test::fresh_dir("shared_migrate") / "router.db").string();
  auto provider = std::make_shared<InstantProvider>();
  {
    // A router without sharing logs $0.30 of sk-budget's $0.50.
    std::string yaml = shared_yaml(db, "x");
    yaml.replace(yaml.find(", shared: true"), std::string(", shared: true").size(), "");
    RouterOptions options;
    options.local_factory = [provider](const std::string&) { return provider; };
    Router solo(parse_config(yaml, "router.yaml"), options);
    for (int i = 0; i < 3; ++i) EXPECT_EQ(ask(solo, "solo-" + std::to_string(i), "sk-budget"), 200);
  }
  EXPECT_EQ(query_int(db, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'spend'"), 0);
  // Shared from now on: the spend table starts from the log, so two more fit and the third does not.
  auto a = replica(db, "a", provider);
  auto b = replica(db, "b", provider);
  EXPECT_EQ(ask(*a, "m1", "sk-budget"), 200);
  EXPECT_EQ(ask(*b, "m2", "sk-budget"), 200);
  EXPECT_EQ(ask(*a, "m3", "sk-budget"), 429);
  EXPECT_EQ(provider->calls.load(), 5);
}

TEST(RouterShared, SharedNeedsADatabaseFile) {
  try {
    parse_config("tiers:\n  - name: a\n    deployments: [{url: 'http://127.0.0.1:9/v1'}]\naccounting: {database: ':memory:', shared: true}\n",
                 "r.yaml");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("r.yaml:4:"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("expected a database file for shared limits"), std::string::npos) << e.what();
  }
}

TEST(RouterShared, MemoryAndSqliteStatesCountAlike) {
  const std::string db = (test::fresh_dir("shared_state") / "state.db").string();
  MemoryLimitState memory({}, {});
  SqliteLimitState sqlite(db);
  LimitState* states[2] = {&memory, &sqlite};
  const double t0 = 1.7e9 + 0.25;
  for (LimitState* s : states) {
    LimitState::Usage seen;
    auto under_three = [](const LimitState::Usage& u) { return u.requests < 3; };
    EXPECT_TRUE(s->try_admit("k", t0, 10, under_three, seen));
    EXPECT_TRUE(s->try_admit("k", t0 + 1, 20, under_three, seen));
    EXPECT_EQ(seen.requests, 1);
    EXPECT_EQ(seen.tokens, 10);
    s->add_tokens("k", t0 + 2, 5);
    EXPECT_TRUE(s->try_admit("k", t0 + 3, 1, under_three, seen));
    EXPECT_EQ(seen.tokens, 35);
    EXPECT_FALSE(s->try_admit("k", t0 + 4, 1, under_three, seen));  // three in the minute
    EXPECT_TRUE(s->try_admit("other", t0 + 4, 1, under_three, seen));
    EXPECT_EQ(seen.requests, 0);
    // A minute later the first two requests have left the window (t0 + 2's tokens and t0 + 3 remain).
    EXPECT_TRUE(s->try_admit("k", t0 + 61, 1, under_three, seen));
    EXPECT_EQ(seen.requests, 1);
    EXPECT_EQ(seen.tokens, 6);
    s->add_spend("key-1", "small", t0, 0.25);
    s->add_spend("key-1", "big", t0 + 86400, 0.5);
    EXPECT_NEAR(s->key_spend("key-1", 0), 0.75, 1e-12);
    EXPECT_NEAR(s->tier_spend("big", 0), 0.5, 1e-12);
    EXPECT_NEAR(s->tier_spend("nothing", 0), 0.0, 1e-12);
  }
  // A period that starts the next day counts only that day's spend, in both.
  for (LimitState* s : states) EXPECT_NEAR(s->key_spend("key-1", std::floor(t0 / 86400 + 1) * 86400), 0.5, 1e-12);
  // Spend loaded from the log counts for the period it was loaded for, not for a later one.
  MemoryLimitState loaded({{"key-2", 1.5}}, {{"small", 1.5}}, std::floor(t0 / 86400) * 86400);
  loaded.add_spend("key-2", "small", t0 + 86400, 0.25);
  EXPECT_NEAR(loaded.key_spend("key-2", std::floor(t0 / 86400) * 86400), 1.75, 1e-12);
  EXPECT_NEAR(loaded.tier_spend("small", std::floor(t0 / 86400 + 1) * 86400), 0.25, 1e-12);
}

}  // namespace
}  // namespace slm::router
