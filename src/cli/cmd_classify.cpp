// slm classify --labels a,b,c [--model M] [--prompt-template T] FILE.jsonl|-
// One label per input record, decoding constrained to the labels, with per-label probabilities.
#include <fmt/format.h>

#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>

#include "common.hpp"
#include "slm/engine/scheduler.hpp"
#include "slm/tasks/classify.hpp"
#include "slm/util/error.hpp"
#include "task_input.hpp"

namespace slm::cli {
namespace {
struct ClassifyArgs {
  std::string input;
  std::string model;
  std::vector<std::string> labels;
  std::string prompt_template;
  std::string field = "text";
  bool chat = false;
  bool no_decode = false;
  bool quiet = false;
  int32_t parallel = 8;
  int64_t ctx = 2048;
  int threads = 0;
};
}  // namespace

Command add_classify(CLI::App& app) {
  auto args = std::make_shared<ClassifyArgs>();
  CLI::App* cmd = app.add_subcommand("classify", "One label per text (JSONL in, JSONL out) with per-label probabilities");
  cmd->add_option("input", args->input, "JSONL file (objects with a text field, JSON strings or plain lines), or -")->required();
  cmd->add_option("--labels", args->labels, "The labels, comma-separated")->required()->delimiter(',');
  cmd->add_option("--model", args->model, "GGUF file, folder or store name (default: the demo model)");
  cmd->add_option("--prompt-template", args->prompt_template,
                  "Prompt with {text} and {labels}; the label follows it after a space");
  cmd->add_option("--field", args->field, "Field of the input objects that holds the text");
  cmd->add_flag("--chat", args->chat, "Wrap the prompt in the model's chat template");
  cmd->add_flag("--no-decode", args->no_decode, "Skip the constrained decoding (no \"decoded\" field)");
  cmd->add_flag("-q,--quiet", args->quiet, "No progress on stderr");
  cmd->add_option("--parallel", args->parallel, "Sequences run at once");
  cmd->add_option("-c,--ctx", args->ctx, "Context per sequence");
  cmd->add_option("-t,--threads", args->threads, "Threads (0: one per core)");
  return {cmd, [args]() {
            set_threads(args->threads);
            const auto records = parse_task_records(args->input == "-" ? read_stdin() : read_file(args->input), args->field);
            auto model = load_model(args->model);
            SchedulerOptions so;
            so.max_sequences = args->parallel;
            so.n_ctx = args->ctx;
            so.max_queue = 256;
            Scheduler scheduler(model, so);
            tasks::ClassifyOptions options;
            options.labels = args->labels;
            if (!args->prompt_template.empty()) options.prompt_template = args->prompt_template;
            options.chat = args->chat;
            options.decode = !args->no_decode;
            tasks::Classifier classifier(scheduler, options);
            const auto t0 = std::chrono::steady_clock::now();
            const size_t step = std::max<size_t>(1, size_t(args->parallel));
            size_t done = 0;
            for (size_t begin = 0; begin < records.size(); begin += step) {
              const size_t end = std::min(records.size(), begin + step);
              std::vector<std::string> texts;
              for (size_t i = begin; i < end; ++i) texts.push_back(records[i].text);
              const auto results = classifier.classify(texts);
              for (size_t i = begin; i < end; ++i) {
                const auto& r = results[i - begin];
                nlohmann::ordered_json j;
                if (!records[i].id.is_null()) j["id"] = records[i].id;
                j["label"] = r.label;
                if (options.decode) j["decoded"] = r.decoded;
                nlohmann::ordered_json probs;
                for (size_t l = 0; l < options.labels.size(); ++l) probs[options.labels[l]] = r.probs[l];
                j["probs"] = probs;
                std::cout << j.dump() << "\n";
              }
              std::cout.flush();
              done = end;
              if (!args->quiet) {
                const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
                const int width = 30;
                const int filled = int(double(width) * double(done) / double(records.size()));
                std::cerr << fmt::format("\r[{}{}] {}/{}  {:.1f} texts/s", std::string(size_t(filled), '#'),
                                         std::string(size_t(width - filled), '.'), done, records.size(),
                                         s > 0 ? double(done) / s : 0.0);
              }
            }
            if (!args->quiet) {
              const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
              std::cerr << fmt::format("\nclassified {} texts in {:.2f} s ({:.1f} texts/s)\n", records.size(), s,
                                       s > 0 ? double(records.size()) / s : 0.0);
            }
            return 0;
          }};
}

}  // namespace slm::cli
