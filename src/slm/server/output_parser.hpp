// Turning generated text into an OpenAI answer as it streams: stop strings (with the text that
// could be the start of one held back), reasoning inside <think>...</think>, and tool calls in the
// formats the supported model families emit.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace slm::server {

// The length of the longest suffix of `text` that is a proper prefix of `pattern`.
size_t partial_suffix(std::string_view text, std::string_view pattern);

class StopMatcher {
 public:
  StopMatcher() = default;
  explicit StopMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {}
  // Appends generated text; returns what may be shown now. Once a stop string appears, stopped()
  // is true, the returned text ends where it began, and everything after is dropped.
  std::string push(std::string_view text);
  // The end of generation: what was held back (nothing after a stop string).
  std::string flush();
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string pending_;
  bool stopped_ = false;
};

// Splits a thinking model's output: text inside <think>...</think> (at the start of the answer,
// or from the start when the prompt already opened the block) is reasoning, the rest content.
class ReasoningSplitter {
 public:
  explicit ReasoningSplitter(bool start_in_reasoning) : state_(start_in_reasoning ? reasoning : start) {}
  struct Out {
    std::string reasoning;
    std::string content;
  };
  Out push(std::string_view text);
  Out flush();

 private:
  enum State { start, reasoning, after, content };
  State state_;
  std::string buffer_;
};

struct ToolCall {
  std::string id;         // "call_..."
  std::string name;
  std::string arguments;  // JSON text of the arguments object
};

struct ParsedToolCalls {
  std::string content;    // text outside the calls, trimmed
  std::vector<ToolCall> calls;
};

// Qwen / Hermes `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` (any number), Mistral
// `[TOOL_CALLS][{"name": ..., "arguments": {...}}, ...]` or `[TOOL_CALLS]name[ARGS]{...}`, Llama 3.x
// `{"name": ..., "parameters": {...}}` as the whole answer (optionally after <|python_tag|>). Text
// that is none of these comes back as content with no calls.
ParsedToolCalls parse_tool_calls(std::string_view text);

// Streams content while watching for the start of a tool call: text from a tool-call marker on
// (or the whole answer when it starts with '{') is held until the end, then parsed.
class ToolCallStream {
 public:
  // Returns content that may be streamed now.
  std::string push(std::string_view text);
  // The end: tool calls found in the held text and the held text that was not a call.
  ParsedToolCalls finish();

 private:
  std::string held_;
  bool capturing_ = false;
  bool seen_text_ = false;
};

// The control-token texts that carry structure and are kept in the decoded text.
bool is_structural_marker(std::string_view token_text);

std::string new_tool_call_id();

}  // namespace slm::server
