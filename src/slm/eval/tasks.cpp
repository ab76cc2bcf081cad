#include "slm/eval/tasks.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <fstream>
#include <map>
#include <regex>
#include <set>

#include "slm/eval/metrics.hpp"
#include "slm/util/error.hpp"

namespace slm::eval {

using json = nlohmann::json;

TaskKind parse_task(const std::string& name) {
  if (name == "gsm8k") return TaskKind::gsm8k;
  if (name == "gsm8k_cot") return TaskKind::gsm8k_cot;
  if (name == "arc_challenge") return TaskKind::arc_challenge;
  if (name == "mmlu_pro") return TaskKind::mmlu_pro;
  if (name == "humaneval") return TaskKind::humaneval;
  if (name == "custom") return TaskKind::custom;
  fail(ErrorKind::invalid_argument, "expected task gsm8k, gsm8k_cot, arc_challenge, mmlu_pro, humaneval or custom, found '{}'",
       name);
}

const char* task_name(TaskKind kind) {
  switch (kind) {
    case TaskKind::gsm8k: return "gsm8k";
    case TaskKind::gsm8k_cot: return "gsm8k_cot";
    case TaskKind::arc_challenge: return "arc_challenge";
    case TaskKind::mmlu_pro: return "mmlu_pro";
    case TaskKind::humaneval: return "humaneval";
    case TaskKind::custom: return "custom";
  }
  return "?";
}

std::vector<json> read_jsonl(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorKind::not_found, "cannot open data file '{}'", path);
  std::vector<json> docs;
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    json doc = json::parse(line, nullptr, false);
    if (doc.is_discarded() || !doc.is_object()) {
      fail(ErrorKind::format, "{}:{}: expected a JSON object per line", path, line_no);
    }
    docs.push_back(std::move(doc));
  }
  return docs;
}

namespace {

std::string str_field(const json& doc, const char* key) {
  if (!doc.is_object() || !doc.contains(key) || !doc.at(key).is_string()) {
    fail(ErrorKind::format, "expected a string field \"{}\" in {}", key, doc.dump().substr(0, 200));
  }
  return doc.at(key).get<std::string>();
}

std::string join(const std::vector<std::string>& parts, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i) out += sep;
    out += parts[i];
  }
  return out;
}

json stderr_json(const MeanStderr& m) { return m.stderr_ ? json(*m.stderr_) : json(nullptr); }

// Adds "metric,filter" and "metric_stderr,filter" to `out`.
void put_metric(json& out, const std::string& metric, const std::string& filter, const std::vector<double>& values) {
  const MeanStderr m = mean_stderr(values);
  out[metric + "," + filter] = m.mean;
  out[metric + "_stderr," + filter] = stderr_json(m);
}

struct Pools {
  std::vector<json> docs;     // evaluated
  std::vector<json> fewshot;  // few-shot source
  bool fewshot_is_docs = true;
};

}  // namespace

std::string gsm8k_doc_text(const json& doc) { return "Question: " + str_field(doc, "question") + "\nAnswer:"; }
std::string gsm8k_cot_doc_text(const json& doc) { return "Q: " + str_field(doc, "question") + "\nA:"; }

std::string gsm8k_cot_target(const std::string& answer) {
  const size_t pos = answer.rfind("####");
  std::string reasoning = pos == std::string::npos ? std::string() : answer.substr(0, pos);
  reasoning = std::regex_replace(reasoning, std::regex("<<[^>]*>>"), "");
  std::vector<std::string> lines;
  size_t start = 0;
  while (start <= reasoning.size()) {
    size_t end = reasoning.find('\n', start);
    if (end == std::string::npos) end = reasoning.size();
    std::string line = reasoning.substr(start, end - start);
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.front()))) line.erase(line.begin());
    if (!line.empty()) lines.push_back(line);
    start = end + 1;
  }
  std::string out = join(lines, " ");
  if (!out.empty()) out += " ";
  return out + "The answer is " + gsm8k_final_answer(answer) + ".";
}

std::string arc_doc_text(const json& doc) { return "Question: " + str_field(doc, "question") + "\nAnswer:"; }

