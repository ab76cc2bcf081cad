// slm eval --task T --data FILE.jsonl (--model M | --endpoint URL): benchmark scores as
// lm-evaluation-harness computes them, per-sample records and aggregates with standard errors.
#include <fmt/format.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>

#include "common.hpp"
#include "slm/engine/scheduler.hpp"
#include "slm/eval/backend.hpp"
#include "slm/eval/cache.hpp"
#include "slm/eval/router_eval.hpp"
#include "slm/eval/tasks.hpp"
#include "slm/server/engine_provider.hpp"
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
  std::string cache;
  int samples = 1;
  double temperature = -1;
  std::vector<int64_t> pass_k;
  std::string judge_model;
  std::string judge_endpoint;
  std::string judge_endpoint_model;
  int judge_samples = 1;
  std::string router;
  std::vector<std::string> routes;
  std::vector<std::string> sweeps;
  bool no_baselines = false;
  std::string quality;
  std::string report_dir;
  std::string task_tag;
};

// The model's identity for the result cache: its resolved path, size and modification time.
nlohmann::json model_identity(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  nlohmann::json id = {{"path", fs::absolute(path, ec).lexically_normal().string()}};
  if (fs::is_regular_file(path, ec)) id["bytes"] = fs::file_size(path, ec);
  const auto t = fs::last_write_time(path, ec);
  if (!ec) id["mtime"] = int64_t(t.time_since_epoch().count());
  return id;
}

