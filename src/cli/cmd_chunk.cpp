// slm chunk [--max-tokens N --overlap N] [--by tokens|structure|semantic] [--model M] FILE|-
// Chunks measured in the model's tokens, one JSON object per line.
#include <iostream>
#include <nlohmann/json.hpp>

#include "common.hpp"
#include "slm/engine/scheduler.hpp"
#include "slm/tasks/chunk.hpp"
#include "slm/util/error.hpp"

namespace slm::cli {
namespace {
struct ChunkArgs {
  std::string input;
  std::string model;
  int64_t max_tokens = 256;
  int64_t overlap = 0;
  std::string by = "structure";
  double percentile = 0.85;
  bool no_text = false;
  int threads = 0;
};
}  // namespace

Command add_chunk(CLI::App& app) {
  auto args = std::make_shared<ChunkArgs>();
  CLI::App* cmd = app.add_subcommand("chunk", "Split a document into chunks measured in the model's tokens (JSONL out)");
  cmd->add_option("input", args->input, "Text or Markdown file, or - for standard input")->required();
  cmd->add_option("--model", args->model, "Model whose tokenizer measures the chunks (and embeds, for semantic; default: the demo model)");
  cmd->add_option("--max-tokens", args->max_tokens, "Most tokens in one chunk");
  cmd->add_option("--overlap", args->overlap, "Tokens shared by neighbouring chunks (tokens), or trailing blocks up to this many tokens (structure)");
  cmd->add_option("--by", args->by, "tokens, structure (Markdown headings, paragraphs, sentences, code blocks) or semantic")
      ->check(CLI::IsMember({"tokens", "structure", "semantic"}));
  cmd->add_option("--percentile", args->percentile, "semantic: quantile of sentence distances above which a chunk ends");
  cmd->add_flag("--no-text", args->no_text, "Leave the chunk text out of the output (offsets only)");
  cmd->add_option("-t,--threads", args->threads, "Threads (0: one per core)");
  return {cmd, [args]() {
            set_threads(args->threads);
            const std::string text = args->input == "-" ? read_stdin() : read_file(args->input);
            auto model = load_model(args->model);
            const Tokenizer& tok = require_tokenizer(*model);
            tasks::ChunkOptions options;
            options.max_tokens = args->max_tokens;
            options.overlap = args->overlap;
            options.by = tasks::parse_chunk_by(args->by);
            options.percentile = args->percentile;
            std::unique_ptr<Scheduler> scheduler;
            tasks::EmbedFn embed;
            if (options.by == tasks::ChunkBy::semantic) {
              SchedulerOptions so;
              so.max_sequences = 1;
              so.n_ctx = std::min<int64_t>(4096, std::max<int64_t>(args->max_tokens + 8, 512));
              scheduler = std::make_unique<Scheduler>(model, so);
              embed = [&](std::string_view s) {
                auto ids = tok.encode(s, true, false);
                if (ids.empty()) ids.push_back(0);
                return scheduler->embed(std::move(ids), Pooling::mean, true).get();
              };
            }
            const auto chunks = tasks::chunk_text(text, tok, options, embed);
            for (size_t i = 0; i < chunks.size(); ++i) {
              const auto& c = chunks[i];
              nlohmann::ordered_json j;
              j["index"] = i;
              j["start"] = c.start;
              j["end"] = c.end;
              j["tokens"] = c.tokens;
              j["section"] = c.section;
              if (!args->no_text) j["text"] = text.substr(c.byte_start, c.byte_end - c.byte_start);
              std::cout << j.dump() << "\n";
            }
            return 0;
          }};
}

}  // namespace slm::cli
