// End to end: `slm serve --config router.yaml` with two in-process tiers on the demo model and an
// upstream tier (the fake), spoken to over HTTP.
#include <gtest/gtest.h>

#include <fstream>

#include "../server/server_process.hpp"
#include "router_test_util.hpp"

namespace slm::router {
namespace {

TEST(RouterServe, ServesTiersOverHttp) {
  test::FakeUpstream remote("remote");
  const auto dir = test::fresh_dir("serve");
  const std::string demo = slm_test::demo_model();
  std::ofstream(dir / "router.yaml") << "tiers:\n"
                                        "  - name: small\n    deployments: [{model: '" << demo << "'}]\n"
                                        "  - name: workhorse\n    deployments: [{model: '" << demo << "'}]\n"
                                        "  - name: frontier\n    price_per_million: {input: 3, output: 15}\n"
                                        "    deployments: [{url: '" << remote.url() << "', model: big}]\n"
                                        "routes:\n  - {model: auto, policy: p}\n"
                                        "policies:\n  p:\n    kind: rules\n    rules:\n"
                                        "      - {when: {task: hard}, tier: frontier}\n"
                                        "      - {when: {task: medium}, tier: workhorse}\n"
                                        "    default: small\n"
                                        "accounting: {database: router.db}\n";
  slm_test::ServerProcess server({"--config", (dir / "router.yaml").string(), "--ctx", "256", "--parallel", "2"});
  const nlohmann::json ask{{"model", "auto"}, {"max_tokens", 6}, {"temperature", 0},
                           {"messages", {{{"role", "user"}, {"content", "Once upon a time"}}}}};
  auto small = slm_test::http(server.port(), "POST", "/v1/chat/completions", ask.dump());
  ASSERT_EQ(small.status, 200) << small.body;
  const auto small_json = nlohmann::json::parse(small.body);
  EXPECT_FALSE(small_json["choices"][0]["message"]["content"].get<std::string>().empty());

  nlohmann::json streamed = ask;
  streamed["stream"] = true;
  auto medium = slm_test::http(server.port(), "POST", "/v1/chat/completions", streamed.dump(), {"x-slm-task: medium"});
  ASSERT_EQ(medium.status, 200) << medium.body;
  EXPECT_NE(medium.body.find("data: [DONE]"), std::string::npos) << medium.body;

  auto hard = slm_test::http(server.port(), "POST", "/v1/chat/completions", ask.dump(), {"x-slm-task: hard"});
  ASSERT_EQ(hard.status, 200) << hard.body;
  EXPECT_EQ(nlohmann::json::parse(hard.body)["choices"][0]["message"]["content"], "remote: Once upon a time");

  auto unknown = slm_test::http(server.port(), "POST", "/v1/chat/completions", nlohmann::json{{"model", "nope"}, {"messages", ask["messages"]}}.dump());
  EXPECT_EQ(unknown.status, 404) << unknown.body;

  auto stats = slm_test::http(server.port(), "GET", "/v1/router/stats");
  ASSERT_EQ(stats.status, 200) << stats.body;
  auto posted = slm_test::http(server.port(), "POST", "/v1/router/stats", "{}");
  ASSERT_EQ(posted.status, 200) << posted.body;
  const auto st = nlohmann::json::parse(stats.body);
  EXPECT_EQ(st["requests"], 4);
  EXPECT_EQ(st["tiers"]["small"]["requests"], 1);
  EXPECT_EQ(st["tiers"]["workhorse"]["requests"], 1);
  EXPECT_EQ(st["tiers"]["frontier"]["requests"], 1);
  EXPECT_GT(st["tiers"]["frontier"]["cost_usd"].get<double>(), 0);

  auto metrics = slm_test::http(server.port(), "GET", "/metrics");
  EXPECT_NE(metrics.body.find("slm_router_requests_total{tier=\"frontier\"} 1"), std::string::npos) << metrics.body;
  auto models = slm_test::http(server.port(), "GET", "/v1/models");
  EXPECT_NE(models.body.find("\"auto\""), std::string::npos) << models.body;
}

TEST(RouterServe, BadConfigStopsTheStartWithItsLine) {
  const auto dir = test::fresh_dir("serve_bad");
  std::ofstream(dir / "router.yaml") << "tiers:\n  - name: a\n    deployments: [{url: 'http://127.0.0.1:9/v1'}]\n    timeout: soon\n";
  const std::string cmd = std::string(SLM_EXE) + " serve --port 0 --config " + (dir / "router.yaml").string() + " 2>" +
                          (dir / "err").string() + " >/dev/null </dev/null";
  const int status = std::system(cmd.c_str());
  EXPECT_EQ(WEXITSTATUS(status), 2);
  std::ifstream in(dir / "err");
  const std::string err((std::istreambuf_iterator<char>(in)), {});
  EXPECT_NE(err.find("router.yaml:4:14: expected timeout (seconds) (a number), found 'soon'"), std::string::npos) << err;
}

}  // namespace
}  // namespace slm::router
