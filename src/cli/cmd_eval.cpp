// slm eval --task T --data FILE.jsonl (--model M | --endpoint URL): benchmark scores as
// lm-evaluation-harness computes them, per-sample records and aggregates with standard errors.
#include <fmt/format.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>

#include "common.hpp"
#include "slm/eval/backend.hpp"
#include "slm/eval/tasks.hpp"
#include "slm/util/error.hpp"

namespace slm::cli {
namespace {

struct EvalArgs {
  std::string task;
  std::string data;
  std::string fewshot;
  std::string model;
  std::string endpoint;
  std::string api_key_env;
  std::string endpoint_model;
  bool completions = false;
  int64_t limit = 0;
  int shots = -1;
  uint64_t seed = 1234;
  int64_t max_tokens = -1;
  int concurrency = 4;
  int64_t ctx = 0;
  std::string output;
  bool json = false;
  bool quiet = false;
  std::string metric;
  double timeout = 10;
  int threads = 0;
};

// "[#####-----]  12/40  30%  ETA 0:42" on stderr, redrawn in place.
class ProgressBar {
 public:
  ProgressBar(size_t total, bool enabled) : total_(total), enabled_(enabled), start_(std::chrono::steady_clock::now()) {}
  void update(size_t done) {
    if (!enabled_ || total_ == 0) return;
    std::lock_guard lock(mutex_);
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double frac = double(done) / double(total_);
    const int width = 30, fill = int(frac * width);
    const double eta = done > 0 ? elapsed / double(done) * double(total_ - done) : 0;
    std::cerr << fmt::format("\r[{}{}] {}/{} {:3.0f}%  ETA {}:{:02d}  ", std::string(size_t(fill), '#'),
                             std::string(size_t(width - fill), '-'), done, total_, frac * 100, int(eta) / 60,
                             int(eta) % 60)
              << (done >= total_ ? "\n" : "") << std::flush;
  }

