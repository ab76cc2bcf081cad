// `slm eval` end to end on the demo model (in process and through `slm serve`): the report's
// structure, lm-eval's metric names, numbers computed for every item.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "../common/command.hpp"
#include "../server/server_process.hpp"
#include "slm/eval/cache.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

using CliRun = slm_test::CommandResult;

CliRun run(const std::string& args) { return slm_test::run_command(std::string(SLM_EXE) + " eval -q " + args + " 2>&1"); }

std::string data(const std::string& name) { return std::string(SLM_TEST_DATA) + "/eval/" + name; }

json eval_report(const std::string& task, const std::string& file, const std::string& extra) {
  const fs::path out = fs::temp_directory_path() / ("slm_eval_cli_" + std::to_string(::getpid()) + "_" + task + ".json");
  const CliRun r = run("--task " + task + " --data " + data(file) + " -o " + out.string() + " " + extra);
  EXPECT_EQ(r.rc, 0) << r.out;
  std::ifstream in(out);
  json report = json::parse(in, nullptr, false);
  fs::remove(out);
  EXPECT_FALSE(report.is_discarded()) << r.out;
  return report;
}

void expect_metric(const json& results, const std::string& task, const std::string& metric, const std::string& filter) {
  ASSERT_TRUE(results.contains(task)) << results.dump();
  const json& r = results.at(task);
  ASSERT_TRUE(r.contains(metric + "," + filter)) << r.dump();
  const double v = r.at(metric + "," + filter).get<double>();
  EXPECT_GE(v, 0.0);
  EXPECT_LE(v, 1.0);
  EXPECT_TRUE(r.contains(metric + "_stderr," + filter));
}

}  // namespace

TEST(EvalCli, ArcChallengeOnTheDemoModel) {
  const json report = eval_report("arc_challenge", "arc_challenge.jsonl", "");
  expect_metric(report.at("results"), "arc_challenge", "acc", "none");
  expect_metric(report.at("results"), "arc_challenge", "acc_norm", "none");
  ASSERT_EQ(report.at("samples").size(), 4u);
  for (const auto& s : report.at("samples")) {
    const size_t n_choices = s.at("resps").size();
    EXPECT_GE(n_choices, 3u);
    for (const auto& choice : s.at("resps")) {
      EXPECT_TRUE(choice.at(0).is_number());
      EXPECT_LT(choice.at(0).get<double>(), 0.0);  // a log-likelihood
    }
  }
  EXPECT_EQ(report.at("n-samples").at("arc_challenge").at("effective"), 4);
}

TEST(EvalCli, Gsm8kAndCustomGenerate) {
  const json g = eval_report("gsm8k", "gsm8k.jsonl", "--limit 2 --shots 1 --max-tokens 12 -C 2");
  expect_metric(g.at("results"), "gsm8k", "exact_match", "strict-match");
  expect_metric(g.at("results"), "gsm8k", "exact_match", "flexible-extract");
  ASSERT_EQ(g.at("samples").size(), 2u);
  EXPECT_TRUE(g.at("samples")[0].at("resps")[0].is_string());
  const json c = eval_report("custom", "custom.jsonl", "--max-tokens 8");
  expect_metric(c.at("results"), "custom", "score", "none");
  EXPECT_EQ(c.at("samples").size(), 5u);
}

TEST(EvalCli, HumanevalRunsGeneratedCodeInTheSandbox) {
  const json report = eval_report("humaneval", "humaneval.jsonl", "--limit 2 --max-tokens 16 --timeout 5");
  expect_metric(report.at("results"), "humaneval", "pass@1", "create_test");
  EXPECT_TRUE(report.at("configs").at("humaneval").at("sandbox").contains("network_isolated"));
  for (const auto& s : report.at("samples")) EXPECT_TRUE(s.contains("exit_code"));
}

