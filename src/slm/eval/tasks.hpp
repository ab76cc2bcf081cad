// Benchmark tasks as lm-evaluation-harness defines them, read from the public data sets' own JSONL
// fields, and custom tasks: prompts (few-shot contexts, target delimiters, stop strings), the requests
// they make of a Backend, and the per-sample and aggregate metrics (lm-eval's names, with standard
// errors).
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "slm/eval/backend.hpp"
#include "slm/eval/cache.hpp"
#include "slm/eval/sandbox.hpp"

namespace slm::eval {

enum class TaskKind { gsm8k, gsm8k_cot, arc_challenge, mmlu_pro, humaneval, custom };
TaskKind parse_task(const std::string& name);  // throws Error(invalid_argument)
const char* task_name(TaskKind kind);

struct TaskOptions {
  TaskKind task = TaskKind::gsm8k;
  std::string data_path;
  std::string fewshot_path;  // JSONL in the same format; default: the data file's other items
  int64_t limit = 0;         // the first N items (0: all)
  int shots = -1;            // -1: the task's default (gsm8k 5, gsm8k_cot 8, mmlu_pro 5, others 0)
  uint64_t seed = 1234;      // few-shot sampling and generation
  int64_t max_tokens = -1;   // -1: the task's default
  SandboxOptions sandbox;    // humaneval
  nlohmann::json metric;     // custom: the default metric (name or object) for items without one
  // Resumable runs: results found here are reused, new ones stored as they finish (null: no cache).
  ResultCache* cache = nullptr;
  // humaneval: samples per problem and the k of pass@k (default: 1, 10, 100 where at most `samples`);
  // temperature -1: greedy for one sample, 0.8 for several (each sample its own seed).
  int samples = 1;
  double temperature = -1;
  std::vector<int64_t> pass_k;
  // custom "judge" metric: the model that grades, asked `judge_samples` times per answer (greedy
  // once, else at temperature 0.7 with a seed per sample; agreement = share equal to the most common
  // score).
  Backend* judge = nullptr;
  int judge_samples = 1;
};

std::vector<nlohmann::json> read_jsonl(const std::string& path);

// Prompt pieces (exposed for tests).
std::string gsm8k_doc_text(const nlohmann::json& doc);           // "Question: ...\nAnswer:"
std::string gsm8k_cot_doc_text(const nlohmann::json& doc);       // "Q: ...\nA:"
// A GSM8K answer as a chain-of-thought exemplar: its reasoning lines without the <<...>> calculator
// notes, then "The answer is N."
std::string gsm8k_cot_target(const std::string& answer);
std::string arc_doc_text(const nlohmann::json& doc);             // "Question: ...\nAnswer:"
std::string mmlu_pro_example(const nlohmann::json& doc, bool with_answer);
std::string mmlu_pro_description(const std::string& category);
// Picks `k` few-shot examples for item `doc_index` from `pool` (indices), never the item itself when the
// pool is the evaluated file.
std::vector<size_t> sample_fewshot(std::mt19937_64& rng, size_t pool_size, size_t k, int64_t exclude);

// Runs the task; returns the report: results (aggregate metrics and stderrs), configs, n-samples and
// samples (per-item records).
nlohmann::json run_task(Backend& backend, const TaskOptions& options, const Progress& progress = {});

}  // namespace slm::eval
