// Evaluation through the tier router: configuration overrides, and `slm eval --router` end to end on
// the demo model's two-tier configuration with a sweep of the length rule's threshold: tier shares,
// costs, the table, and the JSON, SVG, PNG and HTML reports.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "../common/command.hpp"
#include "../server/server_process.hpp"
#include "slm/eval/router_eval.hpp"
#include "slm/util/error.hpp"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace slm::eval;

namespace {

std::string demo_router() { return (fs::path(SLM_SOURCE_DIR) / "models" / "demo" / "router.yaml").string(); }

using CliRun = slm_test::CommandResult;

CliRun run(const std::string& args) { return slm_test::run_command(std::string(SLM_EXE) + " eval -q " + args + " 2>&1"); }

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

const json& point(const json& summary, const std::string& label) {
  for (const auto& p : summary.at("points")) {
    if (p.at("label") == label) return p;
  }
  static const json none;
  ADD_FAILURE() << "no point " << label << " in " << summary.dump();
  return none;
}

double share(const json& p, const std::string& tier) {
  const json& s = p.at("routing").at("tier_share");
  return s.contains(tier) ? s.at(tier).get<double>() : 0.0;
}

}  // namespace

TEST(RouterEval, OverridesChangeTheConfiguration) {
  std::string yaml;
  const auto base = load_router_config(demo_router(), {});
  ASSERT_EQ(base.policies.at("by_length").rules.at(0).when.min_prompt_tokens.value(), 32);
  const auto changed = load_router_config(demo_router(), {{"policies.by_length.rules.0.when.min_prompt_tokens", "7"},
                                                          {"tiers.1.price_per_million.output", "0.5"}}, &yaml);
  EXPECT_EQ(changed.policies.at("by_length").rules.at(0).when.min_prompt_tokens.value(), 7);
  EXPECT_DOUBLE_EQ(changed.tiers.at(1).price_output, 0.5);
  EXPECT_NE(yaml.find("min_prompt_tokens: 7"), std::string::npos) << yaml;
  // In-process model paths still resolve against the configuration's folder.
  EXPECT_TRUE(fs::exists(changed.tiers.at(0).deployments.at(0).model_path)) << changed.tiers.at(0).deployments.at(0).model_path;
  EXPECT_THROW(load_router_config(demo_router(), {{"policies.nope.threshold", "1"}}), slm::Error);
  EXPECT_THROW(load_router_config(demo_router(), {{"tiers.9.name", "x"}}), slm::Error);
  EXPECT_THROW(load_router_config(demo_router(), {{"policies.by_length.rules.0.tier", "medium"}}), slm::Error);  // validated

  RouterEvalOptions o;
  o.sweeps = {"policies.by_length.rules.0.when.min_prompt_tokens=1,256"};
  const auto points = sweep_points(o, base);
  ASSERT_EQ(points.size(), 5u);  // auto, two sweep values, two tiers
  EXPECT_EQ(points[0].route, "auto");
  EXPECT_EQ(points[1].label, "min_prompt_tokens=1");
  EXPECT_EQ(points[2].overrides.at(0).second, "256");
  EXPECT_EQ(points[3].route, "small");
  EXPECT_EQ(points[4].route, "workhorse");
  o.sweeps = {"no-equals-sign"};
  EXPECT_THROW(sweep_points(o, base), slm::Error);
}

