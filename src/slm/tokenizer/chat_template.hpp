// Chat templates: slm's own interpreter of the Jinja2 subset that Hugging Face chat templates use,
// rendering byte for byte as transformers' apply_chat_template does (an immutable sandbox with
// trim_blocks and lstrip_blocks, the loopcontrols extension, raise_exception, strftime_now and a
// tojson that does not escape HTML or non-ASCII text).
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "slm/tokenizer/tokenizer.hpp"

namespace slm {

namespace jinja {
struct Program;
}

// Bounds on what one template may do; going past one is Error(out_of_range).
struct TemplateLimits {
  size_t max_output_bytes = size_t(1) << 20;  // the rendered text, and any one string built on the way
  size_t max_loop_iterations = 100000;        // for-loop iterations over the whole render
  size_t max_recursion = 64;                  // nested macro calls
  size_t max_source_bytes = size_t(1) << 20;  // the template's text
  size_t max_operations = 50000000;           // evaluation steps and elements copied, over the whole render
};

class ChatTemplate {
 public:
  // Error(format) with line and column on syntax errors; Error(unsupported) for constructs this
  // interpreter does not have (extends, include, import, block, recursive loops, ...).
  static ChatTemplate parse(std::string_view source, const TemplateLimits& limits = {});

  // `context`: the template's variables, e.g. {"messages": [...], "tools": [...],
  // "add_generation_prompt": true, "bos_token": "...", ...}. Keys of JSON objects keep their
  // order (templates print tool schemas with tojson). Error(invalid_argument) when the template
  // raises (the message is raise_exception's own) or fails (an undefined value used as an object,
  // a type error, ...); Error(out_of_range) when a limit is reached.
  std::string render(const nlohmann::ordered_json& context) const;

  const std::string& source() const { return source_; }

 private:
  std::string source_;
  std::shared_ptr<const jinja::Program> program_;
  TemplateLimits limits_;
};

// The context transformers' apply_chat_template renders with: messages, tools (absent: none),
// documents (none), add_generation_prompt, the tokenizer's special tokens by name (bos_token,
// eos_token, unk_token, pad_token, where the tokenizer has them) and enable_thinking when given.
nlohmann::ordered_json chat_context(const TokenizerData& tokenizer, const nlohmann::ordered_json& messages,
                                    const nlohmann::ordered_json* tools, bool add_generation_prompt,
                                    std::optional<bool> enable_thinking);

}  // namespace slm