std::string mmlu_pro_example(const json& doc, bool with_answer) {
  static const char letters[] = "ABCDEFGHIJKLMNOP";
  std::string out = "Question:\n" + str_field(doc, "question") + "\nOptions:\n";
  const json& options = doc.at("options");
  if (!options.is_array() || options.size() > 16) fail(ErrorKind::format, "expected \"options\": a list of at most 16");
  for (size_t i = 0; i < options.size(); ++i) {
    out += std::string(1, letters[i]) + ". " + options[i].get<std::string>() + "\n";
  }
  if (with_answer) {
    std::string cot = str_field(doc, "cot_content");
    const std::string from = "A: Let's think step by step.";
    for (size_t p = cot.find(from); p != std::string::npos; p = cot.find(from, p + 1)) {
      cot.replace(p, from.size(), "Answer: Let's think step by step.");
    }
    out += cot + "\n\n";
  } else {
    out += "Answer: Let's think step by step.";
  }
  return out;
}

std::string mmlu_pro_description(const std::string& category) {
  std::string subject = category;
  std::replace(subject.begin(), subject.end(), '_', ' ');
  return "The following are multiple choice questions (with answers) about " + subject +
         ". Think step by step and then finish your answer with \"the answer is (X)\" where X is the correct "
         "letter choice.\n";
}

std::vector<size_t> sample_fewshot(std::mt19937_64& rng, size_t pool_size, size_t k, int64_t exclude) {
  // Like lm-eval: draw k + 1 distinct items, drop the evaluated one, keep k.
  std::vector<size_t> idx(pool_size);
  for (size_t i = 0; i < pool_size; ++i) idx[i] = i;
  const size_t draw = std::min(pool_size, k + 1);
  for (size_t i = 0; i < draw; ++i) {
    std::uniform_int_distribution<size_t> pick(i, pool_size - 1);
    std::swap(idx[i], idx[pick(rng)]);
  }
  std::vector<size_t> out;
  for (size_t i = 0; i < draw && out.size() < k; ++i) {
    if (exclude >= 0 && idx[i] == size_t(exclude)) continue;
    out.push_back(idx[i]);
  }
  return out;
}