// In-process tiers of a router: each model loaded once, whatever the number of configurations evaluated.
router::LocalProviderFactory local_tier_factory(int64_t ctx, int parallel) {
  auto loaded = std::make_shared<std::map<std::string, std::shared_ptr<server::Provider>>>();
  auto mutex = std::make_shared<std::mutex>();
  return [loaded, mutex, ctx, parallel](const std::string& path_or_name) -> std::shared_ptr<server::Provider> {
    std::lock_guard lock(*mutex);
    const std::string path = resolve_model_path(path_or_name);
    auto& slot = (*loaded)[path];
    if (slot) return slot;
    auto model = Model::load(path);
    require_tokenizer(*model);
    SchedulerOptions options;
    if (ctx > 0) options.n_ctx = ctx;
    options.max_sequences = std::max(1, parallel);
    server::LocalModel m;
    m.id = path == path_or_name ? server::model_id_from_path(path) : path_or_name;
    m.scheduler = std::make_shared<Scheduler>(model, options);
    std::vector<server::LocalModel> models;
    models.push_back(std::move(m));
    slot = std::make_shared<server::EngineProvider>(std::move(models));
    return slot;
  };
}

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
  if (o.task == eval::TaskKind::humaneval) return n * size_t(std::max(1, o.samples));
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
  cmd->add_option("--cache", a->cache, "SQLite file of results per item: a rerun reuses finished items (resumable runs)");
  cmd->add_option("--samples", a->samples, "humaneval: samples per problem for pass@k (default 1)");
  cmd->add_option("--temperature", a->temperature, "humaneval: sampling temperature (default: 0 for one sample, 0.8 for several)");
  cmd->add_option("--pass-k", a->pass_k, "humaneval: the k of pass@k (default: 1, 10, 100 up to --samples)")->delimiter(',');
  auto* judge_model = cmd->add_option("--judge-model", a->judge_model, "custom \"judge\" metric: the grading model, in process");
  auto* judge_endpoint = cmd->add_option("--judge-endpoint", a->judge_endpoint, "custom \"judge\" metric: the grading model's OpenAI-compatible URL");
  judge_model->excludes(judge_endpoint);
  cmd->add_option("--judge-endpoint-model", a->judge_endpoint_model, "The \"model\" sent to the judge endpoint");
  cmd->add_option("--judge-samples", a->judge_samples, "Grades per answer; several give the judge's agreement (default 1)");
  auto* router_opt = cmd->add_option("--router", a->router, "Evaluate through the tier router of this configuration (in process)");
  router_opt->excludes(endpoint)->excludes(model);
  cmd->add_option("--route", a->routes, "--router: route aliases (or tiers) to evaluate as configured (default: auto)")->delimiter(',');
  cmd->add_option("--sweep", a->sweeps, "--router: PATH=V1,V2,... a configuration value to vary, e.g. policies.cascade.min_mean_logprob=-0.5,-1,-2");
  cmd->add_flag("--no-baselines", a->no_baselines, "--router: do not evaluate each tier alone");
  cmd->add_option("--quality", a->quality, "--router: the metric plotted against cost (default: the task's main metric)");
  cmd->add_option("--report-dir", a->report_dir, "--router: folder for router_eval.json, quality_cost.svg/.png and report.html");
  cmd->add_option("--task-tag", a->task_tag, "--router: task tag sent in the router's task header");
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
            if (a->samples < 1) fail(ErrorKind::invalid_argument, "--samples: expected at least 1, found {}", a->samples);
            o.samples = a->samples;
            o.temperature = a->temperature;
            o.pass_k = a->pass_k;
            o.judge_samples = a->judge_samples;
            std::unique_ptr<eval::ResultCache> cache;
            if (!a->cache.empty()) {
              cache = std::make_unique<eval::ResultCache>(a->cache);
              o.cache = cache.get();
            }
            std::unique_ptr<eval::Backend> judge;
            if (!a->judge_endpoint.empty()) {
              eval::EndpointOptions jo;
              jo.url = a->judge_endpoint;
              jo.model = a->judge_endpoint_model;
              jo.concurrency = a->concurrency;
              jo.seed = a->seed;
              if (!a->api_key_env.empty()) {  // the same key as --endpoint's
                const char* key = std::getenv(a->api_key_env.c_str());
                if (!key || !*key) fail(ErrorKind::invalid_argument, "--api-key-env: ${} is not set", a->api_key_env);
                jo.api_key = key;
              }
              judge = eval::make_endpoint_backend(jo);
            } else if (!a->judge_model.empty()) {
              eval::LocalOptions lo;
              lo.concurrency = a->concurrency;
              lo.seed = a->seed;
              const std::string path = resolve_model_path(a->judge_model);
              judge = eval::make_local_backend(load_model(a->judge_model), lo, model_identity(path));
            }
            o.judge = judge.get();
            if (!a->router.empty()) {
              eval::RouterEvalOptions ro;
              ro.config_path = a->router;
              ro.routes = a->routes;
              ro.sweeps = a->sweeps;
              ro.baselines = !a->no_baselines;
              ro.quality = a->quality;
              ro.concurrency = a->concurrency;
              ro.seed = a->seed;
              ro.task_tag = a->task_tag;
              router::RouterOptions router_options;
              router_options.local_factory = local_tier_factory(a->ctx, a->concurrency);
              const size_t total = count_requests(o);
              std::vector<std::unique_ptr<ProgressBar>> bars;
              auto progress_for = [&](const std::string& label) -> eval::Progress {
                if (!a->quiet) std::cerr << label << "\n";
                bars.push_back(std::make_unique<ProgressBar>(total, !a->quiet));
                ProgressBar* bar = bars.back().get();
                return [bar](size_t done) { bar->update(done); };
              };
              const nlohmann::json summary = eval::run_router_evaluation(ro, o, router_options, progress_for);
              for (const auto& p : summary.at("points")) {
                if (p.contains("cache")) {
                  std::cerr << fmt::format("{}: reused {} of {} results from {}\n", p.at("label").get<std::string>(),
                                           p.at("cache").at("reused").get<int64_t>(),
                                           p.at("cache").at("reused").get<int64_t>() + p.at("cache").at("computed").get<int64_t>(),
                                           a->cache);
                }
              }
              if (!a->output.empty()) {
                std::ofstream out(a->output, std::ios::binary);
                out << summary.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
                if (!out) fail(ErrorKind::io, "cannot write '{}'", a->output);
              }
              const std::string table = a->report_dir.empty() ? eval::router_table(summary)
                                                              : eval::write_router_report(summary, a->report_dir);
              if (a->json) {
                std::cout << summary.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
              } else {
                std::cout << table;
              }
              return 0;
            }
            std::unique_ptr<eval::Backend> backend;
            std::string described;
            std::string backend_api_key;
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
                backend_api_key = key;
              }
              backend = eval::make_endpoint_backend(eo);
              described = a->endpoint;
            } else {
              eval::LocalOptions lo;
              lo.concurrency = a->concurrency;
              lo.n_ctx = a->ctx;
              lo.seed = a->seed;
              described = resolve_model_path(a->model);
              backend = eval::make_local_backend(load_model(a->model), lo, model_identity(described));
            }
            // An endpoint that is an slm router: its stats before and after tell which tiers answered.
            nlohmann::json stats_before;
            if (!a->endpoint.empty()) stats_before = eval::fetch_router_stats(a->endpoint, backend_api_key);
            ProgressBar bar(count_requests(o), !a->quiet);
            nlohmann::json report = eval::run_task(*backend, o, [&bar](size_t done) { bar.update(done); });
            if (!stats_before.is_null()) {
              const nlohmann::json stats_after = eval::fetch_router_stats(a->endpoint, backend_api_key);
              if (!stats_after.is_null()) report["routing"] = eval::routing_from_stats(stats_before, stats_after);
            }
            report["model"] = described;
            if (report.contains("cache")) {
              const auto& c = report.at("cache");
              std::cerr << fmt::format("reused {} of {} results from {}\n", c.at("reused").get<int64_t>(),
                                       c.at("reused").get<int64_t>() + c.at("computed").get<int64_t>(), a->cache);
            }
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
