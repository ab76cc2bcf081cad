// Scoring checked against results worked out by hand from lm-evaluation-harness's definitions
// (RegexFilter + take_first, exact_match with regexes_to_ignore / ignore_case / ignore_punctuation).
#include <gtest/gtest.h>

#include <cmath>

#include "slm/eval/metrics.hpp"
#include "slm/util/error.hpp"

using namespace slm::eval;

namespace {
const std::string kTarget27 = "In total 12 + 15 = <<12+15=27>>27.\n#### 27";
double strict(const std::string& response, const std::string& target) {
  return exact_match(gsm8k_strict_extract(response), target, gsm8k_match_options());
}
double flexible(const std::string& response, const std::string& target) {
  return exact_match(gsm8k_flexible_extract(response), target, gsm8k_match_options());
}
}  // namespace

TEST(Gsm8kScoring, StrictMatchReadsTheFirstHashAnswer) {
  EXPECT_EQ(gsm8k_strict_extract("They make 27 loaves.\n#### 27"), "27");
  EXPECT_EQ(strict("They make 27 loaves.\n#### 27", kTarget27), 1.0);
  EXPECT_EQ(gsm8k_strict_extract("#### 5\nlater #### 27"), "5");  // take_first
  EXPECT_EQ(strict("#### 5\nlater #### 27", kTarget27), 0.0);
  EXPECT_EQ(gsm8k_strict_extract("The answer is 27"), kInvalid);
  EXPECT_EQ(strict("The answer is 27", kTarget27), 0.0);
}

TEST(Gsm8kScoring, CommasDollarsAndTrailingPeriods) {
  const std::string target = "1250 - 375 = <<1250-375=875>>875\n#### 1,250";
  EXPECT_EQ(gsm8k_strict_extract("#### 1,250"), "1,250");
  EXPECT_EQ(strict("#### 1,250", target), 1.0);  // ',' removed on both sides
  EXPECT_EQ(strict("#### 1250", target), 1.0);
  EXPECT_EQ(strict("#### 27.", kTarget27), 1.0);  // "\.$" removed
  // "$21" is not a strict answer (the pattern wants a digit or '-' after "#### ") ...
  EXPECT_EQ(gsm8k_strict_extract("#### $21"), kInvalid);
  // ... but flexible-extract takes it and "$" is ignored.
  EXPECT_EQ(gsm8k_flexible_extract("#### $21"), "$21");
  EXPECT_EQ(flexible("#### $21", "#### 21"), 1.0);
  EXPECT_EQ(flexible("She pays $1,234.", "#### 1234"), 1.0);
}

TEST(Gsm8kScoring, FlexibleExtractTakesTheLastNumber) {
  EXPECT_EQ(gsm8k_flexible_extract("12 + 15 = 27 and then 30"), "30");
  EXPECT_EQ(flexible("12 + 15 = 27 and then 30", kTarget27), 0.0);
  EXPECT_EQ(flexible("so it is 27.", kTarget27), 1.0);
  // A single digit only matches the second group.
  EXPECT_EQ(gsm8k_flexible_extract("it is 7"), "7");
  EXPECT_EQ(gsm8k_flexible_extract("$1,234.50 and 7"), "7");
  // Negative numbers.
  EXPECT_EQ(gsm8k_flexible_extract("from 4 it fell to -5"), "-5");
  EXPECT_EQ(flexible("from 4 it fell to -5", "4 - 9 = -5\n#### -5"), 1.0);
  // lm-eval's pattern accepts runs of dots: "27. Done.." ends with "..", which becomes "." (a miss).
  EXPECT_EQ(gsm8k_flexible_extract("I got 27. Done.."), "..");
  EXPECT_EQ(flexible("I got 27. Done..", kTarget27), 0.0);
  EXPECT_EQ(gsm8k_flexible_extract("no numbers here"), kInvalid);
}

