#include <gtest/gtest.h>

#include <fstream>

#include "router_test_util.hpp"
#include "slm/router/config.hpp"
#include "slm/util/error.hpp"

namespace slm::router {
namespace {

const char* kGood = R"(tiers:
  - name: small
    price_per_million: {input: 0.1, output: 0.2}
    context: 8192
    timeout: 30
    deployments:
      - model: models/demo/demo-q8_0.gguf
  - name: strong
    price_per_million: {input: 3, output: 15}
    deployments:
      - url: https://api.example.com/v1
        api_key_env: EXAMPLE_KEY
        model: big-model
        weight: 2
      - name: backup
        url: http://10.0.0.2:8080/v1
routes:
  - model: auto
    policy: [by_task, cascade]
  - model: fast
    tier: small
policies:
  by_task:
    kind: rules
    rules:
      - name: extraction is easy
        when: {task: [extract, classify], max_prompt_tokens: 2000}
        tier: small
      - when: {tools: true}
        tier: strong
  cascade:
    kind: cascade
    tiers: [small, strong]
    min_mean_logprob: -0.7
    samples: 3
    min_agreement: 0.66
limits:
  keys:
    default: {requests_per_minute: 600, tokens_per_minute: 200000}
    sk-team-a: {budget_usd: 25, on_exceed: downgrade}
budgets:
  period: month
  tiers:
    strong: {budget_usd: 100, on_exceed: downgrade}
retry: {attempts: 3, backoff: 0.1, max_backoff: 2}
circuit_breaker: {failures: 5, cooldown: 60}
capture: {tiers: [strong], tasks: [extract]}
accounting: {database: router.db}
)";

std::string error_of(const std::string& yaml) {
  try {
    parse_config(yaml, "router.yaml");
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::invalid_argument);
    return e.what();
  }
  return "";
}

TEST(RouterConfig, ParsesEverySection) {
  const RouterConfig c = parse_config(kGood, "router.yaml");
  ASSERT_EQ(c.tiers.size(), 2u);
  EXPECT_EQ(c.tiers[0].name, "small");
  EXPECT_TRUE(c.tiers[0].deployments[0].local());
  EXPECT_EQ(c.tiers[0].deployments[0].name, "small/0");
  EXPECT_DOUBLE_EQ(c.tiers[0].price_output, 0.2);
  EXPECT_EQ(c.tiers[0].context, 8192);
  EXPECT_DOUBLE_EQ(c.tiers[0].timeout_s, 30);
  ASSERT_EQ(c.tiers[1].deployments.size(), 2u);
  EXPECT_EQ(c.tiers[1].deployments[0].api_key_env, "EXAMPLE_KEY");
  EXPECT_EQ(c.tiers[1].deployments[0].model, "big-model");
  EXPECT_DOUBLE_EQ(c.tiers[1].deployments[0].weight, 2);
  EXPECT_EQ(c.tiers[1].deployments[1].name, "backup");
  ASSERT_EQ(c.routes.size(), 2u);
  EXPECT_EQ(c.routes[0].policies, (std::vector<std::string>{"by_task", "cascade"}));
  EXPECT_EQ(c.routes[1].tier, "small");
  const PolicyConfig& rules = c.policies.at("by_task");
  ASSERT_EQ(rules.rules.size(), 2u);
  EXPECT_EQ(rules.rules[0].name, "extraction is easy");
  EXPECT_EQ(rules.rules[0].when.tasks, (std::vector<std::string>{"extract", "classify"}));
  EXPECT_EQ(*rules.rules[0].when.max_prompt_tokens, 2000);
  EXPECT_TRUE(*rules.rules[1].when.tools);
  const PolicyConfig& cascade = c.policies.at("cascade");
  EXPECT_EQ(cascade.kind, PolicyKind::cascade);
  EXPECT_EQ(cascade.samples, 3);
  EXPECT_DOUBLE_EQ(cascade.min_mean_logprob, -0.7);
  ASSERT_NE(c.key_limit("sk-team-a"), nullptr);
  EXPECT_EQ(c.key_limit("sk-team-a")->on_exceed, OnExceed::downgrade);
  EXPECT_EQ(c.key_limit("anyone")->requests_per_minute, 600);  // the default entry
  EXPECT_EQ(c.budget_period, "month");
  ASSERT_EQ(c.tier_budgets.size(), 1u);
  EXPECT_EQ(c.retry.attempts, 3);
  EXPECT_EQ(c.breaker.failures, 5);
  EXPECT_EQ(c.capture.tiers, (std::vector<std::string>{"strong"}));
}