namespace {

std::vector<std::string> texts(const std::vector<Generation>& generations) {
  std::vector<std::string> out;
  out.reserve(generations.size());
  for (const auto& g : generations) out.push_back(g.text);
  return out;
}

struct Context {
  Backend& backend;
  const TaskOptions& options;
  const Progress& progress;
  Pools pools;
  std::mt19937_64 rng;
  json report;
};

int shots_or(const TaskOptions& o, int def) { return o.shots >= 0 ? o.shots : def; }
int64_t max_tokens_or(const TaskOptions& o, int64_t def) { return o.max_tokens > 0 ? o.max_tokens : def; }

json config_json(const TaskOptions& o, int shots, const std::vector<std::string>& until, int64_t max_tokens) {
  json c = {{"num_fewshot", shots}, {"seed", o.seed}};
  if (!until.empty() || max_tokens > 0) c["generation_kwargs"] = {{"until", until}, {"max_gen_toks", max_tokens}, {"do_sample", false}};
  return c;
}

void run_gsm8k(Context& cx, bool cot) {
  const int shots = shots_or(cx.options, cot ? 8 : 5);
  const int64_t max_tokens = max_tokens_or(cx.options, 256);
  const std::vector<std::string> until = cot ? std::vector<std::string>{"Q:", "</s>", "<|im_end|>"}
                                             : std::vector<std::string>{"Question:", "</s>", "<|im_end|>"};
  std::vector<GenerationSpec> specs;
  for (size_t i = 0; i < cx.pools.docs.size(); ++i) {
    const auto picked = sample_fewshot(cx.rng, cx.pools.fewshot.size(), size_t(shots),
                                       cx.pools.fewshot_is_docs ? int64_t(i) : -1);
    std::vector<std::string> parts;
    for (size_t j : picked) {
      const json& ex = cx.pools.fewshot[j];
      const std::string answer = str_field(ex, "answer");
      parts.push_back(cot ? gsm8k_cot_doc_text(ex) + " " + gsm8k_cot_target(answer) : gsm8k_doc_text(ex) + " " + answer);
    }
    parts.push_back(cot ? gsm8k_cot_doc_text(cx.pools.docs[i]) : gsm8k_doc_text(cx.pools.docs[i]));
    specs.push_back({join(parts, "\n\n"), until, max_tokens, 0, 0, "doc " + std::to_string(i)});
  }
  const auto outputs = texts(cx.backend.generate(specs, cx.progress));
  const ExactMatchOptions em = gsm8k_match_options();
  std::vector<double> strict, flexible;
  json& samples = cx.report["samples"];
  for (size_t i = 0; i < outputs.size(); ++i) {
    const std::string answer = str_field(cx.pools.docs[i], "answer");
    const std::string target = cot ? gsm8k_final_answer(answer) : answer;
    const std::string s = cot ? gsm8k_cot_strict_extract(outputs[i]) : gsm8k_strict_extract(outputs[i]);
    const std::string f = gsm8k_flexible_extract(outputs[i]);
    strict.push_back(exact_match(s, target, em));
    flexible.push_back(exact_match(f, target, em));
    samples.push_back({{"doc_id", i}, {"target", target}, {"prompt", specs[i].prompt}, {"resps", {outputs[i]}},
                       {"filtered_resps", {{"strict-match", s}, {"flexible-extract", f}}},
                       {"exact_match,strict-match", strict.back()}, {"exact_match,flexible-extract", flexible.back()}});
  }
  json& r = cx.report["results"][task_name(cx.options.task)];
  put_metric(r, "exact_match", "strict-match", strict);
  put_metric(r, "exact_match", "flexible-extract", flexible);
  cx.report["configs"][task_name(cx.options.task)] = config_json(cx.options, shots, until, max_tokens);
}

void run_arc(Context& cx) {
  const int shots = shots_or(cx.options, 0);
  std::vector<LoglikelihoodRequest> requests;
  std::vector<std::pair<size_t, size_t>> span;  // per doc: first request, count
  std::vector<int64_t> gold;
  for (size_t i = 0; i < cx.pools.docs.size(); ++i) {
    const json& doc = cx.pools.docs[i];
    const json& choices = doc.at("choices");
    const auto texts = choices.at("text").get<std::vector<std::string>>();
    const auto labels = choices.at("label").get<std::vector<std::string>>();
    const std::string key = str_field(doc, "answerKey");
    const auto it = std::find(labels.begin(), labels.end(), key);
    if (it == labels.end()) fail(ErrorKind::format, "answerKey '{}' is not one of the labels", key);
    gold.push_back(it - labels.begin());
    std::string context;
    if (shots > 0) {
      const auto picked = sample_fewshot(cx.rng, cx.pools.fewshot.size(), size_t(shots),
                                         cx.pools.fewshot_is_docs ? int64_t(i) : -1);
      for (size_t j : picked) {
        const json& ex = cx.pools.fewshot[j];
        const auto ex_labels = ex.at("choices").at("label").get<std::vector<std::string>>();
        const auto ex_texts = ex.at("choices").at("text").get<std::vector<std::string>>();
        const auto k = std::find(ex_labels.begin(), ex_labels.end(), str_field(ex, "answerKey")) - ex_labels.begin();
        if (size_t(k) >= ex_texts.size()) fail(ErrorKind::format, "few-shot example's answerKey is not one of its labels");
        context += arc_doc_text(ex) + " " + ex_texts[size_t(k)] + "\n\n";
      }
    }
    context += arc_doc_text(doc);
    span.push_back({requests.size(), texts.size()});
    for (size_t c = 0; c < texts.size(); ++c) {  // target_delimiter " "
      requests.push_back({context, " " + texts[c], "doc " + std::to_string(i) + " choice " + std::to_string(c)});
    }
  }
  const auto results = cx.backend.loglikelihood(requests, cx.progress);
  std::vector<double> acc, acc_norm;
  json& samples = cx.report["samples"];
  for (size_t i = 0; i < span.size(); ++i) {
    std::vector<double> lls, normed;
    json resps = json::array();
    for (size_t c = 0; c < span[i].second; ++c) {
      const auto& req = requests[span[i].first + c];
      const double ll = results[span[i].first + c].logprob;
      lls.push_back(ll);
      // lm-eval divides by the length of the choice text (without the delimiter).
      normed.push_back(ll / double(utf8_length(req.continuation.substr(1))));
      resps.push_back({ll, results[span[i].first + c].is_greedy});
    }
    acc.push_back(argmax_first(lls) == size_t(gold[i]) ? 1 : 0);
    acc_norm.push_back(argmax_first(normed) == size_t(gold[i]) ? 1 : 0);
    samples.push_back({{"doc_id", i}, {"id", cx.pools.docs[i].value("id", "")}, {"target", gold[i]},
                       {"prompt", requests[span[i].first].context}, {"resps", resps},
                       {"acc,none", acc.back()}, {"acc_norm,none", acc_norm.back()}});
  }
  json& r = cx.report["results"]["arc_challenge"];
  put_metric(r, "acc", "none", acc);
  put_metric(r, "acc_norm", "none", acc_norm);
  cx.report["configs"]["arc_challenge"] = config_json(cx.options, shots, {}, 0);
}

void run_mmlu_pro(Context& cx) {
  const int shots = shots_or(cx.options, 5);
  const int64_t max_tokens = max_tokens_or(cx.options, 2048);
  const std::vector<std::string> until = {"</s>", "Q:", "<|im_end|>"};
  std::vector<GenerationSpec> specs;
  for (size_t i = 0; i < cx.pools.docs.size(); ++i) {
    const json& doc = cx.pools.docs[i];
    const std::string category = str_field(doc, "category");
    std::string prompt = mmlu_pro_description(category);
    // first_n: the first examples of the same category (with a chain of thought), never the item itself.
    int taken = 0;
    for (size_t j = 0; j < cx.pools.fewshot.size() && taken < shots; ++j) {
      if (cx.pools.fewshot_is_docs && j == i) continue;
      const json& ex = cx.pools.fewshot[j];
      if (ex.value("category", "") != category || ex.value("cot_content", "").empty()) continue;
      prompt += mmlu_pro_example(ex, true);
      ++taken;
    }
    prompt += mmlu_pro_example(doc, false);
    specs.push_back({prompt, until, max_tokens, 0, 0, "doc " + std::to_string(i)});
  }
  const auto outputs = texts(cx.backend.generate(specs, cx.progress));
  const ExactMatchOptions em = mmlu_pro_match_options();
  std::vector<double> all, all_fallback;
  std::map<std::string, std::vector<double>> by_category;
  json& samples = cx.report["samples"];
  for (size_t i = 0; i < outputs.size(); ++i) {
    const json& doc = cx.pools.docs[i];
    const std::string target = str_field(doc, "answer");
    const std::string extracted = mmlu_pro_extract(outputs[i]);
    std::string with_fallback = extracted;
    if (with_fallback == kInvalid) {
      std::smatch m;
      static const std::regex answer_colon(".*[aA]nswer:\\s*([A-J])");
      if (std::regex_search(outputs[i], m, answer_colon)) with_fallback = m.str(1);
    }
    all.push_back(exact_match(extracted, target, em));
    all_fallback.push_back(exact_match(with_fallback, target, em));
    by_category[doc.value("category", "")].push_back(all.back());
    samples.push_back({{"doc_id", i}, {"category", doc.value("category", "")}, {"target", target},
                       {"prompt", specs[i].prompt}, {"resps", {outputs[i]}},
                       {"filtered_resps", {{"custom-extract", extracted}, {"custom-extract-fallback", with_fallback}}},
                       {"exact_match,custom-extract", all.back()}});
  }
  json& r = cx.report["results"]["mmlu_pro"];
  put_metric(r, "exact_match", "custom-extract", all);
  put_metric(r, "exact_match", "custom-extract-fallback", all_fallback);
  for (const auto& [category, values] : by_category) {
    put_metric(cx.report["results"]["mmlu_pro_" + category], "exact_match", "custom-extract", values);
  }
  cx.report["configs"]["mmlu_pro"] = config_json(cx.options, shots, until, max_tokens);
}

void run_humaneval(Context& cx) {
  const int64_t max_tokens = max_tokens_or(cx.options, 1024);
  const std::vector<std::string> until = {"\nclass", "\ndef", "\n#", "\nif", "\nprint"};
  const int64_t n = std::max(1, cx.options.samples);
  const double temperature = cx.options.temperature >= 0 ? cx.options.temperature : n > 1 ? 0.8 : 0.0;
  std::vector<int64_t> ks = cx.options.pass_k;
  if (ks.empty()) {
    for (int64_t k : {1, 10, 100}) {
      if (k <= n) ks.push_back(k);
    }
  }
  for (int64_t k : ks) {
    if (k < 1 || k > n) fail(ErrorKind::invalid_argument, "pass@{}: expected 1 <= k <= samples ({})", k, n);
  }
  std::vector<GenerationSpec> specs;
  for (size_t i = 0; i < cx.pools.docs.size(); ++i) {
    for (int64_t s = 0; s < n; ++s) {
      // One sample: the run's seed; several: a seed of their own each.
      const uint64_t seed = n > 1 ? cx.options.seed + 1 + uint64_t(s) : 0;
      specs.push_back({str_field(cx.pools.docs[i], "prompt"), until, max_tokens, temperature, seed,
                       "doc " + std::to_string(i) + " sample " + std::to_string(s)});
    }
  }
  const auto outputs = texts(cx.backend.generate(specs, cx.progress));
  std::map<int64_t, std::vector<double>> pass;  // k -> per problem
  bool isolated_all = true;
  SandboxResult last;
  json& samples = cx.report["samples"];
  for (size_t i = 0; i < cx.pools.docs.size(); ++i) {
    const json& doc = cx.pools.docs[i];
    json resps = json::array(), passed = json::array(), timed_out = json::array(), exit_codes = json::array(),
         logs = json::array();
    int64_t correct = 0;
    for (int64_t s = 0; s < n; ++s) {
      const size_t j = i * size_t(n) + size_t(s);
      const std::string program =
          humaneval_program(specs[j].prompt + outputs[j], str_field(doc, "test"), str_field(doc, "entry_point"));
      last = run_python_sandboxed(program, cx.options.sandbox);
      isolated_all = isolated_all && last.network_isolated;
      correct += last.passed ? 1 : 0;
      resps.push_back(outputs[j]);
      passed.push_back(last.passed);
      timed_out.push_back(last.timed_out);
      exit_codes.push_back(last.exit_code);
      logs.push_back(last.output.substr(0, 1000));
    }
    json sample = {{"doc_id", i}, {"task_id", doc.value("task_id", "")}, {"resps", resps}, {"passed", passed},
                   {"n", n}, {"correct", correct}};
    for (int64_t k : ks) {
      pass[k].push_back(pass_at_k(n, correct, k));
      sample["pass@" + std::to_string(k) + ",create_test"] = pass[k].back();
    }
    if (n == 1) {
      sample["timed_out"] = timed_out[0];
      sample["exit_code"] = exit_codes[0];
      sample["output"] = logs[0];
    } else {
      sample["timed_out"] = timed_out;
      sample["exit_code"] = exit_codes;
      sample["output"] = logs;
    }
    samples.push_back(std::move(sample));
  }
  json& res = cx.report["results"]["humaneval"];
  for (const auto& [k, values] : pass) put_metric(res, "pass@" + std::to_string(k), "create_test", values);
  json config = config_json(cx.options, 0, until, max_tokens);
  config["generation_kwargs"]["do_sample"] = temperature > 0;
  config["generation_kwargs"]["temperature"] = temperature;
  config["repeats"] = n;
  config["sandbox"] = {{"timeout_s", cx.options.sandbox.timeout_s}, {"cpu_s", cx.options.sandbox.cpu_s},
                       {"memory_bytes", cx.options.sandbox.memory_bytes},
                       {"network_isolated", isolated_all},
                       {"isolation", last.isolation},
                       {"network_note", isolated_all ? "each program ran in a new network namespace"
                                                     : "the kernel refused a new network namespace: network "
                                                       "blocked only by the system call filter and the Python-level guard"}};
  cx.report["configs"]["humaneval"] = config;
}

// Grades the outputs of items whose metric is "judge" with the judge backend. Per item: the score
// normalised to [0, 1] (the mean of the parsed scores; 0 when none parses), and the agreement of
// the judge's samples (share equal to the most common score).
struct JudgeVerdict {
  double score = 0;       // normalised
  double raw = 0;         // mean parsed score (scale units); NaN when none parsed
  double agreement = 1;
  json scores = json::array();
  json answers = json::array();
};

std::vector<JudgeVerdict> run_judge(Context& cx, const std::vector<size_t>& items, const std::vector<std::string>& inputs,
                                    const std::vector<std::string>& outputs, const std::vector<json>& expected,
                                    const std::vector<CustomMetric>& metrics) {
  if (!cx.options.judge) {
    fail(ErrorKind::invalid_argument, "metric \"judge\" needs a judge model (--judge-model or --judge-endpoint)");
  }
  const int64_t samples = std::max(1, cx.options.judge_samples);
  std::vector<GenerationSpec> specs;
  for (size_t i : items) {
    const std::string exp = expected[i].is_string() ? expected[i].get<std::string>() : expected[i].dump();
    for (int64_t s = 0; s < samples; ++s) {
      specs.push_back({judge_prompt(metrics[i], inputs[i], outputs[i], exp), {"\n\n"}, 16,
                       samples > 1 ? 0.7 : 0.0, samples > 1 ? cx.options.seed + 1 + uint64_t(s) : 0,
                       "judge doc " + std::to_string(i) + " sample " + std::to_string(s)});
    }
  }
  Backend* judge = cx.options.judge;
  std::unique_ptr<CachingBackend> cached;
  if (cx.options.cache) {
    cached = std::make_unique<CachingBackend>(*judge, *cx.options.cache, json{{"judge", true}, {"seed", cx.options.seed}});
    judge = cached.get();
  }
  const auto answers = texts(judge->generate(specs, {}));
  std::vector<JudgeVerdict> out;
  for (size_t n = 0; n < items.size(); ++n) {
    const CustomMetric& m = metrics[items[n]];
    JudgeVerdict v;
    std::vector<double> parsed;
    std::map<double, int64_t> counts;
    for (int64_t s = 0; s < samples; ++s) {
      const std::string& a = answers[n * size_t(samples) + size_t(s)];
      const auto score = parse_judge_score(a, m.scale_min, m.scale_max);
      v.answers.push_back(a);
      v.scores.push_back(score ? json(*score) : json(nullptr));
      if (score) {
        parsed.push_back(*score);
        ++counts[*score];
      }
    }
    int64_t mode = 0;
    for (const auto& [value, count] : counts) mode = std::max(mode, count);
    v.agreement = double(mode) / double(samples);
    if (!parsed.empty()) {
      double sum = 0;
      for (double p : parsed) sum += p;
      v.raw = sum / double(parsed.size());
      v.score = (v.raw - m.scale_min) / (m.scale_max - m.scale_min);
    } else {
      v.raw = std::nan("");
    }
    out.push_back(std::move(v));
  }
  if (cached) {
    json& c = cx.report["cache"];
    c["judge_reused"] = cached->reused();
    c["judge_computed"] = cached->computed();
  }
  return out;
}

void run_custom(Context& cx) {
  const int64_t max_tokens = max_tokens_or(cx.options, 128);
  std::vector<GenerationSpec> specs;
  std::vector<CustomMetric> metrics;
  std::vector<json> expected;
  std::vector<std::string> inputs;
  // Label accuracy without listed labels: the distinct expected values of the file.
  std::set<std::string> seen_labels;
  for (const auto& doc : cx.pools.docs) {
    for (const char* key : {"expected", "output", "target", "answer"}) {
      if (doc.contains(key) && doc.at(key).is_string()) {
        seen_labels.insert(doc.at(key).get<std::string>());
        break;
      }
    }
  }
  for (const auto& doc : cx.pools.docs) {
    std::string input;
    for (const char* key : {"input", "prompt", "question"}) {
      if (doc.contains(key) && doc.at(key).is_string()) {
        input = doc.at(key).get<std::string>();
        break;
      }
    }
    if (input.empty()) fail(ErrorKind::format, "custom task: expected \"input\" (or \"prompt\") in {}", doc.dump().substr(0, 200));
    json exp;
    bool found = false;
    for (const char* key : {"expected", "output", "target", "answer"}) {
      if (doc.contains(key)) {
        exp = doc.at(key);
        found = true;
        break;
      }
    }
    if (!found) fail(ErrorKind::format, "custom task: expected \"expected\" (or \"output\") in {}", doc.dump().substr(0, 200));
    CustomMetric m = CustomMetric::from_json(doc.contains("metric") ? doc.at("metric") : cx.options.metric);
    if (m.kind == "label" && m.labels.empty()) m.labels.assign(seen_labels.begin(), seen_labels.end());
    std::vector<std::string> until;
    if (doc.contains("stop")) until = doc.at("stop").get<std::vector<std::string>>();
    specs.push_back({input, until, doc.value("max_tokens", max_tokens), 0, 0, "doc " + std::to_string(specs.size())});
    metrics.push_back(m);
    expected.push_back(exp);
    inputs.push_back(input);
  }
  const auto outputs = texts(cx.backend.generate(specs, cx.progress));
  std::vector<size_t> judged;
  for (size_t i = 0; i < metrics.size(); ++i) {
    if (metrics[i].kind == "judge") judged.push_back(i);
  }
  std::vector<JudgeVerdict> verdicts;
  if (!judged.empty()) verdicts = run_judge(cx, judged, inputs, outputs, expected, metrics);
  std::vector<double> scores, judge_raw, judge_agreement, reference_agreement;
  int64_t unparsed = 0;
  std::map<std::string, std::vector<double>> by_metric;
  json& samples = cx.report["samples"];
  for (size_t i = 0, v = 0; i < outputs.size(); ++i) {
    json sample = {{"doc_id", i}, {"id", cx.pools.docs[i].value("id", json(i))}, {"metric", metrics[i].kind},
                   {"target", expected[i]}, {"resps", {outputs[i]}}};
    double score = 0;
    if (metrics[i].kind == "judge") {
      const JudgeVerdict& jv = verdicts[v++];
      score = jv.score;
      sample["filtered_resps"] = jv.scores;
      sample["judge_answers"] = jv.answers;
      sample["judge_agreement"] = jv.agreement;
      judge_agreement.push_back(jv.agreement);
      if (std::isnan(jv.raw)) {
        ++unparsed;
      } else {
        judge_raw.push_back(jv.raw);
      }
      // A human score on the item: the judge agrees when its mean is within half a point of it.
      const json& doc = cx.pools.docs[i];
      if (doc.contains("reference_score") && doc.at("reference_score").is_number()) {
        const double ref = doc.at("reference_score").get<double>();
        reference_agreement.push_back(!std::isnan(jv.raw) && std::fabs(jv.raw - ref) <= 0.5 ? 1 : 0);
        sample["reference_score"] = ref;
      }
    } else {
      const CustomScore cs = custom_score(metrics[i], outputs[i], expected[i]);
      score = cs.score;
      sample["filtered_resps"] = {cs.extracted};
    }
    sample["score"] = score;
    scores.push_back(score);
    by_metric[metrics[i].kind].push_back(score);
    samples.push_back(std::move(sample));
  }
  json& r = cx.report["results"]["custom"];
  put_metric(r, "score", "none", scores);
  for (const auto& [kind, values] : by_metric) put_metric(r, kind, "none", values);
  if (!judged.empty()) {
    if (!judge_raw.empty()) put_metric(r, "judge_raw", "none", judge_raw);
    if (cx.options.judge_samples > 1) put_metric(r, "judge_agreement", "none", judge_agreement);
    if (!reference_agreement.empty()) put_metric(r, "judge_reference_agreement", "none", reference_agreement);
    cx.report["configs"]["custom"]["judge"] = {{"model", cx.options.judge->identity()},
                                               {"samples", std::max(1, cx.options.judge_samples)},
                                               {"unparsed", unparsed}};
  }
  cx.report["configs"]["custom"].update(config_json(cx.options, 0, {}, max_tokens));
}

}  // namespace

