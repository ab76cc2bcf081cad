// slm extract --schema schema.json [--model M] FILE|-
// JSON that validates against the schema, one object per input record (JSONL out).
#include <fmt/format.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "common.hpp"
#include "slm/engine/scheduler.hpp"
#include "slm/tasks/extract.hpp"
#include "slm/util/error.hpp"
#include "task_input.hpp"

namespace slm::cli {
namespace {
struct ExtractArgs {
  std::string input;
  std::string schema;
  std::string model;
  std::string prompt_template;
  std::string field = "text";
  bool whole = false;
  bool chat = false;
  bool wrap = false;
  int64_t max_tokens = 512;
  int32_t attempts = 3;
  int32_t parallel = 8;
  int64_t ctx = 2048;
  int threads = 0;
};
}  // namespace

Command add_extract(CLI::App& app) {
  auto args = std::make_shared<ExtractArgs>();
  CLI::App* cmd = app.add_subcommand("extract", "Extract JSON that validates against a JSON schema (grammar-constrained)");
  cmd->add_option("input", args->input, "JSONL records (like classify) or, with --whole, one text; - for standard input")->required();
  cmd->add_option("--schema", args->schema, "JSON schema file")->required();
  cmd->add_option("--model", args->model, "GGUF file, folder or store name (default: the demo model)");
  cmd->add_option("--prompt-template", args->prompt_template, "Prompt with {text} and {schema}");
  cmd->add_option("--field", args->field, "Field of the input objects that holds the text");
  cmd->add_flag("--whole", args->whole, "The input is one text, not JSONL");
  cmd->add_flag("--wrap", args->wrap, R"(Print {"id", "value", "errors", "attempts"} per record instead of the bare value)");
  cmd->add_flag("--chat", args->chat, "Wrap the prompt in the model's chat template");
  cmd->add_option("-n,--max-tokens", args->max_tokens, "Generated tokens per attempt");
  cmd->add_option("--attempts", args->attempts, "Attempts for an output that did not finish");
  cmd->add_option("--parallel", args->parallel, "Sequences run at once");
  cmd->add_option("-c,--ctx", args->ctx, "Context per sequence");
  cmd->add_option("-t,--threads", args->threads, "Threads (0: one per core)");
  return {cmd, [args]() {
            set_threads(args->threads);
            const std::string data = args->input == "-" ? read_stdin() : read_file(args->input);
            std::vector<TaskRecord> records;
            if (args->whole) {
              records.push_back({data, nullptr, 1});
            } else {
              records = parse_task_records(data, args->field);
            }
            const auto schema = nlohmann::ordered_json::parse(read_file(args->schema), nullptr, false);
            if (schema.is_discarded()) fail(ErrorKind::invalid_argument, "expected a JSON schema in '{}', found text that is not JSON", args->schema);
            auto model = load_model(args->model);
            SchedulerOptions so;
            so.max_sequences = args->parallel;
            so.n_ctx = args->ctx;
            Scheduler scheduler(model, so);
            tasks::ExtractOptions options;
            options.schema = schema;
            if (!args->prompt_template.empty()) options.prompt_template = args->prompt_template;
            options.chat = args->chat;
            options.max_tokens = args->max_tokens;
            options.attempts = args->attempts;
            tasks::Extractor extractor(scheduler, options);
            std::vector<std::string> texts;
            for (const auto& r : records) texts.push_back(r.text);
            const auto results = extractor.extract(texts);
            int failed = 0;
            for (size_t i = 0; i < results.size(); ++i) {
              const auto& r = results[i];
              if (!r.value) {
                ++failed;
                std::cerr << fmt::format("slm: record at line {}: no valid output after {} attempts: {}\n", records[i].line,
                                         r.attempts, r.errors.empty() ? "" : r.errors.front());
              }
              if (args->wrap) {
                nlohmann::ordered_json j;
                if (!records[i].id.is_null()) j["id"] = records[i].id;
                j["value"] = r.value ? nlohmann::ordered_json::parse(r.value->dump()) : nlohmann::ordered_json();
                j["errors"] = r.errors;
                j["attempts"] = r.attempts;
                std::cout << j.dump() << "\n";
              } else if (r.value) {
                // The generated text itself: it keeps the schema's member order.
                std::cout << nlohmann::ordered_json::parse(r.raw).dump() << "\n";
              } else {
                std::cout << "null\n";
              }
            }
            return failed == 0 ? 0 : 1;
          }};
}

}  // namespace slm::cli
