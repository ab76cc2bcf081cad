// Resumable runs: results stored per item in SQLite; an interrupted run resumes from what finished,
// reuses nothing of another model, data file or generation setting, and ends with the same numbers.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "slm/eval/cache.hpp"
#include "slm/eval/tasks.hpp"
#include "slm/util/error.hpp"

using namespace slm::eval;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// Answers each prompt with a text computed from it (a hash), so that numbers depend on the answers;
// optionally fails after `fail_after` answers, as an interrupted run would.
class CountingBackend final : public Backend {
 public:
  std::string id = "model-a";
  int64_t fail_after = -1;
  int64_t answered = 0;
  std::vector<std::string> asked;  // prompts generated

  std::vector<LoglikelihoodResult> loglikelihood(const std::vector<LoglikelihoodRequest>& requests, const Progress& progress,
                                                 const OnScored& each) override {
    std::vector<LoglikelihoodResult> out;
    for (const auto& r : requests) {
      if (fail_after >= 0 && answered >= fail_after) slm::fail(slm::ErrorKind::io, "connection lost");
      LoglikelihoodResult res{-double(std::hash<std::string>{}(r.continuation) % 1000) / 100.0 - 0.1, false, 1};
      out.push_back(res);
      ++answered;
      if (each) each(out.size() - 1, res);
      if (progress) progress(out.size());
    }
    return out;
  }
  std::vector<Generation> generate(const std::vector<GenerationSpec>& specs, const Progress& progress,
                                   const OnGenerated& each) override {
    std::vector<Generation> out;
    for (const auto& s : specs) {
      if (fail_after >= 0 && answered >= fail_after) slm::fail(slm::ErrorKind::io, "connection lost");
      asked.push_back(s.prompt);
      // Right for every other prompt: "Paris", "3.14", "hello", {"city": "Rome"}, "no" when the hash is even.
      const bool right = std::hash<std::string>{}(s.prompt) % 2 == 0 || s.prompt.find("France") != std::string::npos;
      std::string text = right ? "Paris 3.14 hello {\"city\": \"Rome\"} no" : "Lyon 2.5 bye {\"city\": \"Oslo\"} yes";
      out.push_back({text, nullptr});
      ++answered;
      if (each) each(out.size() - 1, out.back());
      if (progress) progress(out.size());
    }
    return out;
  }
  std::string name() const override { return "counting"; }
  json identity() const override { return id; }
};

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("slm_eval_cache_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

std::string data(const std::string& name) { return std::string(SLM_TEST_DATA) + "/eval/" + name; }

TaskOptions custom_task(ResultCache* cache) {
  TaskOptions o;
  o.task = TaskKind::custom;
  o.data_path = data("custom.jsonl");
  o.cache = cache;
  return o;
}

}  // namespace

TEST(ResultCache, StoresAndReadsBack) {
  TempDir dir;
  const std::string path = (dir.path / "c.sqlite").string();
  {
    ResultCache cache(path);
    EXPECT_FALSE(cache.get("k1").has_value());
    cache.put("k1", {{"text", "a"}});
    cache.put("k1", {{"text", "b"}});  // replaced
    cache.put("k2", {{"logprob", -1.5}});
    EXPECT_EQ(cache.size(), 2);
  }
  ResultCache again(path);  // persisted
  ASSERT_TRUE(again.get("k1").has_value());
  EXPECT_EQ(again.get("k1")->at("text"), "b");
  EXPECT_EQ(again.get("k2")->at("logprob"), -1.5);
  EXPECT_THROW(ResultCache((dir.path / "no" / "such" / "dir.sqlite").string()), slm::Error);
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(ResultCache, InterruptedRunResumesToTheSameNumbers) {
  TempDir dir;
  // The reference: one uninterrupted run without a cache.
  CountingBackend plain;
  const json reference = run_task(plain, custom_task(nullptr));
  ASSERT_EQ(plain.asked.size(), 5u);

  ResultCache cache((dir.path / "c.sqlite").string());
  CountingBackend flaky;
  flaky.fail_after = 3;  // the connection drops after three answers
  EXPECT_THROW(run_task(flaky, custom_task(&cache)), slm::Error);
  EXPECT_EQ(cache.size(), 3);  // each stored as it finished

  CountingBackend resumed;
  const json report = run_task(resumed, custom_task(&cache));
  EXPECT_EQ(report.at("cache").at("reused"), 3);
  EXPECT_EQ(report.at("cache").at("computed"), 2);
  EXPECT_EQ(resumed.asked.size(), 2u);  // only what was missing
  EXPECT_EQ(report.at("results"), reference.at("results"));
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(report.at("samples")[i].at("resps"), reference.at("samples")[i].at("resps")) << i;
  }
  // A third run asks nothing.
  CountingBackend third;
  const json again = run_task(third, custom_task(&cache));
  EXPECT_EQ(again.at("cache").at("reused"), 5);
  EXPECT_TRUE(third.asked.empty());
  EXPECT_EQ(again.at("results"), reference.at("results"));
}

TEST(ResultCache, LimitedRunThenTheWholeFile) {
  TempDir dir;
  ResultCache cache((dir.path / "c.sqlite").string());
  CountingBackend first;
  TaskOptions o = custom_task(&cache);
  o.limit = 2;
  run_task(first, o);
  CountingBackend second;
  const json report = run_task(second, custom_task(&cache));
  EXPECT_EQ(report.at("cache").at("reused"), 2);
  EXPECT_EQ(second.asked.size(), 3u);
}

TEST(ResultCache, NothingReusedAcrossModelsDataOrSettings) {
  TempDir dir;
  ResultCache cache((dir.path / "c.sqlite").string());
  CountingBackend a;
  run_task(a, custom_task(&cache));
  // Another model.
  CountingBackend b;
  b.id = "model-b";
  EXPECT_EQ(run_task(b, custom_task(&cache)).at("cache").at("reused"), 0);
  // Another token limit.
  CountingBackend c;
  TaskOptions o = custom_task(&cache);
  o.max_tokens = 7;
  EXPECT_EQ(run_task(c, o).at("cache").at("reused"), 0);
  // The same items in a data file with other bytes (one line changed).
  const fs::path copy = dir.path / "custom.jsonl";
  {
    std::ifstream in(data("custom.jsonl"));
    std::ofstream out(copy);
    std::string line;
    for (int i = 0; std::getline(in, line); ++i) out << (i == 4 ? line + " " : line) << "\n";
  }
  CountingBackend d;
  TaskOptions changed = custom_task(&cache);
  changed.data_path = copy.string();
  EXPECT_EQ(run_task(d, changed).at("cache").at("reused"), 0);
  // Log-likelihood tasks are cached too.
  CountingBackend e;
  TaskOptions arc;
  arc.task = TaskKind::arc_challenge;
  arc.data_path = data("arc_challenge.jsonl");
  arc.cache = &cache;
  const json first = run_task(e, arc);
  CountingBackend f;
  f.fail_after = 0;  // any request would fail
  const json second = run_task(f, arc);
  EXPECT_EQ(second.at("cache").at("computed"), 0);
  EXPECT_EQ(second.at("results"), first.at("results"));
}
