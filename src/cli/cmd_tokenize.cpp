// slm tokenize PATH (--text | stdin) [--jsonl] ; slm detokenize PATH --ids 1,2,3
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common.hpp"
#include "slm/util/error.hpp"

namespace slm::cli {
namespace {
struct TokenizeArgs {
  std::string path;
  std::string text;
  bool text_given = false;
  bool jsonl = false;
  bool no_special = false;
  bool no_parse_special = false;
};
struct DetokenizeArgs {
  std::string path;
  std::string ids;
  bool skip_special = false;
};
}  // namespace

Command add_tokenize(CLI::App& app) {
  auto args = std::make_shared<TokenizeArgs>();
  CLI::App* cmd = app.add_subcommand("tokenize", "Print the token ids of a text as a JSON array");
  cmd->add_option("path", args->path, "GGUF file, Hugging Face folder, tokenizer.json or store name (default: the demo model)");
  cmd->add_option("--text", args->text, "Text to tokenize (default: standard input)");
  cmd->add_flag("--jsonl", args->jsonl, "Each input line is a JSON string; print one id array per line");
  cmd->add_flag("--no-special", args->no_special, "Do not add BOS/EOS tokens");
  cmd->add_flag("--no-parse-special", args->no_parse_special, "Tokenize special-token text as plain text");
  return {cmd, [args, cmd]() {
            const Tokenizer tok = Tokenizer::load(resolve_model_path(args->path));
            const bool add = !args->no_special, parse = !args->no_parse_special;
            const bool from_text = cmd->count("--text") > 0;
            if (!args->jsonl) {
              const std::string text = from_text ? args->text : read_stdin();
              std::cout << ids_to_json(tok.encode(text, add, parse)) << "\n";
              return 0;
            }
            std::istringstream lines(from_text ? args->text : read_stdin());
            std::string line;
            int64_t number = 0;
            while (std::getline(lines, line)) {
              ++number;
              if (line.empty()) continue;
              nlohmann::json j;
              try {
                j = nlohmann::json::parse(line);
              } catch (const nlohmann::json::exception& e) {
                fail(ErrorKind::invalid_argument, "line {}: expected a JSON string, found invalid JSON ({})", number, e.what());
              }
              if (!j.is_string()) {
                fail(ErrorKind::invalid_argument, "line {}: expected a JSON string, found {}", number, j.type_name());
              }
              std::cout << ids_to_json(tok.encode(j.get<std::string>(), add, parse)) << "\n";
            }
            return 0;
          }};
}

Command add_detokenize(CLI::App& app) {
  auto args = std::make_shared<DetokenizeArgs>();
  CLI::App* cmd = app.add_subcommand("detokenize", "Print the text of token ids");
  cmd->add_option("path", args->path, "GGUF file, Hugging Face folder, tokenizer.json or store name (default: the demo model)");
  cmd->add_option("--ids", args->ids, "Token ids, e.g. 1,2,3 or [1, 2, 3]")->required();
  cmd->add_flag("--skip-special", args->skip_special, "Leave out control tokens");
  return {cmd, [args]() {
            const Tokenizer tok = Tokenizer::load(resolve_model_path(args->path));
            const auto ids = parse_ids(args->ids);
            for (int32_t id : ids) {
              if (id < 0 || size_t(id) >= tok.vocab_size()) {
                fail(ErrorKind::invalid_argument, "token id {} is outside the vocabulary [0, {})", id, tok.vocab_size());
              }
            }
            const std::string text = tok.decode(ids, args->skip_special);
            std::cout << text << "\n";
            return 0;
          }};
}

}  // namespace slm::cli