namespace {

// Passes requests on and sums what answered them (a router's tier, cost and tokens per answer).
class RoutingRecorder final : public Backend {
 public:
  explicit RoutingRecorder(Backend& inner) : inner_(inner) {}
  std::vector<LoglikelihoodResult> loglikelihood(const std::vector<LoglikelihoodRequest>& requests,
                                                 const Progress& progress, const OnScored& each) override {
    return inner_.loglikelihood(requests, progress, each);
  }
  std::vector<Generation> generate(const std::vector<GenerationSpec>& specs, const Progress& progress,
                                   const OnGenerated& each) override {
    auto out = inner_.generate(specs, progress, each);
    for (const auto& g : out) {
      if (!g.info.is_object()) continue;
      json& r = routing_;
      r["requests"] = r.value("requests", int64_t(0)) + 1;
      const std::string tier = g.info.value("tier", std::string("?"));
      if (!r.contains("tiers")) r["tiers"] = json::object();
      r["tiers"][tier] = r["tiers"].value(tier, int64_t(0)) + 1;
      r["cost_usd"] = r.value("cost_usd", 0.0) + g.info.value("cost_usd", 0.0);
      r["input_tokens"] = r.value("input_tokens", int64_t(0)) + g.info.value("input_tokens", int64_t(0));
      r["output_tokens"] = r.value("output_tokens", int64_t(0)) + g.info.value("output_tokens", int64_t(0));
      r["escalations"] = r.value("escalations", int64_t(0)) + g.info.value("escalations", int64_t(0));
    }
    return out;
  }
  std::string name() const override { return inner_.name(); }
  json identity() const override { return inner_.identity(); }
  json usage() const override { return inner_.usage(); }
  const json& routing() const { return routing_; }

