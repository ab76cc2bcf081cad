// Task pipelines with a scripted backend: prompts as lm-eval builds them and metrics computed from
// fixed responses and log-likelihoods.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "slm/eval/tasks.hpp"
#include "slm/util/error.hpp"

using namespace slm::eval;
using nlohmann::json;

namespace {

class ScriptedBackend final : public Backend {
 public:
  std::map<std::string, double> ll_by_continuation;  // continuation -> log-likelihood
  std::vector<std::string> outputs;                  // one per generation, in order
  std::vector<LoglikelihoodRequest> seen_ll;
  std::vector<GenerationSpec> seen_gen;

  std::vector<LoglikelihoodResult> loglikelihood(const std::vector<LoglikelihoodRequest>& requests,
                                                 const Progress& progress, const OnScored&) override {
    std::vector<LoglikelihoodResult> out;
    for (const auto& r : requests) {
      seen_ll.push_back(r);
      out.push_back({ll_by_continuation.at(r.continuation), false, 1});
      if (progress) progress(out.size());
    }
    return out;
  }
  std::vector<Generation> generate(const std::vector<GenerationSpec>& specs, const Progress&, const OnGenerated&) override {
    seen_gen = specs;
    std::vector<Generation> out;
    for (size_t i = 0; i < specs.size(); ++i) out.push_back({outputs.at(i), nullptr});
    return out;
  }
  std::string name() const override { return "scripted"; }
};

std::string data(const std::string& name) { return std::string(SLM_TEST_DATA) + "/eval/" + name; }

std::string write_temp(const std::string& name, const std::string& text) {
  const auto path = std::filesystem::temp_directory_path() / ("slm_eval_" + std::to_string(::getpid()) + "_" + name);
  std::ofstream(path) << text;
  return path.string();
}

}  // namespace

TEST(Tasks, ArcAccAndAccNormByCharacterLength) {
  // Item 1: " the Sun" (7 chars) -3.5 ; " a rock" (6) -3.0 ; others lower. acc picks "a rock" (wrong),
  // acc_norm: -0.5 vs -0.5 ... choose values so acc_norm differs.
  const std::string path = write_temp("arc.jsonl",
      R"({"id": "x1", "question": "Q1?", "choices": {"text": ["ab", "abcdefgh"], "label": ["A", "B"]}, "answerKey": "B"})" "\n"
      R"({"id": "x2", "question": "Q2?", "choices": {"text": ["yes", "no", "maybe"], "label": ["1", "2", "3"]}, "answerKey": "1"})" "\n");
  ScriptedBackend b;
  // x1: acc: -2 ("ab") beats -4 ("abcdefgh") -> A (wrong); acc_norm: -2/2 = -1 vs -4/8 = -0.5 -> B (right).
  b.ll_by_continuation = {{" ab", -2.0}, {" abcdefgh", -4.0}, {" yes", -1.0}, {" no", -3.0}, {" maybe", -5.0}};
  TaskOptions o;
  o.task = TaskKind::arc_challenge;
  o.data_path = path;
  const json report = run_task(b, o);
  ASSERT_EQ(b.seen_ll.size(), 5u);
  EXPECT_EQ(b.seen_ll[0].context, "Question: Q1?\nAnswer:");
  EXPECT_EQ(b.seen_ll[0].continuation, " ab");
  const json& r = report.at("results").at("arc_challenge");
  EXPECT_DOUBLE_EQ(r.at("acc,none").get<double>(), 0.5);       // x1 wrong, x2 right
  EXPECT_DOUBLE_EQ(r.at("acc_norm,none").get<double>(), 1.0);  // both right
  EXPECT_NEAR(r.at("acc_stderr,none").get<double>(), 0.5, 1e-12);  // sd sqrt(0.5) / sqrt(2)
  EXPECT_DOUBLE_EQ(r.at("acc_norm_stderr,none").get<double>(), 0.0);
  ASSERT_EQ(report.at("samples").size(), 2u);
  EXPECT_EQ(report.at("samples")[0].at("target"), 1);
  std::filesystem::remove(path);
}

