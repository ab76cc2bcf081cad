// libFuzzer target: any bytes as a chat template. Parsing and rendering (with a fixed small
// conversation) either succeed or throw slm::Error; they never crash, hang or grow without bound.
// Seeds: the templates under tests/data/chat_templates (fuzz/make_chat_template_corpus.py).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "slm/tokenizer/chat_template.hpp"
#include "slm/util/error.hpp"

namespace {

const nlohmann::ordered_json& context() {
  static const nlohmann::ordered_json c = nlohmann::ordered_json::parse(R"({
    "messages": [
      {"role": "system", "content": "Be brief."},
      {"role": "user", "content": "Hi \u00e9 <think>x</think>"},
      {"role": "assistant", "content": "", "reasoning_content": "r",
       "tool_calls": [{"id": "abc123XYZ", "type": "function",
                       "function": {"name": "f", "arguments": {"a": 1, "b": [1.5, null, true]}}}]},
      {"role": "tool", "tool_call_id": "abc123XYZ", "content": "42"},
      {"role": "assistant", "content": null},
      {"role": "user", "content": [{"type": "text", "text": "part"}]}
    ],
    "tools": [{"type": "function", "function": {"name": "f", "description": "d",
               "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}}}}],
    "documents": null,
    "add_generation_prompt": true,
    "enable_thinking": false,
    "bos_token": "<s>",
    "eos_token": "</s>",
    "n": 3,
    "x": 2.5
  })");
  return c;
}

slm::TemplateLimits limits() {
  slm::TemplateLimits l;
  l.max_output_bytes = 1 << 16;
  l.max_loop_iterations = 5000;
  l.max_recursion = 32;
  l.max_source_bytes = 1 << 16;
  l.max_operations = 200000;
  return l;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const slm::TemplateLimits l = limits();
  const std::string_view source(reinterpret_cast<const char*>(data), size);
  try {
    const slm::ChatTemplate t = slm::ChatTemplate::parse(source, l);
    const std::string out = t.render(context());
    if (out.size() > l.max_output_bytes) __builtin_trap();
  } catch (const slm::Error&) {
  }
  return 0;
}