TEST(RouterConfig, ErrorsPointAtLineAndColumn) {
  // Each case: a replacement in the good file, and what the message must contain.
  struct Case {
    std::string from, to, expect;
  };
  const std::vector<Case> cases = {
      {"    context: 8192", "    context: lots", "router.yaml:4:14: expected context (tokens) (a number), found 'lots'"},
      {"    timeout: 30", "    timeot: 30", "router.yaml:5:5: unknown key 'timeot' in a tier; expected one of:"},
      {"        tier: small\n      - when", "        tier: medium\n      - when", "router.yaml:28:15: expected a tier name (small, strong), found 'medium'"},
      {"policy: [by_task, cascade]", "policy: [by_task, cascades]", "router.yaml:19:23: expected a policy name (by_task, cascade), found 'cascades'"},
      {"        url: http://10.0.0.2:8080/v1", "        url: ftp://10.0.0.2/v1", "router.yaml:16:14: expected url starting with http:// or https://"},
      {"on_exceed: downgrade}\nbudgets", "on_exceed: shrug}\nbudgets", "expected on_exceed 'reject' or 'downgrade', found 'shrug'"},
      {"    kind: cascade", "    kind: magic", "router.yaml:32:11: expected policy kind rules, semantic, learned or cascade, found 'magic'"},
      {"    tiers: [small, strong]", "    tiers: [small]", "expected at least two tiers in a cascade, found 1"},
      {"      - model: models/demo/demo-q8_0.gguf", "      - weight: 1", "router.yaml:7:9: expected a deployment with 'model: PATH' (in-process) or 'url: URL' (upstream), found neither"},
      {"  - name: strong", "  - name: small", "router.yaml:8:11: expected unique tier names, found 'small' twice"},
      {"retry: {attempts: 3", "retry: {attempts: -3", "expected retry attempts of at least 0, found -3"},
  };
  for (const auto& c : cases) {
    std::string yaml = kGood;
    const size_t at = yaml.find(c.from);
    ASSERT_NE(at, std::string::npos) << c.from;
    yaml.replace(at, c.from.size(), c.to);
    const std::string message = error_of(yaml);
    EXPECT_NE(message.find(c.expect), std::string::npos) << "expected: " << c.expect << "\nfound: " << message;
  }
}

TEST(RouterConfig, SyntaxAndShapeErrors) {
  EXPECT_NE(error_of("tiers: [ {name: a").find("router.yaml:1:"), std::string::npos);
  EXPECT_NE(error_of("tiers: [ {name: a").find("expected valid YAML"), std::string::npos);
  EXPECT_NE(error_of("routes: []\n").find("router.yaml:1:1: expected 'tiers' (a list), found none"), std::string::npos);
  EXPECT_NE(error_of("tiers: {a: 1}\n").find("router.yaml:1:8: expected tiers (a list), found a mapping"), std::string::npos);
  EXPECT_NE(error_of("tiers:\n  - name: a\n    deployments: []\n").find("router.yaml:3:18: expected at least one deployment"), std::string::npos);
  EXPECT_NE(error_of("tiers:\n  - name: a\n    deployments: [{model: m}]\n    fallback: b\n").find("router.yaml:4:15: expected a tier name (a), found 'b'"),
            std::string::npos);
}

TEST(RouterConfig, LoadResolvesFilesNextToTheConfig) {
  const auto dir = test::fresh_dir("config_load");
  std::ofstream(dir / "router.yaml") << "tiers:\n  - name: a\n    deployments: [{url: 'http://127.0.0.1:1/v1'}]\naccounting: {database: log.db}\n";
  const RouterConfig c = load_config((dir / "router.yaml").string());
  EXPECT_EQ(c.database, (dir / "log.db").string());
  try {
    load_config((dir / "missing.yaml").string());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::not_found);
  }
}

}  // namespace
}  // namespace slm::router
