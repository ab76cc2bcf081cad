// Constraints the server puts together from phases: a thinking section with a token budget, fixed
// text, and a JSON-schema constraint. They enforce `tool_choice` ("required" or a named function:
// the answer is a tool call in the model family's format, its arguments matching the tool's
// `parameters`), `thinking_budget`, and `response_format` after a thinking section.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "slm/engine/constraint.hpp"
#include "slm/tokenizer/tokenizer.hpp"

namespace slm::server {

// A sequence of phases, each a kind of text:
// - free: any tokens; ends when the text of this phase ends with `end_text`, or, after `budget`
//   tokens (budget >= 0), by forcing `end_text`'s tokens. budget < 0 and no end_text: the rest of
//   the answer.
// - forced: exactly these tokens.
// - schema: a constraint (a JSON schema); it ends when the constraint is finished, or where it is
//   complete and the next phase's first token is chosen.
// End-of-generation tokens are allowed only where every remaining phase may be empty (a free phase
// at the end, a complete last constraint, or after the last phase). With `repeat_from` >= 0 the
// phases from that index on may repeat after the last one (several tool calls); a phase marked
// `between` is passed over the first time through and taken only when the phases repeat (the
// separator between two calls, as Llama 3's "; ").
struct Phase {
  enum class Kind { free, forced, schema };
  Kind kind = Kind::free;
  std::vector<int32_t> tokens;                   // forced
  std::string end_text;                          // free
  std::vector<int32_t> end_tokens;               // free: end_text as tokens
  int64_t budget = -1;                           // free
  std::shared_ptr<const TokenConstraint> schema; // schema: the start state (cloned when entered)
  bool between = false;                          // only between repetitions, not the first time

  static Phase free_text(const Tokenizer& tokenizer, const std::string& end_text = "", int64_t budget = -1);
  static Phase forced_text(const Tokenizer& tokenizer, const std::string& text);
  static Phase constrained(std::shared_ptr<const TokenConstraint> schema);
};

class PhasedConstraint : public TokenConstraint {
 public:
  // Throws Error(invalid_argument) for no phases or a repeat_from out of range.
  PhasedConstraint(std::vector<Phase> phases, const Tokenizer& tokenizer, int32_t repeat_from = -1);

  void allowed_tokens(std::span<uint8_t> allowed) override;
  void accept(int32_t token) override;
  bool complete() const override;
  bool finished() const override;
  std::unique_ptr<TokenConstraint> clone_initial() const override;

 private:
  void enter(size_t phase);          // starts `phase` (skipping empty forced phases)
  void advance() { enter(phase_ + 1); }
  void repeat();                     // starts the repeated phases again
  bool skipped(size_t phase, bool repeating) const;  // passed over: empty forced, or `between` the first time
  bool may_end_from(size_t phase) const;  // every phase from `phase` on may be empty
  // Tokens that may start `phase` (or the first phase after it that is not passed over).
  void first_tokens(size_t phase, bool repeating, std::span<uint8_t> allowed) const;
  void set_eog(std::span<uint8_t> allowed) const;

  std::shared_ptr<const std::vector<Phase>> phases_;
  const Tokenizer* tokenizer_;
  int32_t repeat_from_;
  size_t phase_ = 0;
  bool repeating_ = false;                // the repeated phases came round at least once
  size_t forced_pos_ = 0;                 // forced phase, or a free phase forcing its end
  bool forcing_end_ = false;              // free phase: the budget ran out
  int64_t used_ = 0;                      // free phase: tokens so far
  std::string tail_;                      // free phase: the last bytes, to find end_text
  std::unique_ptr<TokenConstraint> current_;  // schema phase
  std::vector<uint8_t> schema_mask_;      // schema phase: its last mask
};

// The text formats of tool calls.
enum class ToolCallFormat {
  hermes,   // <tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call> (Qwen 2.5/3, Hermes; the default)
  llama3,   // {"name": ..., "parameters": {...}}, several separated by "; " (Llama 3.x)
  mistral,  // [TOOL_CALLS][{"name": ..., "arguments": {...}}, ...]
};

// The family's format, from its chat template and vocabulary.
ToolCallFormat tool_call_format(const std::string& chat_template, const Tokenizer& tokenizer);

struct ToolConstraintOptions {
  ToolCallFormat format = ToolCallFormat::hermes;
  std::string only_tool;            // "" : any of the tools ("required"); else that one (named)
  bool parallel = true;             // more than one call may follow
  bool start_in_reasoning = false;  // the prompt opened <think>: reasoning first, then the call
  int64_t thinking_budget = -1;     // reasoning tokens before </think> is forced (-1: unbounded)
};

// The JSON schema one call must match: {"name": const, "arguments"|"parameters": the tool's
// `parameters`} (any tool: anyOf), the tools' own $refs rewritten to where their schemas now sit.
// `tools` is the request's array of {"type": "function", "function": {...}}.
nlohmann::ordered_json tool_call_schema(const nlohmann::ordered_json& tools, const ToolConstraintOptions& options);

// A constraint whose text is one or more tool calls in `options.format`. Throws
// Error(invalid_argument / unsupported) for parameters the schema compiler rejects.
std::shared_ptr<TokenConstraint> tool_call_constraint(const nlohmann::ordered_json& tools, const Tokenizer& tokenizer,
                                                      const ToolConstraintOptions& options);

// The conversation with every assistant message of several tool calls split into single-call
// turns, each followed by its result (the `tool` message whose `tool_call_id` is the call's id, or
// else the next unclaimed result in order), for chat templates that refuse several calls in one
// message (Llama 3.1/3.2's raise "This model only supports single tool-calls at once!"). Results
// that match no call keep their place after the last call's. Other messages are unchanged.
nlohmann::ordered_json one_call_per_turn(const nlohmann::ordered_json& messages);

// Whether some assistant message carries more than one tool call.
bool has_parallel_tool_calls(const nlohmann::ordered_json& messages);

// A thinking section of at most `budget` tokens, then `then` (null: free text). The prompt must
// have opened <think>.
std::shared_ptr<TokenConstraint> reasoning_constraint(const Tokenizer& tokenizer, int64_t budget,
                                                      std::shared_ptr<const TokenConstraint> then);

}  // namespace slm::server
