// slm route explain --config router.yaml "prompt": the routing decision and its reasons, without
// calling any tier.
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "common.hpp"
#include "slm/router/config.hpp"
#include "slm/router/policy.hpp"
#include "slm/router/store.hpp"
#include "slm/util/error.hpp"

namespace slm::cli {
namespace {
struct RouteArgs {
  std::string config;
  std::string prompt;
  std::string model = "auto";
  std::string task;
  bool tools = false;
  bool json_schema = false;
  bool json = false;
};
}  // namespace

Command add_route(CLI::App& app) {
  auto args = std::make_shared<RouteArgs>();
  CLI::App* cmd = app.add_subcommand("route", "Inspect the tier router's decisions");
  cmd->require_subcommand(1);
  CLI::App* explain = cmd->add_subcommand("explain", "Print which tier a prompt goes to and why, without calling any model");
  explain->add_option("--config", args->config, "Router configuration (router.yaml)")->required();
  explain->add_option("prompt", args->prompt, "The user message (default: standard input)");
  explain->add_option("--model", args->model, "Model alias the client sends")->capture_default_str();
  explain->add_option("--task", args->task, "Task tag (as the x-slm-task header or metadata.task)");
  explain->add_flag("--tools", args->tools, "The request carries tools");
  explain->add_flag("--json-schema", args->json_schema, "The request asks for JSON (response_format json_schema)");
  explain->add_flag("--json", args->json, "Print the decision as JSON");
  return {cmd, [args, explain]() {
            const router::RouterConfig config = router::load_config(args->config);
            if (!config.embedding.model_path.empty()) {
              fail(ErrorKind::unsupported, "expected hashed embeddings for route explain, found an embedding model ({}): explain runs no model",
                   config.embedding.model_path);
            }
            const std::string prompt = explain->count("prompt") ? args->prompt : read_stdin();
            nlohmann::json request{{"model", args->model}, {"messages", {{{"role", "user"}, {"content", prompt}}}}};
            if (args->tools) request["tools"] = {{{"type", "function"}, {"function", {{"name", "tool"}}}}};
            if (args->json_schema) request["response_format"] = {{"type", "json_schema"}, {"json_schema", {{"name", "answer"}, {"schema", nlohmann::json::object()}}}};
            std::map<std::string, std::string> headers;
            if (!args->task.empty()) headers[config.task_header] = args->task;
            // Logged outcomes train learned policies as at serve time, when the log exists.
            std::vector<router::LabeledPrompt> logged;
            if (config.database != ":memory:" && std::filesystem::exists(config.database)) logged = router::Store(config.database).outcomes();
            router::Policies policies(config, std::make_shared<router::HashedEmbedder>(config.embedding.dim), logged);
            // Prompt lengths as each tier counts them: its tokenizer file, an in-process model's own
            // tokenizer when the file is here (without the chat template: explain renders none), or the estimate.
            auto counters = std::make_shared<const router::TokenCounters>(router::counters_from_config(config));
            const router::RouteInput input = router::route_input(request, headers, config.task_header, counters);
            const router::Decision d = policies.decide(input);
            if (args->json) {
              nlohmann::json j = d.to_json();
              for (const auto& t : config.tiers) j["prompt_tokens"][t.name] = input.tokens_for(t.name);
              std::cout << j.dump(2) << "\n";
              return 0;
            }
            std::cout << "tier: " << d.tier << "\n";
            if (!d.policy.empty()) std::cout << "policy: " << d.policy << "\n";
            if (d.cascade) {
              std::string chain;
              for (const auto& t : d.cascade->cascade_tiers) chain += (chain.empty() ? "" : " -> ") + t;
              std::cout << "cascade: " << chain << "\n";
            }
            std::cout << "reasons:\n";
            for (const auto& r : d.reasons) std::cout << "  - " << r << "\n";
            std::cout << "prompt tokens:\n";
            for (const auto& t : config.tiers) {
              std::cout << "  " << t.name << ": " << input.tokens_for(t.name) << " (" << input.tokens->how(t.name) << ")\n";
            }
            return 0;
          }};
}

}  // namespace slm::cli