 private:
  size_t total_;
  bool enabled_;
  std::chrono::steady_clock::time_point start_;
  std::mutex mutex_;
};

size_t count_requests(const eval::TaskOptions& o) {
  auto docs = eval::read_jsonl(o.data_path);
  size_t n = o.limit > 0 ? std::min(docs.size(), size_t(o.limit)) : docs.size();
  if (o.task != eval::TaskKind::arc_challenge) return n;
  size_t total = 0;
  for (size_t i = 0; i < n; ++i) total += docs[i].at("choices").at("text").size();
  return total;
}

void print_table(const nlohmann::json& report) {
  std::cout << fmt::format("{:<28} {:<30} {:>8} {:>9}  {}\n", "task", "metric,filter", "value", "stderr", "95% CI");
  for (const auto& [task, r] : report.at("results").items()) {
    for (const auto& [key, value] : r.items()) {
      if (key == "alias" || key.find("_stderr,") != std::string::npos || !value.is_number()) continue;
      const size_t comma = key.find(',');
      const std::string stderr_key = key.substr(0, comma) + "_stderr" + key.substr(comma);
      const auto& se = r.contains(stderr_key) ? r.at(stderr_key) : nlohmann::json(nullptr);
      const double v = value.get<double>();
      if (se.is_number()) {
        const double s = se.get<double>();
        std::cout << fmt::format("{:<28} {:<30} {:>8.4f} {:>9.4f}  [{:.4f}, {:.4f}]\n", task, key, v, s, v - 1.96 * s,
                                 v + 1.96 * s);
      } else {
        std::cout << fmt::format("{:<28} {:<30} {:>8.4f} {:>9}  -\n", task, key, v, "N/A");
      }
    }
  }
}

}  // namespace

Command add_eval(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  CLI::App* cmd = app.add_subcommand("eval", "Benchmark scores (GSM8K, ARC-Challenge, MMLU-Pro, HumanEval, custom) as lm-evaluation-harness computes them");
  cmd->add_option("--task", a->task, "gsm8k, gsm8k_cot, arc_challenge, mmlu_pro, humaneval or custom")->required();
  cmd->add_option("--data", a->data, "JSONL file in the data set's own format")->required();
  cmd->add_option("--fewshot", a->fewshot, "JSONL file of few-shot examples (default: the data file's other items)");
  auto* model = cmd->add_option("-m,--model", a->model, "Model evaluated in this process (default: the demo model)");
  auto* endpoint = cmd->add_option("--endpoint", a->endpoint, "OpenAI-compatible base URL, e.g. http://127.0.0.1:8080/v1");
  model->excludes(endpoint);
  cmd->add_option("--api-key-env", a->api_key_env, "Environment variable holding the endpoint's API key");
  cmd->add_option("--endpoint-model", a->endpoint_model, "The \"model\" sent to the endpoint (default: none)");
  cmd->add_flag("--completions", a->completions, "Generate through /completions instead of /chat/completions");
  cmd->add_option("--limit", a->limit, "Evaluate the first N items only");
  cmd->add_option("--shots", a->shots, "Few-shot examples (default: the task's: gsm8k 5, gsm8k_cot 8, mmlu_pro 5, else 0)");
  cmd->add_option("--seed", a->seed, "Seed of few-shot sampling and generation");
  cmd->add_option("--max-tokens", a->max_tokens, "Generated tokens at most (default: the task's)");
  cmd->add_option("-C,--concurrency", a->concurrency, "Requests or sequences at once");
  cmd->add_option("-c,--ctx", a->ctx, "Context size of the in-process model (0: its trained context)");
  cmd->add_option("-o,--output", a->output, "Write the report (aggregates and per-sample records) as JSON");
  cmd->add_flag("--json", a->json, "Print the report as JSON instead of a table");
  cmd->add_flag("-q,--quiet", a->quiet, "No progress bar");
  cmd->add_option("--metric", a->metric, "custom: default metric, a name or a JSON object (see docs/eval.md)");
  cmd->add_option("--timeout", a->timeout, "humaneval: seconds each program may run");
  cmd->add_option("-t,--threads", a->threads, "Threads (0: one per core)");
  return {cmd, [a]() {
            set_threads(a->threads);
            eval::TaskOptions o;
            o.task = eval::parse_task(a->task);
            o.data_path = a->data;
            o.fewshot_path = a->fewshot;
            o.limit = a->limit;
            o.shots = a->shots;
            o.seed = a->seed;
            o.max_tokens = a->max_tokens;
            o.sandbox.timeout_s = a->timeout;
            o.sandbox.cpu_s = int64_t(a->timeout) + 1;
            if (a->concurrency < 1) fail(ErrorKind::invalid_argument, "--concurrency: expected at least 1, found {}", a->concurrency);
            if (!a->metric.empty()) {
              auto m = nlohmann::json::parse(a->metric, nullptr, false);
              o.metric = m.is_discarded() ? nlohmann::json(a->metric) : m;
            }
            std::unique_ptr<eval::Backend> backend;
            std::string described;
            if (!a->endpoint.empty()) {
              eval::EndpointOptions eo;
              eo.url = a->endpoint;
              eo.model = a->endpoint_model;
              eo.concurrency = a->concurrency;
              eo.chat = !a->completions;
              eo.seed = a->seed;
              if (!a->api_key_env.empty()) {
                const char* key = std::getenv(a->api_key_env.c_str());
                if (!key || !*key) fail(ErrorKind::invalid_argument, "--api-key-env: ${} is not set", a->api_key_env);
                eo.api_key = key;
              }
              backend = eval::make_endpoint_backend(eo);
              described = a->endpoint;
            } else {
              eval::LocalOptions lo;
              lo.concurrency = a->concurrency;
              lo.n_ctx = a->ctx;
              lo.seed = a->seed;
              described = resolve_model_path(a->model);
              backend = eval::make_local_backend(load_model(a->model), lo);
            }
            ProgressBar bar(count_requests(o), !a->quiet);
            nlohmann::json report = eval::run_task(*backend, o, [&bar](size_t done) { bar.update(done); });
            report["model"] = described;
            if (const auto usage = backend->usage(); !usage.is_null()) report["usage"] = usage;
            report["config"] = {{"limit", a->limit}, {"concurrency", a->concurrency}, {"data", a->data},
                                {"fewshot", a->fewshot}};
            if (!a->output.empty()) {
              std::ofstream out(a->output, std::ios::binary);
              out << report.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
              if (!out) fail(ErrorKind::io, "cannot write '{}'", a->output);
            }
            if (a->json) {
              nlohmann::json brief = report;
              brief.erase("samples");
              std::cout << brief.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
            } else {
              print_table(report);
            }
            return 0;
          }};
}

}  // namespace slm::cli
