// slm template MODEL --messages FILE [--tools FILE] [--no-generation-prompt]
//                    [--enable-thinking true|false] [--chat-template FILE]
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "common.hpp"
#include "slm/tokenizer/chat_template.hpp"
#include "slm/util/error.hpp"

namespace slm::cli {
namespace {

struct TemplateArgs {
  std::string model;
  std::string messages;
  std::string tools;
  std::string enable_thinking;
  std::string chat_template;
  bool no_generation_prompt = false;
};

nlohmann::ordered_json read_json(const std::string& path, const char* what) {
  const std::string text = path == "-" ? read_stdin() : read_file(path);
  try {
    return nlohmann::ordered_json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorKind::invalid_argument, "{} '{}': expected JSON, found invalid JSON ({})", what, path, e.what());
  }
}

}  // namespace

Command add_template(CLI::App& app) {
  auto args = std::make_shared<TemplateArgs>();
  CLI::App* cmd = app.add_subcommand("template", "Print the prompt a model's chat template makes of a conversation");
  cmd->add_option("model", args->model, "GGUF file, Hugging Face folder, tokenizer.json or store name (default: the demo model)");
  cmd->add_option("--messages", args->messages,
                  "JSON file ('-': standard input): an array of messages, or an object with \"messages\" (and \"tools\")")
      ->required();
  cmd->add_option("--tools", args->tools, "JSON file with an array of tool definitions");
  cmd->add_flag("--no-generation-prompt", args->no_generation_prompt, "Do not open an assistant turn at the end");
  cmd->add_option("--enable-thinking", args->enable_thinking, "Pass enable_thinking to the template (true or false)")
      ->check(CLI::IsMember({"true", "false"}));
  cmd->add_option("--chat-template", args->chat_template, "Jinja file to use instead of the model's own template");
  return {cmd, [args]() {
            const Tokenizer tok = Tokenizer::load(resolve_model_path(args->model));
            std::string source;
            if (!args->chat_template.empty()) {
              source = read_file(args->chat_template);
            } else {
              source = tok.data().chat_template;
              if (source.empty()) {
                fail(ErrorKind::invalid_argument,
                     "'{}' has no chat template; give one with --chat-template FILE", args->model);
              }
            }
            nlohmann::ordered_json input = read_json(args->messages, "--messages");
            nlohmann::ordered_json messages = input;
            std::optional<nlohmann::ordered_json> tools;
            if (input.is_object()) {
              if (!input.contains("messages")) {
                fail(ErrorKind::invalid_argument, "--messages '{}': expected an array or an object with \"messages\"",
                     args->messages);
              }
              messages = input["messages"];
              if (input.contains("tools") && !input["tools"].is_null()) tools = input["tools"];
            }
            if (!args->tools.empty()) tools = read_json(args->tools, "--tools");
            std::optional<bool> thinking;
            if (!args->enable_thinking.empty()) thinking = args->enable_thinking == "true";
            const auto context =
                chat_context(tok.data(), messages, tools ? &*tools : nullptr, !args->no_generation_prompt, thinking);
            std::cout << ChatTemplate::parse(source).render(context) << std::flush;
            return 0;
          }};
}

}  // namespace slm::cli