TEST(RouterEval, SweepOnTheDemoRouterEndToEnd) {
  const fs::path dir = fs::temp_directory_path() / ("slm_router_eval_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string data = std::string(SLM_TEST_DATA) + "/eval/router_custom.jsonl";
  const std::string args = "--task custom --data " + data + " --router " + demo_router() +
                           " --sweep policies.by_length.rules.0.when.min_prompt_tokens=1,256 --max-tokens 3 -C 3"
                           " --cache " + (dir / "cache.sqlite").string() + " --report-dir " + (dir / "report").string();
  const CliRun r = run(args);
  ASSERT_EQ(r.rc, 0) << r.out;
  // The table names every configuration.
  for (const char* label : {"route auto", "min_prompt_tokens=1", "min_prompt_tokens=256", "tier small", "tier workhorse"}) {
    EXPECT_NE(r.out.find(label), std::string::npos) << r.out;
  }
  const json summary = json::parse(slurp(dir / "report" / "router_eval.json"));
  ASSERT_EQ(summary.at("points").size(), 5u);
  EXPECT_EQ(summary.at("quality_metric"), "score,none");
  for (const auto& p : summary.at("points")) {
    EXPECT_EQ(p.at("routing").at("requests"), 6) << p.dump();
    double total = 0;
    for (const auto& [tier, s] : p.at("routing").at("tier_share").items()) total += s.get<double>();
    EXPECT_NEAR(total, 1.0, 1e-12);
    EXPECT_GE(p.at("quality").get<double>(), 0.0);
    EXPECT_LE(p.at("quality").get<double>(), 1.0);
    EXPECT_GT(p.at("routing").at("cost_usd").get<double>(), 0.0);
  }
  // Each tier alone; a threshold of 1 sends everything to the workhorse, 256 nothing; as configured
  // (32) the two long prompts go there.
  EXPECT_DOUBLE_EQ(share(point(summary, "tier small"), "small"), 1.0);
  EXPECT_DOUBLE_EQ(share(point(summary, "tier workhorse"), "workhorse"), 1.0);
  EXPECT_DOUBLE_EQ(share(point(summary, "min_prompt_tokens=1"), "workhorse"), 1.0);
  EXPECT_DOUBLE_EQ(share(point(summary, "min_prompt_tokens=256"), "small"), 1.0);
  EXPECT_NEAR(share(point(summary, "route auto"), "workhorse"), 2.0 / 6.0, 1e-12);
  // The workhorse costs ten times as much per token.
  const auto cost = [&](const std::string& label) {
    return point(summary, label).at("routing").at("cost_usd_per_request").get<double>();
  };
  EXPECT_GT(cost("tier workhorse"), 5 * cost("tier small"));
  EXPECT_GT(cost("route auto"), cost("tier small"));
  EXPECT_LT(cost("route auto"), cost("tier workhorse"));
  // Charts and the report.
  const std::string svg = slurp(dir / "report" / "quality_cost.svg");
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  size_t circles = 0;
  for (size_t p = svg.find("<circle"); p != std::string::npos; p = svg.find("<circle", p + 1)) ++circles;
  EXPECT_EQ(circles, 5u);
  const std::string png = slurp(dir / "report" / "quality_cost.png");
  EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  const std::string html = slurp(dir / "report" / "report.html");
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_NE(html.find("data:image/png;base64,iVBORw0KGgo"), std::string::npos);
  EXPECT_EQ(html.find("src=\"http"), std::string::npos);  // self-contained
  EXPECT_NE(html.find("tier workhorse"), std::string::npos);

  // A rerun answers from the cache: nothing generated again, the same numbers.
  const CliRun again = run(args + " -o " + (dir / "again.json").string());
  ASSERT_EQ(again.rc, 0) << again.out;
  EXPECT_NE(again.out.find("route auto: reused 6 of 6 results"), std::string::npos) << again.out;
  const json second = json::parse(slurp(dir / "again.json"));
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(second.at("points")[i].at("quality"), summary.at("points")[i].at("quality"));
    EXPECT_EQ(second.at("points")[i].at("routing").at("tier_share"), summary.at("points")[i].at("routing").at("tier_share"));
    EXPECT_EQ(second.at("points")[i].at("cache").at("computed"), 0);
  }
  fs::remove_all(dir);
}

