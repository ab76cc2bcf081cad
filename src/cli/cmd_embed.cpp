// slm embed [--model M] [--pooling cls|mean|last] [--normalize|--no-normalize] TEXT...|FILE.jsonl|-
// One embedding per input as JSONL ({"index", "id"?, "tokens", "embedding"}); throughput on stderr.
#include <fmt/format.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "common.hpp"
#include "slm/tasks/embed.hpp"
#include "slm/util/error.hpp"
#include "task_input.hpp"

namespace slm::cli {
namespace {
struct EmbedArgs {
  std::vector<std::string> inputs;
  std::string model;
  std::string pooling;
  std::string field = "text";
  bool normalize = false;
  bool no_normalize = false;
  bool quiet = false;
  int64_t max_tokens = 0;
  int64_t batch_tokens = 4096;
  int threads = 0;
};
}  // namespace

Command add_embed(CLI::App& app) {
  auto args = std::make_shared<EmbedArgs>();
  CLI::App* cmd = app.add_subcommand("embed", "Embeddings of texts (JSONL out): BERT-family encoders and decoder embedding models");
  cmd->add_option("inputs", args->inputs,
                  "Texts, or one JSONL file (objects with a text field, JSON strings or plain lines), or -")
      ->required();
  cmd->add_option("--model", args->model, "Model folder, GGUF file or store name (default: the demo model)");
  cmd->add_option("--pooling", args->pooling, "cls, mean or last (default: the model's own, else mean)");
  cmd->add_flag("--normalize", args->normalize, "L2-normalize (default: the model's own, else yes)");
  cmd->add_flag("--no-normalize", args->no_normalize, "Do not L2-normalize");
  cmd->add_option("--field", args->field, "Field of the input objects that holds the text");
  cmd->add_option("--max-tokens", args->max_tokens, "Truncate inputs to this many tokens (0: the model's limit)");
  cmd->add_option("--batch-tokens", args->batch_tokens, "Encoder: tokens per batched forward");
  cmd->add_flag("-q,--quiet", args->quiet, "No throughput line on stderr");
  cmd->add_option("-t,--threads", args->threads, "Threads (0: one per core)");
  return {cmd, [args]() {
            if (args->normalize && args->no_normalize) {
              fail(ErrorKind::invalid_argument, "--normalize and --no-normalize exclude each other");
            }
            tasks::EmbedOptions options;
            if (!args->pooling.empty()) options.pooling = parse_pooling(args->pooling);
            if (args->normalize) options.normalize = true;
            if (args->no_normalize) options.normalize = false;
            options.max_tokens = args->max_tokens;
            options.batch_tokens = args->batch_tokens;
            set_threads(args->threads);
            std::vector<TaskRecord> records;
            const auto& in = args->inputs;
            if (in.size() == 1 && (in[0] == "-" || std::filesystem::is_regular_file(in[0]))) {
              records = parse_task_records(in[0] == "-" ? read_stdin() : read_file(in[0]), args->field);
            } else {
              for (size_t i = 0; i < in.size(); ++i) records.push_back({in[i], nullptr, i + 1});
            }
            const auto t_load = std::chrono::steady_clock::now();
            tasks::Embedder embedder(resolve_model_path(args->model), options);
            const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_load).count();
            if (!args->quiet && args->pooling.empty() && embedder.pooling_source().empty()) {
              std::cerr << fmt::format("slm: the model's files name no pooling (modules.json, 1_Pooling/config.json or a GGUF "
                                       "pooling_type): {} pooling; --pooling chooses another\n",
                                       pooling_name(embedder.pooling()));
            }
            std::vector<std::string> texts;
            texts.reserve(records.size());
            for (const auto& r : records) texts.push_back(r.text);
            const auto t0 = std::chrono::steady_clock::now();
            const std::clock_t cpu0 = std::clock();
            const auto out = embedder.embed(texts);
            const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            const double cpu_s = double(std::clock() - cpu0) / CLOCKS_PER_SEC;
            int64_t tokens = 0, truncated = 0;
            for (size_t i = 0; i < out.size(); ++i) {
              nlohmann::ordered_json j;
              j["index"] = i;
              if (!records[i].id.is_null()) j["id"] = records[i].id;
              j["tokens"] = out[i].tokens;
              j["embedding"] = out[i].vector;
              std::cout << j.dump() << "\n";
              tokens += out[i].tokens;
              truncated += out[i].truncated ? 1 : 0;
            }
            std::cout.flush();
            if (!args->quiet) {
              std::cerr << fmt::format(
                  "embedded {} texts ({} tokens, {} truncated to {}) with {} pooling{} in {:.3f} s: {:.1f} embeddings/s, "
                  "{:.0f} tokens/s; {:.3f} s of CPU time ({} model, dim {}, loaded in {:.2f} s)\n",
                  out.size(), tokens, truncated, embedder.max_tokens(), pooling_name(embedder.pooling()),
                  embedder.normalize() ? ", normalized" : "", s, s > 0 ? double(out.size()) / s : 0.0,
                  s > 0 ? double(tokens) / s : 0.0, cpu_s, embedder.is_encoder() ? "encoder" : "decoder", embedder.dim(), load_s);
            }
            return 0;
          }};
}

}  // namespace slm::cli
