// slm redact [--model M] [--entities ...] [--operator replace|mask|hash|redact] [--salt S] [--json] FILE|-
// slm redact --eval CORPUS.jsonl [--json] [--entities ...] [--model M]
// Personal data found by the rule detectors (and, when a model is given, PERSON / LOCATION /
// ORGANIZATION named by the model) replaced in the text; or the detectors scored against a
// labelled corpus (precision, recall and F2 per type, exact and overlapping spans).
#include <fmt/ranges.h>

#include <algorithm>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "common.hpp"
#include "slm/engine/scheduler.hpp"
#include "slm/tasks/ner.hpp"
#include "slm/tasks/pii.hpp"
#include "slm/tasks/pii_eval.hpp"
#include "slm/util/error.hpp"

namespace slm::cli {
namespace {
struct RedactArgs {
  std::string input;
  std::string eval;
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
  cmd->add_option("input", args->input, "Text file, or - for standard input");
  cmd->add_option("--eval", args->eval,
                  "Score the detectors on a labelled corpus (JSONL of {text, entities:[{type,start,end}]}): precision, "
                  "recall and F2 per type");
  cmd->add_option("--model", args->model,
                  "Model for PERSON/LOCATION/ORGANIZATION (GGUF, folder or store name); without it only the rule detectors run");
  cmd->add_option("--entities", args->entities, "Entity types to look for (default: all rule types, plus the model's when --model is given)")
      ->delimiter(',')
      ->allow_extra_args(false);
  cmd->add_option("--operator", args->op, "replace (<TYPE>), mask (* per character), hash (salted SHA-256 prefix), redact (remove)")
      ->check(CLI::IsMember({"replace", "mask", "hash", "redact"}));
  cmd->add_option("--salt", args->salt, "Salt for --operator hash");
  cmd->add_option("--min-score", args->min_score, "Drop findings scored below this");
  cmd->add_flag("--json", args->json, R"(Print {"text": ..., "entities": [{"type","start","end","score","source"}]})");
  cmd->add_flag("--chat", args->chat, "Wrap the model's prompt in its chat template");
  cmd->add_option("-t,--threads", args->threads, "Threads (0: one per core)");
  return {cmd, [args]() {
            if (args->eval.empty() && args->input.empty()) fail(ErrorKind::invalid_argument, "expected an input file (or - for standard input)");
            if (!args->eval.empty() && !args->input.empty()) fail(ErrorKind::invalid_argument, "expected either an input file or --eval, found both");
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
            const bool want_model = !args->model.empty() && (args->entities.empty() || !model_types.empty());
            if (!model_types.empty() && args->model.empty()) {
              fail(ErrorKind::invalid_argument, "entity types {} need --model", fmt::format("{}", fmt::join(model_types, ",")));
            }
            std::unique_ptr<Scheduler> scheduler;
            if (want_model) {
              set_threads(args->threads);
              SchedulerOptions so;
              so.max_sequences = 1;
              so.n_ctx = 4096;
              scheduler = std::make_unique<Scheduler>(load_model(args->model), so);
            }
            auto find = [&](const std::string& text) {
              std::vector<tasks::Entity> found;
              if (!only_model) found = tasks::detect_rules(text, rule_types);
              if (scheduler) {
                auto more = tasks::detect_model(*scheduler, text, model_types, 0.6, args->chat);
                found.insert(found.end(), more.begin(), more.end());
              }
              std::erase_if(found, [&](const tasks::Entity& e) { return e.score < args->min_score; });
              return tasks::resolve_overlaps(std::move(found));
            };
            if (!args->eval.empty()) {
              const auto corpus = tasks::read_pii_corpus(read_file(args->eval));
              std::vector<std::string> types;
              if (!only_model) types = rule_types.empty() ? tasks::rule_entity_types() : rule_types;
              if (want_model) {
                for (const auto& t : model_types.empty() ? tasks::model_entity_types() : model_types) types.push_back(t);
              }
              std::vector<std::vector<tasks::LabeledSpan>> gold, predicted;
              for (const auto& record : corpus) {
                gold.push_back(record.spans);
                predicted.emplace_back();
                for (const auto& e : find(record.text)) predicted.back().push_back({e.type, e.start, e.end});
              }
              const auto exact = tasks::score_spans(gold, predicted, tasks::SpanMatch::exact, types);
              const auto overlap = tasks::score_spans(gold, predicted, tasks::SpanMatch::overlap, types);
              if (args->json) {
                std::cout << tasks::pii_report_json(corpus.size(), exact, overlap).dump() << "\n";
              } else {
                std::cout << tasks::pii_report_text(corpus.size(), exact, overlap);
              }
              return 0;
            }
            const std::string text = args->input == "-" ? read_stdin() : read_file(args->input);
            std::vector<tasks::Entity> found = find(text);
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