TEST(Tasks, Gsm8kPromptsAndBothFilters) {
  ScriptedBackend b;
  b.outputs = {" 12 + 15 = 27\n#### 27", " Tom keeps 27 marbles.", " #### $21", " 1250 - 375 = 875", " It is 5 degrees",
               " 180."};
  TaskOptions o;
  o.task = TaskKind::gsm8k;
  o.data_path = data("gsm8k.jsonl");
  o.shots = 2;
  const json report = run_task(b, o);
  ASSERT_EQ(b.seen_gen.size(), 6u);
  const auto& first = b.seen_gen[0];
  // Two examples "Question: ...\nAnswer: <answer>" then the item, joined by blank lines.
  EXPECT_EQ(first.prompt.rfind("Question: A baker makes 12 loaves"), first.prompt.size() - std::string(
      "Question: A baker makes 12 loaves in the morning and 15 loaves in the afternoon. How many loaves does the baker make in total?\nAnswer:").size());
  size_t blocks = 0;
  for (size_t p = first.prompt.find("\n\n"); p != std::string::npos; p = first.prompt.find("\n\n", p + 1)) ++blocks;
  EXPECT_EQ(blocks, 2u);
  EXPECT_NE(first.prompt.find("#### "), std::string::npos);
  EXPECT_EQ(first.until, (std::vector<std::string>{"Question:", "</s>", "<|im_end|>"}));
  const json& r = report.at("results").at("gsm8k");
  // strict: only item 1 ("#### 27"); "#### $21" is not strict.
  EXPECT_NEAR(r.at("exact_match,strict-match").get<double>(), 1.0 / 6, 1e-12);
  // flexible: 27 (1), 27 (2), $21 (3), 875 (4), 5 vs -5 (miss), "180." (6) -> 5/6.
  EXPECT_NEAR(r.at("exact_match,flexible-extract").get<double>(), 5.0 / 6, 1e-12);
  EXPECT_TRUE(r.at("exact_match_stderr,flexible-extract").is_number());
  EXPECT_EQ(report.at("samples")[2].at("filtered_resps").at("strict-match"), "[invalid]");
}

TEST(Tasks, Gsm8kCotExemplarsAndAnswer) {
  EXPECT_EQ(gsm8k_cot_target("Tom has 40 - 13 = <<40-13=27>>27 marbles left.\nHe keeps them all.\n#### 27"),
            "Tom has 40 - 13 = 27 marbles left. He keeps them all. The answer is 27.");
  ScriptedBackend b;
  b.outputs = {" 12 + 15 = 27. The answer is 27.", " The answer is 26."};
  TaskOptions o;
  o.task = TaskKind::gsm8k_cot;
  o.data_path = data("gsm8k.jsonl");
  o.limit = 2;
  const json report = run_task(b, o);
  ASSERT_EQ(b.seen_gen.size(), 2u);
  EXPECT_EQ(b.seen_gen[0].until, (std::vector<std::string>{"Q:", "</s>", "<|im_end|>"}));
  EXPECT_NE(b.seen_gen[0].prompt.find("The answer is "), std::string::npos);
  EXPECT_EQ(b.seen_gen[0].prompt.substr(0, 3), "Q: ");
  EXPECT_DOUBLE_EQ(report.at("results").at("gsm8k_cot").at("exact_match,strict-match").get<double>(), 0.5);
  EXPECT_EQ(report.at("samples")[0].at("target"), "27");
}