TEST(RouterEval, ThroughAnEndpointThatIsARouter) {
  // `slm serve --config`: the tiers that answered and their cost come from the router's stats.
  slm_test::ServerProcess server({"--config", demo_router()});
  const std::string url = "http://127.0.0.1:" + std::to_string(server.port()) + "/v1";
  const fs::path out = fs::temp_directory_path() / ("slm_router_endpoint_" + std::to_string(::getpid()) + ".json");
  const std::string data = std::string(SLM_TEST_DATA) + "/eval/router_custom.jsonl";
  const CliRun r = run("--task custom --data " + data + " --endpoint " + url + " --endpoint-model auto --max-tokens 3 -o " +
                       out.string());
  ASSERT_EQ(r.rc, 0) << r.out;
  const json report = json::parse(slurp(out));
  fs::remove(out);
  ASSERT_TRUE(report.contains("routing")) << report.dump();
  const json& routing = report.at("routing");
  EXPECT_EQ(routing.at("requests"), 6);
  EXPECT_EQ(routing.at("tiers").at("workhorse"), 2);  // the two long prompts
  EXPECT_EQ(routing.at("tiers").at("small"), 4);
  EXPECT_GT(routing.at("cost_usd").get<double>(), 0.0);
  // The judge metric through an endpoint: the router's small tier grades the answers.
  const fs::path judged = fs::temp_directory_path() / ("slm_router_judge_" + std::to_string(::getpid()) + ".jsonl");
  std::ofstream(judged) << R"({"input": "Capital of France?", "expected": "Paris", "metric": "judge"})" "\n";
  const CliRun j = run("--task custom --data " + judged.string() + " --endpoint " + url + " --endpoint-model small --judge-endpoint " +
                       url + " --judge-endpoint-model small --max-tokens 3 -o " + out.string());
  ASSERT_EQ(j.rc, 0) << j.out;
  const json judge_report = json::parse(slurp(out));
  fs::remove(out);
  fs::remove(judged);
  EXPECT_TRUE(judge_report.at("results").at("custom").contains("judge,none")) << judge_report.dump();
  EXPECT_EQ(judge_report.at("samples")[0].at("judge_answers").size(), 1u);
  EXPECT_EQ(judge_report.at("configs").at("custom").at("judge").at("model").at("backend"), "endpoint");
  // A plain model server has no router stats: no routing in the report.
  EXPECT_TRUE(fetch_router_stats("http://127.0.0.1:1/v1", "").is_null());
  const json before = {{"tiers", {{"small", {{"requests", 2}, {"cost_usd", 1.0}}}}}};
  const json after = {{"tiers", {{"small", {{"requests", 5}, {"cost_usd", 4.0}}}, {"big", {{"requests", 1}, {"cost_usd", 2.0}}}}}};
  const json diff = routing_from_stats(before, after);
  EXPECT_EQ(diff.at("requests"), 4);
  EXPECT_DOUBLE_EQ(diff.at("tier_share").at("small").get<double>(), 0.75);
  EXPECT_DOUBLE_EQ(diff.at("cost_usd_per_request").get<double>(), 5.0 / 4);
}

TEST(RouterEval, CascadeThresholdSweep) {
  // The cascade keeps the small tier's answer when its mean log-probability reaches the threshold:
  // at -100 always, at 0 never (every request escalates and pays for both tiers).
  const fs::path out = fs::temp_directory_path() / ("slm_router_cascade_" + std::to_string(::getpid()) + ".json");
  const std::string config = std::string(SLM_TEST_DATA) + "/eval/router_cascade.yaml";
  const std::string data = std::string(SLM_TEST_DATA) + "/eval/router_custom.jsonl";
  const CliRun r = run("--task custom --data " + data + " --router " + config +
                       " --sweep policies.cascade.min_mean_logprob=-100,-2,0 --no-baselines --max-tokens 3 -o " + out.string());
  ASSERT_EQ(r.rc, 0) << r.out;
  const json summary = json::parse(slurp(out));
  fs::remove(out);
  ASSERT_EQ(summary.at("points").size(), 4u);  // as configured, then the three thresholds
  const json& keep = point(summary, "min_mean_logprob=-100");
  const json& middle = point(summary, "min_mean_logprob=-2");
  const json& never = point(summary, "min_mean_logprob=0");
  EXPECT_DOUBLE_EQ(share(keep, "small"), 1.0);
  EXPECT_EQ(keep.at("routing").at("escalations"), 0);
  EXPECT_DOUBLE_EQ(share(never, "workhorse"), 1.0);
  EXPECT_EQ(never.at("routing").at("escalations"), 6);
  EXPECT_GE(share(middle, "workhorse"), 0.0);
  EXPECT_LE(share(middle, "workhorse"), 1.0);
  EXPECT_EQ(middle.at("routing").at("escalations").get<double>(), share(middle, "workhorse") * 6);
  const auto cost = [](const json& p) { return p.at("routing").at("cost_usd_per_request").get<double>(); };
  EXPECT_LE(cost(keep), cost(middle));
  EXPECT_LE(cost(middle), cost(never));
  EXPECT_GT(cost(never), 5 * cost(keep));
}
