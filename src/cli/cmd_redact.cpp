// slm redact [--model M] [--entities ...] [--operator replace|mask|hash|redact] [--salt S] [--json] FILE|-
// Personal data found by the rule detectors (and, when a model is given, PERSON / LOCATION /
// ORGANIZATION named by the model) replaced in the text.
#include <fmt/ranges.h>

#include <algorithm>
#include <iostream>
#include <nlohmann/json.hpp>

#include "common.hpp"
#include "slm/engine/scheduler.hpp"
#include "slm/tasks/ner.hpp"
#include "slm/tasks/pii.hpp"
#include "slm/util/error.hpp"

namespace slm::cli {
namespace {
struct RedactArgs {
  std::string input;
  std::string model;
  std::vector<std::string> entities;
  std::string op = "replace";
  std::string salt;
  double min_score = 0.0;
  bool json = false;
  bool chat = false;
  int threads = 0;
};
}  // namespace

Command add_redact(CLI::App& app) {
  auto args = std::make_shared<RedactArgs>();
  CLI::App* cmd = app.add_subcommand("redact", "Find personal data (e-mail, phone, card, IBAN, SSN, IP, URL, date, names) and replace it");
  cmd->add_option("input", args->input, "Text file, or - for standard input")->required();
  cmd->add_option("--model", args->model,
                  "Model for PERSON/LOCATION/ORGANIZATION (GGUF, folder or store name); without it only the rule detectors run");
  cmd->add_option("--entities", args->entities, "Entity types to look for (default: all rule types, plus the model's when --model is given)")
      ->delimiter(',');
  cmd->add_option("--operator", args->op, "replace (<TYPE>), mask (* per character), hash (salted SHA-256 prefix), redact (remove)")
      ->check(CLI::IsMember({"replace", "mask", "hash", "redact"}));
  cmd->add_option("--salt", args->salt, "Salt for --operator hash");
  cmd->add_option("--min-score", args->min_score, "Drop findings scored below this");
  cmd->add_flag("--json", args->json, R"(Print {"text": ..., "entities": [{"type","start","end","score","source"}]})");
  cmd->add_flag("--chat", args->chat, "Wrap the model's prompt in its chat template");
  cmd->add_option("-t,--threads", args->threads, "Threads (0: one per core)");
  return {cmd, [args]() {
            const std::string text = args->input == "-" ? read_stdin() : read_file(args->input);
            const auto op = tasks::parse_operator(args->op);
            std::vector<std::string> rule_types, model_types;
            for (const auto& e : args->entities) {
              const auto& mt = tasks::model_entity_types();
              if (std::find(mt.begin(), mt.end(), e) != mt.end()) {
                model_types.push_back(e);
              } else {
                rule_types.push_back(e);
              }
            }
            const bool only_model = !args->entities.empty() && rule_types.empty();
            std::vector<tasks::Entity> found;
            if (!only_model) found = tasks::detect_rules(text, rule_types);
            const bool want_model = !args->model.empty() && (args->entities.empty() || !model_types.empty());
            if (!model_types.empty() && args->model.empty()) {
              fail(ErrorKind::invalid_argument, "entity types {} need --model", fmt::format("{}", fmt::join(model_types, ",")));
            }
            if (want_model) {
              set_threads(args->threads);
              auto model = load_model(args->model);
              SchedulerOptions so;
              so.max_sequences = 1;
              so.n_ctx = 4096;
              Scheduler scheduler(model, so);
              auto more = tasks::detect_model(scheduler, text, model_types, 0.6, args->chat);
              found.insert(found.end(), more.begin(), more.end());
            }
            std::erase_if(found, [&](const tasks::Entity& e) { return e.score < args->min_score; });
            found = tasks::resolve_overlaps(std::move(found));
            const std::string out = tasks::apply_operator(text, found, op, args->salt);
            if (args->json) {
              nlohmann::ordered_json j;
              j["text"] = out;
              j["entities"] = nlohmann::ordered_json::array();
              for (const auto& e : found) {
                j["entities"].push_back({{"type", e.type}, {"start", e.start}, {"end", e.end}, {"score", e.score}, {"source", e.source}});
              }
              std::cout << j.dump() << "\n";
            } else {
              std::cout << out;
            }
            return 0;
          }};
}

}  // namespace slm::cli