 private:
  Backend& inner_;
  json routing_ = json::object();
};

}  // namespace

json run_task(Backend& backend, const TaskOptions& options, const Progress& progress) {
  const auto start = std::chrono::steady_clock::now();
  std::unique_ptr<CachingBackend> cached;
  if (options.cache) {
    const json scope = {{"task", task_name(options.task)},
                        {"data_sha256", file_sha256(options.data_path)},
                        {"fewshot_sha256", options.fewshot_path.empty() ? "" : file_sha256(options.fewshot_path)},
                        {"seed", options.seed}};
    cached = std::make_unique<CachingBackend>(backend, *options.cache, scope);
  }
  RoutingRecorder recorder(cached ? static_cast<Backend&>(*cached) : backend);
  Context cx{recorder, options, progress, {}, std::mt19937_64(options.seed), json::object()};
  std::vector<json> all = read_jsonl(options.data_path);
  const size_t original = all.size();
  cx.pools.docs = all;
  if (options.limit > 0 && size_t(options.limit) < cx.pools.docs.size()) cx.pools.docs.resize(size_t(options.limit));
  if (!options.fewshot_path.empty()) {
    cx.pools.fewshot = read_jsonl(options.fewshot_path);
    cx.pools.fewshot_is_docs = false;
  } else {
    cx.pools.fewshot = cx.pools.docs;
  }
  if (cx.pools.docs.empty()) fail(ErrorKind::invalid_argument, "no items to evaluate in '{}'", options.data_path);
  const char* name = task_name(options.task);
  cx.report["results"] = json::object();
  cx.report["samples"] = json::array();
  switch (options.task) {
    case TaskKind::gsm8k: run_gsm8k(cx, false); break;
    case TaskKind::gsm8k_cot: run_gsm8k(cx, true); break;
    case TaskKind::arc_challenge: run_arc(cx); break;
    case TaskKind::mmlu_pro: run_mmlu_pro(cx); break;
    case TaskKind::humaneval: run_humaneval(cx); break;
    case TaskKind::custom: run_custom(cx); break;
  }
  for (auto& [task, r] : cx.report["results"].items()) r["alias"] = task;
  cx.report["n-samples"][name] = {{"original", original}, {"effective", cx.pools.docs.size()}};
  if (cached) {
    json& c = cx.report["cache"];
    c["path"] = options.cache->path();
    c["reused"] = cached->reused();
    c["computed"] = cached->computed();
  }
  if (!recorder.routing().empty()) {
    json routing = recorder.routing();
    const double n = double(routing.value("requests", int64_t(1)));
    json shares = json::object();
    for (const auto& [tier, count] : routing["tiers"].items()) shares[tier] = count.get<double>() / n;
    routing["tier_share"] = shares;
    routing["cost_usd_per_request"] = routing.value("cost_usd", 0.0) / n;
    cx.report["routing"] = routing;
  }
  cx.report["task"] = name;
  cx.report["backend"] = backend.name();
  cx.report["total_evaluation_time_seconds"] =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return std::move(cx.report);
}

}  // namespace slm::eval