TEST(Tasks, MmluProFewShotPerCategory) {
  EXPECT_EQ(mmlu_pro_example(json{{"question", "Q?"}, {"options", {"x", "y"}}, {"cot_content", "A: Let's think step by step. y. The answer is (B)."}}, true),
            "Question:\nQ?\nOptions:\nA. x\nB. y\nAnswer: Let's think step by step. y. The answer is (B).\n\n");
  ScriptedBackend b;
  b.outputs = {"7 x 8 = 56, so the answer is (B).", "Answer: D", "the answer is (A)", "the answer is (E)", "I do not know"};
  TaskOptions o;
  o.task = TaskKind::mmlu_pro;
  o.data_path = data("mmlu_pro.jsonl");
  const json report = run_task(b, o);
  ASSERT_EQ(b.seen_gen.size(), 5u);
  const std::string& p0 = b.seen_gen[0].prompt;
  EXPECT_EQ(p0.find(mmlu_pro_description("math")), 0u);
  // Item 0 (math) gets the other two math items, never itself nor biology ones.
  EXPECT_EQ(p0.find("What is 7 times 8?\nOptions"), p0.rfind("What is 7 times 8?\nOptions"));
  EXPECT_NE(p0.find("Which number is prime?"), std::string::npos);
  EXPECT_EQ(p0.find("Which organ"), std::string::npos);
  EXPECT_EQ(p0.substr(p0.size() - 33), "Answer: Let's think step by step.");
  const json& r = report.at("results");
  // Right: items 0 (B) and 3 (E); "Answer: D" only counts with the fallback.
  EXPECT_DOUBLE_EQ(r.at("mmlu_pro").at("exact_match,custom-extract").get<double>(), 0.4);
  EXPECT_DOUBLE_EQ(r.at("mmlu_pro").at("exact_match,custom-extract-fallback").get<double>(), 0.6);
  EXPECT_NEAR(r.at("mmlu_pro_math").at("exact_match,custom-extract").get<double>(), 1.0 / 3, 1e-12);
  EXPECT_DOUBLE_EQ(r.at("mmlu_pro_biology").at("exact_match,custom-extract").get<double>(), 0.5);
}

TEST(Tasks, CustomMetricsFromTheFile) {
  ScriptedBackend b;
  b.outputs = {" Paris", " 3.1416", " Hello!", " {\"city\": \"Rome\"}", " yes"};
  TaskOptions o;
  o.task = TaskKind::custom;
  o.data_path = data("custom.jsonl");
  const json report = run_task(b, o);
  const json& r = report.at("results").at("custom");
  EXPECT_DOUBLE_EQ(r.at("score,none").get<double>(), 0.8);
  EXPECT_DOUBLE_EQ(r.at("label,none").get<double>(), 0.0);
  EXPECT_DOUBLE_EQ(r.at("numeric,none").get<double>(), 1.0);
}

TEST(Tasks, FewShotSamplingNeverPicksTheItem) {
  std::mt19937_64 rng(1234);
  for (int trial = 0; trial < 50; ++trial) {
    const auto picked = sample_fewshot(rng, 6, 5, 3);
    EXPECT_EQ(picked.size(), 5u);
    for (size_t p : picked) EXPECT_NE(p, 3u);
  }
  EXPECT_EQ(sample_fewshot(rng, 3, 5, 0).size(), 2u);
}

TEST(Tasks, BadInputsFail) {
  ScriptedBackend b;
  TaskOptions o;
  o.task = TaskKind::gsm8k;
  o.data_path = data("does_not_exist.jsonl");
  EXPECT_THROW(run_task(b, o), slm::Error);
  o.data_path = write_temp("bad.jsonl", "{\"question\": 1}\n");
  b.outputs = {"x"};
  EXPECT_THROW(run_task(b, o), slm::Error);
  std::filesystem::remove(o.data_path);
  EXPECT_THROW(parse_task("hellaswag"), slm::Error);
}

