// Scoring as lm-evaluation-harness defines it: the regex filters (findall, a group_select, the first
// non-empty group of a tuple match, "[invalid]" when nothing matches), exact_match with
// regexes_to_ignore / ignore_case / ignore_punctuation, the per-task extractors and the mean with its
// standard error (sample standard deviation over sqrt(n)). Also the custom-task metrics.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace slm::eval {

inline constexpr const char* kInvalid = "[invalid]";

// lm-eval's RegexFilter: every match of `pattern` (ECMAScript syntax), the one at `group_select`
// (negative counts from the end), its first non-empty capture group (the whole match when the pattern
// has no group), stripped of surrounding whitespace; `fallback` when there is no match.
std::string regex_extract(const std::string& text, const std::string& pattern, int group_select = 0,
                          const std::string& fallback = kInvalid);

struct ExactMatchOptions {
  std::vector<std::string> regexes_to_ignore;  // removed (every match) from both sides first
  bool ignore_case = false;
  bool ignore_punctuation = false;             // Python's string.punctuation
};
// Hugging Face evaluate's exact_match as lm-eval calls it: 1 when the normalised strings are equal.
double exact_match(const std::string& prediction, const std::string& reference, const ExactMatchOptions& options);

// GSM8K (and its chain-of-thought variant): normalisation of both sides.
ExactMatchOptions gsm8k_match_options();
// The regexes of the "strict-match" and "flexible-extract" filters.
std::string gsm8k_strict_extract(const std::string& response);      // "#### N"
std::string gsm8k_cot_strict_extract(const std::string& response);  // "The answer is N."
std::string gsm8k_flexible_extract(const std::string& response);    // the last number
// The reference answer the gsm8k_cot task compares against: the text after the last "####", stripped.
std::string gsm8k_final_answer(const std::string& answer);

// MMLU-Pro: "answer is (X)", then ".*[aA]nswer:\s*([A-J])", else "[invalid]".
std::string mmlu_pro_extract(const std::string& response);
ExactMatchOptions mmlu_pro_match_options();

// Multiple choice by log-likelihood: argmax (first on ties) of the raw sums (acc) and of the sums
// divided by each choice's length in characters, as lm-eval counts them (acc_norm; bytes counted as
// Python counts code points).
size_t argmax_first(const std::vector<double>& values);
size_t utf8_length(const std::string& text);

struct MeanStderr {
  double mean = 0;
  std::optional<double> stderr_;  // none for fewer than two values
};
MeanStderr mean_stderr(const std::vector<double>& values);

// Custom tasks: metric "exact_match" (after strip; options "ignore_case"), "regex" (the expected value
// is a pattern that must match somewhere in the output), "numeric" (the last number of the output within
// "tolerance" (absolute) or "rel_tolerance" of the expected number), "json_field" (the output's first JSON
// object has field `field` equal to the expected value), "label" (the first of the given "labels" the
// output names, compared with the expected label).
// "judge": a judge model grades the output with a rubric prompt (see judge_prompt); needs a judge
// backend.
struct CustomMetric {
  std::string kind = "exact_match";
  // judge: the rubric ({input}, {output}, {expected}, {min}, {max} are filled in; "" the default) and
  // the score scale.
  std::string rubric;
  double scale_min = 1, scale_max = 5;
  bool ignore_case = false;
  double tolerance = 1e-6;
  double rel_tolerance = 0;
  std::string field;
  std::vector<std::string> labels;
  static CustomMetric from_json(const nlohmann::json& spec);
};
struct CustomScore {
  double score = 0;
  std::string extracted;  // what was compared
};
CustomScore custom_score(const CustomMetric& metric, const std::string& output, const nlohmann::json& expected);

// The judge's prompt: the rubric with {input}, {output}, {expected}, {min} and {max} replaced.
std::string judge_prompt(const CustomMetric& metric, const std::string& input, const std::string& output,
                         const std::string& expected);
// The score in a judge's answer: the number after "score" ("Score: 4", "score = 3.5"), else the
// first number; nullopt when there is none or it lies outside [min, max].
std::optional<double> parse_judge_score(const std::string& answer, double min, double max);

// HumanEval's unbiased pass@k estimator for one problem: n samples, c of them correct:
// 1 - C(n - c, k) / C(n, k), computed as a product so that large n do not overflow.
double pass_at_k(int64_t n, int64_t c, int64_t k);

// The first JSON value (object or array) in a text, skipping prose and code fences; nullopt if none parses.
std::optional<nlohmann::json> first_json_value(const std::string& text);

}  // namespace slm::eval
