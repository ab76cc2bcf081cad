#include "slm/server/tool_constraint.hpp"

#include <algorithm>

#include "slm/engine/grammar/json_schema.hpp"
#include "slm/util/error.hpp"

namespace slm::server {
namespace {

using ojson = nlohmann::ordered_json;

constexpr std::string_view think_end = "</think>";

}  // namespace

Phase Phase::free_text(const Tokenizer& tokenizer, const std::string& end_text, int64_t budget) {
  Phase p;
  p.kind = Kind::free;
  p.end_text = end_text;
  p.budget = budget;
  if (!end_text.empty()) p.end_tokens = tokenizer.encode(end_text, false, true);
  if (budget >= 0 && p.end_tokens.empty()) {
    fail(ErrorKind::invalid_argument, "a free-text phase with a budget needs an end text");
  }
  return p;
}

Phase Phase::forced_text(const Tokenizer& tokenizer, const std::string& text) {
  Phase p;
  p.kind = Kind::forced;
  p.tokens = tokenizer.encode(text, false, true);
  return p;
}

Phase Phase::constrained(std::shared_ptr<const TokenConstraint> schema) {
  if (!schema) fail(ErrorKind::invalid_argument, "a constrained phase needs a constraint");
  Phase p;
  p.kind = Kind::schema;
  p.schema = std::move(schema);
  return p;
}

PhasedConstraint::PhasedConstraint(std::vector<Phase> phases, const Tokenizer& tokenizer, int32_t repeat_from)
    : phases_(std::make_shared<const std::vector<Phase>>(std::move(phases))), tokenizer_(&tokenizer), repeat_from_(repeat_from) {
  if (phases_->empty()) fail(ErrorKind::invalid_argument, "a phased constraint needs at least one phase");
  if (repeat_from_ >= int32_t(phases_->size())) {
    fail(ErrorKind::invalid_argument, "expected repeat_from < {} phases, found {}", phases_->size(), repeat_from_);
  }
  enter(0);
}

bool PhasedConstraint::skipped(size_t phase, bool repeating) const {
  const Phase& p = (*phases_)[phase];
  return (p.kind == Phase::Kind::forced && p.tokens.empty()) || (p.between && !repeating);
}

void PhasedConstraint::enter(size_t phase) {
  const auto& phases = *phases_;
  phase_ = phase;
  forced_pos_ = 0;
  forcing_end_ = false;
  used_ = 0;
  tail_.clear();
  current_.reset();
  while (phase_ < phases.size() && skipped(phase_, repeating_)) ++phase_;
  if (phase_ < phases.size() && phases[phase_].kind == Phase::Kind::free && phases[phase_].budget == 0) {
    forcing_end_ = true;
  }
  if (phase_ < phases.size() && phases[phase_].kind == Phase::Kind::schema) {
    current_ = phases[phase_].schema->clone_initial();
    if (current_->finished()) advance();
  }
}

void PhasedConstraint::repeat() {
  repeating_ = true;
  enter(size_t(repeat_from_));
}

bool PhasedConstraint::may_end_from(size_t phase) const {
  const auto& phases = *phases_;
  for (size_t i = phase; i < phases.size(); ++i) {
    if (skipped(i, repeating_)) continue;
    if (phases[i].kind == Phase::Kind::forced) return false;
    if (phases[i].kind == Phase::Kind::schema) {
      const bool started = i == phase_ && current_;
      if (!(started ? current_->complete() : phases[i].schema->complete())) return false;
    }
  }
  return true;
}

void PhasedConstraint::set_eog(std::span<uint8_t> allowed) const {
  for (int32_t id : tokenizer_->data().eog_ids) {
    if (id >= 0 && size_t(id) < allowed.size()) allowed[size_t(id)] = 1;
  }
}

void PhasedConstraint::first_tokens(size_t phase, bool repeating, std::span<uint8_t> allowed) const {
  const auto& phases = *phases_;
  for (size_t i = phase; i < phases.size(); ++i) {
    if (skipped(i, repeating)) continue;
    const Phase& p = phases[i];
    if (p.kind == Phase::Kind::forced) {
      allowed[size_t(p.tokens[0])] = 1;
      return;
    }
    if (p.kind == Phase::Kind::free) {
      std::fill(allowed.begin(), allowed.end(), uint8_t(1));
      return;
    }
    std::vector<uint8_t> mask(allowed.size(), 0);
    auto fresh = p.schema->clone_initial();
    fresh->allowed_tokens(mask);
    for (size_t t = 0; t < mask.size(); ++t) allowed[t] |= mask[t];
    return;
  }
}

void PhasedConstraint::allowed_tokens(std::span<uint8_t> allowed) {
  std::fill(allowed.begin(), allowed.end(), uint8_t(0));
  const auto& phases = *phases_;
  if (phase_ >= phases.size()) {
    set_eog(allowed);
    if (repeat_from_ >= 0) first_tokens(size_t(repeat_from_), true, allowed);
    return;
  }
  const Phase& p = phases[phase_];
  switch (p.kind) {
    case Phase::Kind::forced:
      allowed[size_t(p.tokens[forced_pos_])] = 1;
      return;
    case Phase::Kind::free:
      if (forcing_end_) {
        allowed[size_t(p.end_tokens[forced_pos_])] = 1;
        return;
      }
      std::fill(allowed.begin(), allowed.end(), uint8_t(1));
      for (int32_t id : tokenizer_->data().eog_ids) {
        if (id >= 0 && size_t(id) < allowed.size()) allowed[size_t(id)] = 0;
      }
      if (p.end_text.empty() && may_end_from(phase_ + 1)) set_eog(allowed);
      return;
    case Phase::Kind::schema: {
      schema_mask_.assign(allowed.size(), 0);
      current_->allowed_tokens(schema_mask_);
      for (int32_t id : tokenizer_->data().eog_ids) {
        if (id >= 0 && size_t(id) < schema_mask_.size()) schema_mask_[size_t(id)] = 0;
      }
      std::copy(schema_mask_.begin(), schema_mask_.end(), allowed.begin());
      if (current_->complete()) {
        if (may_end_from(phase_ + 1)) set_eog(allowed);
        if (phase_ + 1 < phases.size()) first_tokens(phase_ + 1, repeating_, allowed);
        else if (repeat_from_ >= 0) first_tokens(size_t(repeat_from_), true, allowed);
      }
      return;
    }
  }
}

void PhasedConstraint::accept(int32_t token) {
  const auto& phases = *phases_;
  auto refuse = [&] { fail(ErrorKind::invalid_argument, "token {} is not allowed here (phase {})", token, phase_); };
  if (token < 0) refuse();
  if (phase_ >= phases.size()) {
    if (tokenizer_->is_eog(token)) return;  // the end
    if (repeat_from_ < 0) refuse();
    repeat();
  }
  const Phase& p = phases[phase_];
  switch (p.kind) {
    case Phase::Kind::forced:
      if (token != p.tokens[forced_pos_]) refuse();
      if (++forced_pos_ == p.tokens.size()) advance();
      return;
    case Phase::Kind::free: {
      if (forcing_end_) {
        if (token != p.end_tokens[forced_pos_]) refuse();
        if (++forced_pos_ == p.end_tokens.size()) advance();
        return;
      }
      if (tokenizer_->is_eog(token)) return;  // the end of the answer (allowed only where it may end)
      if (p.end_text.empty()) return;
      tail_ += tokenizer_->token_bytes(token);
      if (tail_.size() > 2 * p.end_text.size() + 64) tail_.erase(0, tail_.size() - p.end_text.size());
      if (tail_.size() >= p.end_text.size() && tail_.compare(tail_.size() - p.end_text.size(), p.end_text.size(), p.end_text) == 0) {
        advance();
        return;
      }
      if (p.budget >= 0 && ++used_ >= p.budget) {
        forcing_end_ = true;
        forced_pos_ = 0;
      }
      return;
    }
    case Phase::Kind::schema: {
      if (schema_mask_.size() > size_t(token) && schema_mask_[size_t(token)] != 0) {
        current_->accept(token);
        if (current_->finished()) advance();
        return;
      }
      if (!current_->complete()) refuse();
      if (tokenizer_->is_eog(token)) {
        phase_ = phases.size();
        current_.reset();
        return;
      }
      advance();
      if (phase_ >= phases.size()) {
        if (repeat_from_ < 0) refuse();
        repeat();
      }
      accept(token);
      return;
    }
  }
}

bool PhasedConstraint::complete() const {
  const auto& phases = *phases_;
  if (phase_ >= phases.size()) return true;
  const Phase& p = phases[phase_];
  if (p.kind == Phase::Kind::free) return !forcing_end_ && p.end_text.empty() && may_end_from(phase_ + 1);
  if (p.kind == Phase::Kind::schema) return current_->complete() && may_end_from(phase_ + 1);
  return false;
}

bool PhasedConstraint::finished() const { return phase_ >= phases_->size() && repeat_from_ < 0; }

std::unique_ptr<TokenConstraint> PhasedConstraint::clone_initial() const {
  return std::make_unique<PhasedConstraint>(*phases_, *tokenizer_, repeat_from_);
}

ToolCallFormat tool_call_format(const std::string& chat_template, const Tokenizer& tokenizer) {
  if (chat_template.find("<tool_call>") != std::string::npos || tokenizer.token_id("<tool_call>") >= 0) {
    return ToolCallFormat::hermes;
  }
  if (chat_template.find("[TOOL_CALLS]") != std::string::npos || tokenizer.token_id("[TOOL_CALLS]") >= 0) {
    return ToolCallFormat::mistral;
  }
  if (chat_template.find("<|python_tag|>") != std::string::npos ||
      (chat_template.find("<|eot_id|>") != std::string::npos && chat_template.find("parameters") != std::string::npos)) {
    return ToolCallFormat::llama3;
  }
  return ToolCallFormat::hermes;
}

namespace {

// Rewrites the local $refs of a schema moved to `base` (a JSON pointer): "#" -> "#base",
// "#/x" -> "#base/x".
void rebase_refs(ojson& schema, const std::string& base) {
  if (schema.is_object()) {
    for (auto it = schema.begin(); it != schema.end(); ++it) {
      if (it.key() == "$ref" && it.value().is_string()) {
        const std::string ref = it.value().get<std::string>();
        if (!ref.empty() && ref[0] == '#') it.value() = "#" + base + ref.substr(1);
      } else {
        rebase_refs(it.value(), base);
      }
    }
  } else if (schema.is_array()) {
    for (auto& v : schema) rebase_refs(v, base);
  }
}

}  // namespace

ojson tool_call_schema(const ojson& tools, const ToolConstraintOptions& options) {
  if (!tools.is_array() || tools.empty()) fail(ErrorKind::invalid_argument, "tool_choice needs at least one tool");
  const char* args_key = options.format == ToolCallFormat::llama3 ? "parameters" : "arguments";
  ojson alternatives = ojson::array();
  ojson defs = ojson::object();
  for (size_t i = 0; i < tools.size(); ++i) {
    const ojson& fn = tools[i].at("function");
    const std::string name = fn.at("name").get<std::string>();
    if (!options.only_tool.empty() && name != options.only_tool) continue;
    ojson params = fn.contains("parameters") && fn["parameters"].is_object()
                       ? fn["parameters"]
                       : ojson{{"type", "object"}, {"properties", ojson::object()}, {"additionalProperties", false}};
    const std::string key = "tool_" + std::to_string(i);
    rebase_refs(params, "/$defs/" + key);
    defs[key] = std::move(params);
    ojson call = {{"type", "object"},
                  {"properties", {{"name", {{"const", name}}}, {args_key, {{"$ref", "#/$defs/" + key}}}}},
                  {"required", {"name", args_key}},
                  {"additionalProperties", false}};
    alternatives.push_back(std::move(call));
  }
  if (alternatives.empty()) fail(ErrorKind::invalid_argument, "no tool named '{}'", options.only_tool);
  ojson one = alternatives.size() == 1 ? alternatives[0] : ojson{{"anyOf", alternatives}};
  ojson root;
  if (options.format == ToolCallFormat::mistral) {
    root = {{"type", "array"}, {"items", one}, {"minItems", 1}};
    if (!options.parallel) root["maxItems"] = 1;
  } else {
    root = one;
  }
  root["$defs"] = std::move(defs);
  return root;
}

std::shared_ptr<TokenConstraint> tool_call_constraint(const ojson& tools, const Tokenizer& tokenizer,
                                                      const ToolConstraintOptions& options) {
  std::shared_ptr<const TokenConstraint> call = grammar::compile_json_schema(tool_call_schema(tools, options), tokenizer);
  std::vector<Phase> phases;
  if (options.start_in_reasoning) {
    phases.push_back(Phase::free_text(tokenizer, std::string(think_end), options.thinking_budget));
    phases.push_back(Phase::forced_text(tokenizer, "\n\n"));
  }
  int32_t repeat_from = -1;
  switch (options.format) {
    case ToolCallFormat::hermes:
      if (options.parallel) repeat_from = int32_t(phases.size());
      phases.push_back(Phase::forced_text(tokenizer, "<tool_call>\n"));
      phases.push_back(Phase::constrained(call));
      phases.push_back(Phase::forced_text(tokenizer, "\n</tool_call>"));
      break;
    case ToolCallFormat::llama3: {
      // One JSON object per call; more calls follow after "; " (the separator the parser splits
      // on, as Llama 3.x writes several calls in one answer).
      if (options.parallel) {
        repeat_from = int32_t(phases.size());
        Phase separator = Phase::forced_text(tokenizer, "; ");
        separator.between = true;
        phases.push_back(std::move(separator));
      }
      phases.push_back(Phase::constrained(call));
      break;
    }
    case ToolCallFormat::mistral:
      phases.push_back(Phase::forced_text(tokenizer, "[TOOL_CALLS]"));
      phases.push_back(Phase::constrained(call));
      break;
  }
  return std::make_shared<PhasedConstraint>(std::move(phases), tokenizer, repeat_from);
}

namespace {

size_t call_count(const ojson& message) {
  if (!message.is_object() || message.value("role", "") != "assistant") return 0;
  const auto it = message.find("tool_calls");
  return it != message.end() && it->is_array() ? it->size() : 0;
}

}  // namespace

bool has_parallel_tool_calls(const ojson& messages) {
  if (!messages.is_array()) return false;
  return std::any_of(messages.begin(), messages.end(), [](const ojson& m) { return call_count(m) > 1; });
}

ojson one_call_per_turn(const ojson& messages) {
  if (!messages.is_array()) fail(ErrorKind::invalid_argument, "expected the messages as an array, found {}", messages.type_name());
  ojson out = ojson::array();
  for (size_t i = 0; i < messages.size(); ++i) {
    const ojson& m = messages[i];
    const size_t n_calls = call_count(m);
    if (n_calls <= 1) {
      out.push_back(m);
      continue;
    }
    // The results that follow this message.
    std::vector<const ojson*> results;
    size_t j = i + 1;
    for (; j < messages.size() && messages[j].is_object() && messages[j].value("role", "") == "tool"; ++j) {
      results.push_back(&messages[j]);
    }
    std::vector<bool> claimed(results.size(), false);
    std::vector<int64_t> result_of(n_calls, -1);
    for (size_t c = 0; c < n_calls; ++c) {  // by id first
      const ojson& call = m["tool_calls"][c];
      if (!call.is_object() || !call.contains("id") || !call["id"].is_string()) continue;
      for (size_t r = 0; r < results.size(); ++r) {
        const auto id = results[r]->find("tool_call_id");
        if (!claimed[r] && id != results[r]->end() && *id == call["id"]) {
          claimed[r] = true;
          result_of[c] = int64_t(r);
          break;
        }
      }
    }
    for (size_t c = 0; c < n_calls; ++c) {  // then in order
      if (result_of[c] >= 0) continue;
      for (size_t r = 0; r < results.size(); ++r) {
        const auto id = results[r]->find("tool_call_id");
        const bool names_a_call =
            id != results[r]->end() && std::any_of(m["tool_calls"].begin(), m["tool_calls"].end(), [&](const ojson& call) {
              return call.is_object() && call.contains("id") && call["id"] == *id;
            });
        if (!claimed[r] && !names_a_call) {
          claimed[r] = true;
          result_of[c] = int64_t(r);
          break;
        }
      }
    }
    for (size_t c = 0; c < n_calls; ++c) {
      ojson turn = m;
      turn["tool_calls"] = ojson::array({m["tool_calls"][c]});
      if (c > 0 && turn.contains("content")) turn["content"] = nullptr;
      out.push_back(std::move(turn));
      if (result_of[c] >= 0) out.push_back(*results[size_t(result_of[c])]);
    }
    for (size_t r = 0; r < results.size(); ++r) {
      if (!claimed[r]) out.push_back(*results[r]);
    }
    i = j - 1;
  }
  return out;
}

std::shared_ptr<TokenConstraint> reasoning_constraint(const Tokenizer& tokenizer, int64_t budget,
                                                      std::shared_ptr<const TokenConstraint> then) {
  std::vector<Phase> phases;
  phases.push_back(Phase::free_text(tokenizer, std::string(think_end), budget));
  phases.push_back(Phase::forced_text(tokenizer, "\n\n"));
  phases.push_back(then ? Phase::constrained(std::move(then)) : Phase::free_text(tokenizer));
  return std::make_shared<PhasedConstraint>(std::move(phases), tokenizer, -1);
}

}  // namespace slm::server