TEST(EvalCli, TableAndErrors) {
  const CliRun ok = run("--task arc_challenge --data " + data("arc_challenge.jsonl") + " --limit 2");
  EXPECT_EQ(ok.rc, 0) << ok.out;
  EXPECT_NE(ok.out.find("acc_norm,none"), std::string::npos) << ok.out;
  const CliRun bad_task = run("--task hellaswag --data " + data("arc_challenge.jsonl"));
  EXPECT_EQ(bad_task.rc, 2) << bad_task.out;
  const CliRun missing = run("--task gsm8k --data " + data("nope.jsonl"));
  EXPECT_NE(missing.rc, 0);
  EXPECT_NE(missing.out.find("nope.jsonl"), std::string::npos) << missing.out;
}

TEST(EvalCli, ThroughTheServer) {
  slm_test::ServerProcess server({slm_test::demo_model()});
  const std::string url = "http://127.0.0.1:" + std::to_string(server.port()) + "/v1";
  // Log-likelihoods through completions (echo + logprobs) agree with the in-process ones.
  const json remote = eval_report("arc_challenge", "arc_challenge.jsonl", "--endpoint " + url);
  const json local = eval_report("arc_challenge", "arc_challenge.jsonl", "");
  expect_metric(remote.at("results"), "arc_challenge", "acc", "none");
  // Usage: one request per choice, all answered by the served model.
  ASSERT_TRUE(remote.contains("usage")) << remote.dump();
  EXPECT_EQ(remote.at("usage").at("requests"), 16);  // 4 + 4 + 3 + 5 choices
  EXPECT_EQ(remote.at("usage").at("served_by").at("demo-q8_0"), 16);
  EXPECT_GT(remote.at("usage").at("prompt_tokens").get<int64_t>(), 16 * 5);
  EXPECT_FALSE(local.contains("usage"));
  ASSERT_EQ(remote.at("samples").size(), local.at("samples").size());
  for (size_t i = 0; i < local.at("samples").size(); ++i) {
    const auto& a = local.at("samples")[i].at("resps");
    const auto& b = remote.at("samples")[i].at("resps");
    ASSERT_EQ(a.size(), b.size());
    for (size_t c = 0; c < a.size(); ++c) {
      EXPECT_NEAR(a[c][0].get<double>(), b[c][0].get<double>(), 0.05) << "item " << i << " choice " << c;
    }
  }
  const json gen = eval_report("gsm8k", "gsm8k.jsonl", "--endpoint " + url + " --completions --limit 2 --shots 1 --max-tokens 8");
  expect_metric(gen.at("results"), "gsm8k", "exact_match", "flexible-extract");
}

TEST(EvalCli, ResumedRunReusesTheCacheAndEndsTheSame) {
  const fs::path cache = fs::temp_directory_path() / ("slm_eval_cli_cache_" + std::to_string(::getpid()) + ".sqlite");
  fs::remove(cache);
  const std::string common = "--task custom --data " + data("custom.jsonl") + " --max-tokens 6";
  const json fresh = eval_report("custom", "custom.jsonl", "--max-tokens 6");
  // Interrupted after two items (--limit), then the whole file.
  const CliRun partial = run(common + " --limit 2 --cache " + cache.string());
  ASSERT_EQ(partial.rc, 0) << partial.out;
  EXPECT_NE(partial.out.find("reused 0 of 2 results"), std::string::npos) << partial.out;
  const CliRun resumed = run(common + " --cache " + cache.string());
  ASSERT_EQ(resumed.rc, 0) << resumed.out;
  EXPECT_NE(resumed.out.find("reused 2 of 5 results"), std::string::npos) << resumed.out;
  const json report = eval_report("custom", "custom.jsonl", "--max-tokens 6 --cache " + cache.string());
  EXPECT_EQ(report.at("cache").at("reused"), 5);
  EXPECT_EQ(report.at("results"), fresh.at("results"));
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ(report.at("samples")[i].at("resps"), fresh.at("samples")[i].at("resps"));
  fs::remove(cache);
}