TEST(Gsm8kScoring, ChainOfThoughtAnswer) {
  EXPECT_EQ(gsm8k_final_answer("a\nb\n#### 1,250"), "1,250");
  EXPECT_EQ(gsm8k_cot_strict_extract("12 + 15 = 27. The answer is 27."), "27");
  // Python's backtracking: the greedy number takes the period, the pattern's '.' the space after it.
  EXPECT_EQ(gsm8k_cot_strict_extract("The answer is 1,250. Then more."), "1,250.");
  EXPECT_EQ(exact_match("1,250.", "1250", gsm8k_match_options()), 1.0);
  EXPECT_EQ(exact_match("1,250", gsm8k_final_answer("x\n#### 1250"), gsm8k_match_options()), 1.0);
  // The pattern needs one character after the number (Python's '.'): at the very end it backtracks
  // and takes the last digit, so "27" is read as "2" (as lm-eval reads it).
  EXPECT_EQ(gsm8k_cot_strict_extract("The answer is 27"), "2");
  EXPECT_EQ(gsm8k_cot_strict_extract("The answer is"), kInvalid);
  EXPECT_EQ(gsm8k_cot_strict_extract("The answer is -3!"), "-3");
}

TEST(ExactMatch, CaseAndPunctuationOptions) {
  ExactMatchOptions o;
  EXPECT_EQ(exact_match("Paris", "paris", o), 0.0);
  o.ignore_case = true;
  EXPECT_EQ(exact_match("Paris", "paris", o), 1.0);
  o.ignore_punctuation = true;
  EXPECT_EQ(exact_match("(B).", "b", o), 1.0);
  EXPECT_EQ(exact_match(kInvalid, "A", mmlu_pro_match_options()), 0.0);
}

TEST(MmluProScoring, AnswerLetterExtraction) {
  EXPECT_EQ(mmlu_pro_extract("so the answer is (C)."), "C");
  EXPECT_EQ(mmlu_pro_extract("The answer is C because"), "C");
  EXPECT_EQ(mmlu_pro_extract("the answer is (B) ... the answer is (D)"), "B");  // take_first
  EXPECT_EQ(mmlu_pro_extract("the answer is (K)"), kInvalid);
  EXPECT_EQ(mmlu_pro_extract("Answer: D"), kInvalid);
  EXPECT_EQ(exact_match(mmlu_pro_extract("the answer is (c)"), "C", mmlu_pro_match_options()), 0.0);  // [A-J] only
  EXPECT_EQ(exact_match(mmlu_pro_extract("the answer is (C)"), "C", mmlu_pro_match_options()), 1.0);
}

TEST(RegexExtract, GroupSelectAndFallback) {
  EXPECT_EQ(regex_extract("a1 b2 c3", "([a-z])([0-9])", 1), "b");
  EXPECT_EQ(regex_extract("a1 b2 c3", "([a-z])([0-9])", -1), "c");
  EXPECT_EQ(regex_extract("a1", "x", 0, "none"), "none");
  EXPECT_THROW(regex_extract("a", "(", 0), slm::Error);
}

TEST(Aggregates, MeanAndSampleStandardError) {
  const auto m = mean_stderr({1, 0, 1, 1});
  EXPECT_DOUBLE_EQ(m.mean, 0.75);
  ASSERT_TRUE(m.stderr_.has_value());
  EXPECT_NEAR(*m.stderr_, 0.25, 1e-12);  // sd (ddof 1) = 0.5, over sqrt(4)
  const auto one = mean_stderr({1});
  EXPECT_FALSE(one.stderr_.has_value());
  EXPECT_EQ(argmax_first({-1, -0.5, -0.5}), 1u);
  EXPECT_EQ(utf8_length("caf\xc3\xa9"), 4u);
}

