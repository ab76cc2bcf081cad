// The router's commands as a user runs them: slm route explain, slm capture export.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "router_test_util.hpp"

namespace slm::router {
namespace {

struct CliRun {
  int code = -1;
  std::string out, err;
};

CliRun run_slm(const std::string& args) {
  const auto dir = test::temp_root();
  const std::string out = (dir / "cli_out").string(), err = (dir / "cli_err").string();
  const std::string cmd = std::string(SLM_EXE) + " " + args + " </dev/null >" + out + " 2>" + err;
  const int status = std::system(cmd.c_str());
  auto slurp = [](const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(out), slurp(err)};
}

const char* kConfig = R"(tiers:
  - name: small
    deployments: [{url: 'http://127.0.0.1:9/v1'}]
  - name: strong
    chars_per_token: 2
    deployments: [{url: 'http://127.0.0.1:9/v1'}]
routes:
  - model: auto
    policy: [by_task, topics]
policies:
  by_task:
    kind: rules
    rules:
      - name: extraction
        when: {task: extract}
        tier: small
  topics:
    kind: semantic
    threshold: 0.3
    default: small
    examples:
      strong: ["Prove that the sum of two even numbers is even.", "Derive the gradient of the softmax cross-entropy loss."]
accounting: {database: ':memory:'}
)";

TEST(RouteCli, ExplainPrintsDecisionAndReasons) {
  const auto dir = test::fresh_dir("cli_explain");
  std::ofstream(dir / "router.yaml") << kConfig;
  const std::string cfg = (dir / "router.yaml").string();
  CliRun r = run_slm("route explain --config " + cfg + " --task extract 'Pull the invoice number out of this email'");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("tier: small"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("policy by_task: extraction matched (task=extract)"), std::string::npos) << r.out;
  // 41 bytes: 11 tokens at the default 4 bytes per token, 21 at strong's 2.
  EXPECT_NE(r.out.find("  small: 11 (estimated at 4 bytes per token)\n  strong: 21 (estimated at 2 bytes per token)"), std::string::npos)
      << r.out;
  r = run_slm("route explain --config " + cfg + " 'Prove that the sum of two odd numbers is even.' --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["tier"], "strong");
  EXPECT_EQ(j["policy"], "topics");
  EXPECT_EQ(j["prompt_tokens"]["strong"], 23);  // 46 bytes at 2 per token
  EXPECT_NE(j["reasons"].back().get<std::string>().find("most similar examples: tier strong"), std::string::npos) << r.out;
}

TEST(RouteCli, ConfigErrorsNameFileLineAndColumn) {
  const auto dir = test::fresh_dir("cli_bad");
  std::string bad = kConfig;
  bad.replace(bad.find("tier: small\n  topics"), 11, "tier: tiny");
  std::ofstream(dir / "router.yaml") << bad;
  const CliRun r = run_slm("route explain --config " + (dir / "router.yaml").string() + " hello");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("router.yaml:16:15: expected a tier name (small, strong), found 'tiny'"), std::string::npos) << r.err;
}

TEST(RouteCli, CaptureExportWritesChatJsonl) {
  const auto dir = test::fresh_dir("cli_capture");
  test::FakeUpstream strong("strong");
  const std::string db = (dir / "router.db").string();
  {
    RouterConfig c = parse_config("tiers:\n  - name: strong\n    deployments: [{url: '" + strong.url() + "'}]\ncapture: {tiers: [strong]}\n", "r.yaml");
    c.database = db;
    Router router(std::move(c));
    for (const char* q : {"first", "second", "first"}) {
      auto sink = std::make_shared<test::RecordingSink>();
      router.chat_completions(test::chat_request("strong", q), test::request_info(std::string("id-") + q + std::to_string(rand())), sink);
      ASSERT_TRUE(sink->wait());
    }
    router.store().flush();
  }
  const CliRun r = run_slm("capture export --db " + db + " --format chat-jsonl");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "{\"messages\":[{\"content\":\"first\",\"role\":\"user\"},{\"content\":\"strong: first\",\"role\":\"assistant\"}]}\n"
                   "{\"messages\":[{\"content\":\"second\",\"role\":\"user\"},{\"content\":\"strong: second\",\"role\":\"assistant\"}]}\n");
  EXPECT_NE(r.err.find("exported 2 conversations"), std::string::npos);
  EXPECT_EQ(run_slm("capture export --db " + db + " --format alpaca").code, 2);
}

}  // namespace
}  // namespace slm::router
