// A task evaluated through the tier router: each request goes to an in-process Router (the same one
// `slm serve --config` runs), whose log gives the tier that answered and what it cost. A sweep runs
// the task once per router configuration (overrides of the YAML at given paths, such as a cascade's
// threshold or the learned policy's target share, and each tier alone as a baseline) and reports
// quality against cost and the share of requests each tier served.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "slm/eval/backend.hpp"
#include "slm/eval/tasks.hpp"
#include "slm/router/config.hpp"
#include "slm/router/router.hpp"

namespace slm::eval {

// "PATH=VALUE": PATH is dot-separated keys and list indices into the YAML document
// ("policies.cascade.min_mean_logprob"); VALUE is YAML (a number, a string, a list).
using YamlOverride = std::pair<std::string, std::string>;

// The router configuration at `path` with `overrides` applied; relative file names resolved
// against its folder, as load_config does. Also returns the YAML text parsed (for identity).
router::RouterConfig load_router_config(const std::string& path, const std::vector<YamlOverride>& overrides,
                                        std::string* effective_yaml = nullptr);

struct RouterBackendOptions {
  std::string route = "auto";  // the "model" sent: a route alias or a tier name
  int32_t concurrency = 4;
  uint64_t seed = 1234;
  double timeout_s = 600;
  std::string task_tag;        // sent in the configuration's task header when not empty
};

// Generation through the router's chat endpoint, log-likelihoods through its completions (echo +
// logprobs); each Generation's info holds {"tier", "cost_usd", "input_tokens", "output_tokens",
// "escalations"} read from the router's log. The router's log must be a file (not ":memory:").
std::unique_ptr<Backend> make_router_backend(std::shared_ptr<router::Router> router, const RouterBackendOptions& options,
                                             nlohmann::json identity);

// One configuration of a sweep.
struct SweepPoint {
  std::string label;
  std::string series;  // points of one series share a line in the plot
  std::string route;
  std::vector<YamlOverride> overrides;
};

struct RouterEvalOptions {
  std::string config_path;
  std::vector<std::string> routes;  // aliases to evaluate as configured (default: "auto" when routed, else the first)
  std::vector<std::string> sweeps;  // "PATH=V1,V2,..." each a series
  bool baselines = true;            // each tier alone
  std::string quality;              // metric key (default: the task's main metric)
  int32_t concurrency = 4;
  uint64_t seed = 1234;
  std::string task_tag;
};

// The points a sweep evaluates, in order: each route as configured, each sweep value, each tier.
std::vector<SweepPoint> sweep_points(const RouterEvalOptions& options, const router::RouterConfig& config);

// The task's main metric in a report ("score,none", "exact_match,strict-match", "acc,none",
// "exact_match,custom-extract", "pass@1,create_test").
std::string main_metric(const nlohmann::json& report);

// Runs the task at every point. `progress_for(point label, total)` makes a progress callback per point.
nlohmann::json run_router_evaluation(const RouterEvalOptions& options, const TaskOptions& task,
                                     const router::RouterOptions& router_options,
                                     const std::function<Progress(const std::string&)>& progress_for = {});

// An endpoint that is an slm router (`slm serve --config`): its GET /router/stats (per tier requests,
// cost, tokens), or null when the endpoint has none or is not plain HTTP.
nlohmann::json fetch_router_stats(const std::string& base_url, const std::string& api_key, double timeout_s = 10);
// What the requests between two stats snapshots cost and where they went: the "routing" object of a
// report (requests, tiers, tier_share, cost_usd, cost_usd_per_request, tokens, escalations).
nlohmann::json routing_from_stats(const nlohmann::json& before, const nlohmann::json& after);

// Writes router_eval.json, quality_cost.svg, quality_cost.png and report.html into `dir`
// (created when missing); returns the table printed for people.
std::string write_router_report(const nlohmann::json& summary, const std::string& dir);
std::string router_table(const nlohmann::json& summary);

}  // namespace slm::eval