TEST(Tasks, HumanevalPassAtKFromSeveralSamples) {
  // Two problems, four samples each at temperature: problem 0 right in 3 of 4, problem 1 in 1 of 4.
  ScriptedBackend b;
  b.outputs = {"    return a + b\n", "    return a - b\n", "    return b + a\n", "    return a + b\n",
               "    return text\n", "    return ' '.join(reversed(text.split()))\n", "    return ''\n",
               "    while True:\n        pass\n"};
  TaskOptions o;
  o.task = TaskKind::humaneval;
  o.data_path = data("humaneval.jsonl");
  o.limit = 2;
  o.samples = 4;
  o.pass_k = {1, 2, 4};
  o.sandbox.timeout_s = 1;
  o.sandbox.cpu_s = 2;
  const json report = run_task(b, o);
  ASSERT_EQ(b.seen_gen.size(), 8u);
  std::set<uint64_t> seeds;
  for (const auto& s : b.seen_gen) {
    EXPECT_DOUBLE_EQ(s.temperature, 0.8);  // the default for several samples
    seeds.insert(s.seed);
  }
  EXPECT_EQ(seeds.size(), 4u);  // a seed per sample, the same across problems
  const json& r = report.at("results").at("humaneval");
  EXPECT_DOUBLE_EQ(r.at("pass@1,create_test").get<double>(), (0.75 + 0.25) / 2);
  // pass@2: 1 - C(1,2)/C(4,2) = 1 for problem 0; 1 - C(3,2)/C(4,2) = 0.5 for problem 1.
  EXPECT_DOUBLE_EQ(r.at("pass@2,create_test").get<double>(), 0.75);
  EXPECT_DOUBLE_EQ(r.at("pass@4,create_test").get<double>(), 1.0);
  EXPECT_TRUE(r.at("pass@2_stderr,create_test").is_number());
  const json& s1 = report.at("samples")[1];
  EXPECT_EQ(s1.at("correct"), 1);
  EXPECT_EQ(s1.at("timed_out")[3], true);  // the runaway sample was killed
  EXPECT_EQ(report.at("configs").at("humaneval").at("repeats"), 4);
  o.pass_k = {5};
  EXPECT_THROW(run_task(b, o), slm::Error);  // k larger than the samples
}

TEST(Tasks, JudgeMetricMeanAndAgreement) {
  const std::string path = write_temp("judge.jsonl",
      R"({"input": "Capital of France?", "expected": "Paris", "metric": "judge", "reference_score": 5})" "\n"
      R"({"input": "2+2?", "expected": "4", "metric": {"type": "judge", "scale": [0, 10]}, "reference_score": 3})" "\n"
      R"({"input": "Say hi", "expected": "hi", "metric": "exact_match"})" "\n");
  ScriptedBackend model;
  model.outputs = {"Paris.", "five", "hi"};
  ScriptedBackend judge;
  // Three samples per judged answer: item 0 scores 5, 5, 4 (1-5 scale); item 1: "Score: 2", junk, 2 (0-10).
  judge.outputs = {"5", "Score: 5", "4 - mostly right", "Score: 2", "no idea", "2"};
  TaskOptions o;
  o.task = TaskKind::custom;
  o.data_path = path;
  o.judge = &judge;
  o.judge_samples = 3;
  const json report = run_task(model, o);
  std::filesystem::remove(path);
  ASSERT_EQ(judge.seen_gen.size(), 6u);
  EXPECT_NE(judge.seen_gen[0].prompt.find("Paris."), std::string::npos);  // the answer graded
  EXPECT_NE(judge.seen_gen[3].prompt.find("0 to 10"), std::string::npos);
  EXPECT_GT(judge.seen_gen[1].temperature, 0.0);
  const json& r = report.at("results").at("custom");
  // Item 0: mean 14/3 on 1-5 -> (14/3 - 1) / 4; item 1: mean 2 on 0-10 -> 0.2.
  const double s0 = (14.0 / 3.0 - 1.0) / 4.0, s1 = 0.2;
  EXPECT_NEAR(r.at("judge,none").get<double>(), (s0 + s1) / 2, 1e-12);
  EXPECT_NEAR(r.at("score,none").get<double>(), (s0 + s1 + 1.0) / 3, 1e-12);
  EXPECT_NEAR(r.at("judge_raw,none").get<double>(), (14.0 / 3.0 + 2.0) / 2, 1e-12);
  // Agreement: 2 of 3 samples equal the most common score on both items.
  EXPECT_NEAR(r.at("judge_agreement,none").get<double>(), 2.0 / 3.0, 1e-12);
  // Against the human scores: 4.67 is within 0.5 of 5; 2 is not within 0.5 of 3.
  EXPECT_DOUBLE_EQ(r.at("judge_reference_agreement,none").get<double>(), 0.5);
  EXPECT_EQ(report.at("configs").at("custom").at("judge").at("unparsed"), 0);
  // Without a judge the metric cannot be computed.
  o.judge = nullptr;
  const std::string again = write_temp("judge2.jsonl", R"({"input": "x", "expected": "y", "metric": "judge"})" "\n");
  o.data_path = again;
  model.outputs = {"y"};
  EXPECT_THROW(run_task(model, o), slm::Error);
  std::filesystem::remove(again);
}