TEST(EvalCli, PassAtKAndJudgeOnTheDemoModel) {
  const json he = eval_report("humaneval", "humaneval.jsonl", "--limit 1 --samples 2 --pass-k 1,2 --max-tokens 8 --timeout 5");
  expect_metric(he.at("results"), "humaneval", "pass@1", "create_test");
  expect_metric(he.at("results"), "humaneval", "pass@2", "create_test");
  EXPECT_EQ(he.at("samples")[0].at("resps").size(), 2u);
  EXPECT_EQ(he.at("configs").at("humaneval").at("generation_kwargs").at("temperature"), 0.8);
  // The demo model grades its own answers; whatever it says, every grade is parsed or counted.
  const fs::path file = fs::temp_directory_path() / ("slm_eval_judge_" + std::to_string(::getpid()) + ".jsonl");
  std::ofstream(file) << R"({"input": "Capital of France?", "expected": "Paris", "metric": "judge"})" "\n"
                      << R"({"input": "Say hi", "expected": "hi", "metric": {"type": "judge", "scale": [0, 10]}})" "\n";
  const fs::path out = fs::temp_directory_path() / ("slm_eval_judge_" + std::to_string(::getpid()) + ".json");
  const CliRun r = run("--task custom --data " + file.string() + " --max-tokens 6 --judge-model " + std::string(SLM_SOURCE_DIR) +
                       "/models/demo/demo-q8_0.gguf --judge-samples 2 -o " +
                       out.string());
  ASSERT_EQ(r.rc, 0) << r.out;
  std::ifstream in(out);
  const json report = json::parse(in);
  expect_metric(report.at("results"), "custom", "judge", "none");
  expect_metric(report.at("results"), "custom", "judge_agreement", "none");
  const json& judge = report.at("configs").at("custom").at("judge");
  EXPECT_EQ(judge.at("samples"), 2);
  EXPECT_LE(judge.at("unparsed").get<int64_t>(), 2);
  for (const auto& s : report.at("samples")) EXPECT_EQ(s.at("judge_answers").size(), 2u);
  const CliRun no_judge = run("--task custom --data " + file.string() + " --max-tokens 4");
  EXPECT_NE(no_judge.rc, 0);
  EXPECT_NE(no_judge.out.find("judge"), std::string::npos) << no_judge.out;
  fs::remove(file);
  fs::remove(out);
}

TEST(EvalCli, KilledRunResumesFromTheCache) {
  const fs::path dir = fs::temp_directory_path() / ("slm_eval_killed_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string cache = (dir / "cache.sqlite").string();
  const std::string data_file = std::string(SLM_TEST_DATA) + "/eval/router_custom.jsonl";
  // One sequence at a time, so results arrive one by one; killed (SIGKILL) once the first is stored.
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const int null_fd = ::open("/dev/null", O_WRONLY);
    ::dup2(null_fd, 1);
    ::dup2(null_fd, 2);
    ::execl(SLM_EXE, SLM_EXE, "eval", "-q", "--task", "custom", "--data", data_file.c_str(), "--max-tokens", "12", "-C", "1",
            "--cache", cache.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  int64_t stored = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (stored == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (fs::exists(cache)) stored = slm::eval::ResultCache(cache).size();
  }
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  const int64_t at_kill = slm::eval::ResultCache(cache).size();
  ASSERT_GE(at_kill, 1);
  GTEST_LOG_(INFO) << at_kill << " of 6 results stored when the run was killed";
  const json resumed = eval_report("custom", "router_custom.jsonl", "--max-tokens 12 -C 1 --cache " + cache);
  EXPECT_EQ(resumed.at("cache").at("reused"), at_kill);
  EXPECT_EQ(resumed.at("cache").at("computed"), 6 - at_kill);
  const json fresh = eval_report("custom", "router_custom.jsonl", "--max-tokens 12 -C 1");
  EXPECT_EQ(resumed.at("results"), fresh.at("results"));
  for (size_t i = 0; i < 6; ++i) EXPECT_EQ(resumed.at("samples")[i].at("resps"), fresh.at("samples")[i].at("resps")) << i;
  fs::remove_all(dir);
}