TEST(CustomMetrics, EachKind) {
  EXPECT_EQ(custom_score(CustomMetric::from_json("exact_match"), "  Paris\n", "Paris").score, 1);
  EXPECT_EQ(custom_score(CustomMetric::from_json("exact_match"), "paris", "Paris").score, 0);
  EXPECT_EQ(custom_score(CustomMetric::from_json({{"type", "exact_match"}, {"ignore_case", true}}), "paris", "Paris").score, 1);
  EXPECT_EQ(custom_score(CustomMetric::from_json("regex"), "oh Hello there", "[Hh]ello").score, 1);
  EXPECT_EQ(custom_score(CustomMetric::from_json("regex"), "goodbye", "[Hh]ello").score, 0);
  const auto numeric = CustomMetric::from_json({{"type", "numeric"}, {"tolerance", 0.01}});
  EXPECT_EQ(custom_score(numeric, "about 3.141 I think", 3.14159).score, 1);
  EXPECT_EQ(custom_score(numeric, "about 3.2", 3.14159).score, 0);
  EXPECT_EQ(custom_score(numeric, "it costs $1,250", "1250").score, 1);
  EXPECT_EQ(custom_score(numeric, "it is -5", -5).score, 1);
  const auto field = CustomMetric::from_json({{"type", "json_field"}, {"field", "city"}});
  EXPECT_EQ(custom_score(field, "Sure: ```json\n{\"city\": \"Rome\", \"n\": 2}\n```", "Rome").score, 1);
  EXPECT_EQ(custom_score(field, "{\"city\": \"Milan\"}", "Rome").score, 0);
  EXPECT_EQ(custom_score(field, "no json", "Rome").score, 0);
  const auto label = CustomMetric::from_json({{"type", "label"}, {"labels", {"yes", "no"}}});
  EXPECT_EQ(custom_score(label, "No, it is blue. yes?", "no").score, 1);  // the first label named
  EXPECT_EQ(custom_score(label, "yes", "no").score, 0);
  EXPECT_THROW(CustomMetric::from_json("bleu"), slm::Error);
  EXPECT_THROW(CustomMetric::from_json({{"type", "json_field"}}), slm::Error);
}

TEST(PassAtK, UnbiasedEstimator) {
  // 1 - C(n-c, k) / C(n, k) computed directly for small n.
  auto choose = [](int64_t n, int64_t k) {
    double r = 1;
    for (int64_t i = 1; i <= k; ++i) r = r * double(n - k + i) / double(i);
    return r;
  };
  for (int64_t n : {1, 5, 10}) {
    for (int64_t c = 0; c <= n; ++c) {
      for (int64_t k = 1; k <= n; ++k) {
        const double expected = n - c < k ? 1.0 : 1.0 - choose(n - c, k) / choose(n, k);
        EXPECT_NEAR(pass_at_k(n, c, k), expected, 1e-12) << n << " " << c << " " << k;
      }
    }
  }
  EXPECT_DOUBLE_EQ(pass_at_k(10, 3, 1), 0.3);   // pass@1 is the share correct
  EXPECT_NEAR(pass_at_k(200, 10, 100), 1.0 - choose(190, 100) / choose(200, 100), 1e-9);
  EXPECT_THROW(pass_at_k(5, 6, 1), slm::Error);
  EXPECT_THROW(pass_at_k(5, 2, 6), slm::Error);
}

TEST(JudgeMetric, PromptAndScoreParsing) {
  CustomMetric m = CustomMetric::from_json({{"type", "judge"}, {"scale", {0, 10}}, {"rubric", "Q={input} A={output} R={expected} [{min}-{max}]"}});
  EXPECT_EQ(m.kind, "judge");
  EXPECT_EQ(judge_prompt(m, "2+2?", "4 {input}", "4"), "Q=2+2? A=4 {input} R=4 [0-10]");  // filled once
  const std::string default_prompt = judge_prompt(CustomMetric::from_json("judge"), "in", "out", "ref");
  EXPECT_NE(default_prompt.find("Answer to grade:\nout"), std::string::npos) << default_prompt;
  EXPECT_NE(default_prompt.find("1 to 5"), std::string::npos) << default_prompt;
  EXPECT_EQ(parse_judge_score(" 4", 1, 5), 4.0);
  EXPECT_EQ(parse_judge_score("I'd say... Score: 3.5 because 2 things", 1, 5), 3.5);
  EXPECT_EQ(parse_judge_score("The answer has 2 errors. **Score**: 2", 1, 5), 2.0);
  EXPECT_EQ(parse_judge_score("score = 5/5", 1, 5), 5.0);
  EXPECT_FALSE(parse_judge_score("Score: 7", 1, 5).has_value());  // outside the scale
  EXPECT_FALSE(parse_judge_score("excellent", 1, 5).has_value());
  EXPECT_THROW(CustomMetric::from_json({{"type", "judge"}, {"scale", {5, 1}}}), slm::Error);
}
