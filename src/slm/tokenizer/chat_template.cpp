#include "slm/tokenizer/chat_template.hpp"

#include "slm/tokenizer/byte_level.hpp"
#include "slm/tokenizer/jinja_ast.hpp"
#include "slm/tokenizer/jinja_interpreter.hpp"
#include "slm/util/error.hpp"

namespace slm {

ChatTemplate ChatTemplate::parse(std::string_view source, const TemplateLimits& limits) {
  if (source.size() > limits.max_source_bytes) {
    fail(ErrorKind::out_of_range, "chat template of {} bytes passes the limit of {} bytes", source.size(),
         limits.max_source_bytes);
  }
  ChatTemplate t;
  t.source_ = std::string(source);
  t.program_ = jinja::parse_program(source);
  t.limits_ = limits;
  return t;
}

std::string ChatTemplate::render(const nlohmann::ordered_json& context) const {
  if (!context.is_object()) {
    fail(ErrorKind::invalid_argument, "chat template context: expected a JSON object, found {}", context.type_name());
  }
  jinja::Interpreter interpreter(limits_);
  try {
    return interpreter.render(*program_, jinja::from_json(context));
  } catch (const jinja::TemplateRaised& e) {
    throw Error(ErrorKind::invalid_argument, e.what());
  } catch (const Error& e) {
    throw Error(e.kind(), fmt::format("chat template line {}: {}", interpreter.line(), e.what()));
  }
}

namespace {

// The text of a special token as transformers names it: added tokens as they are stored, other
// tokens of a byte-level vocabulary mapped back to their bytes.
std::string token_text(const TokenizerData& tok, int32_t id) {
  const std::string& stored = tok.tokens[size_t(id)];
  const bool added = size_t(id) < tok.types.size() &&
                     (tok.types[size_t(id)] == TokenType::control || tok.types[size_t(id)] == TokenType::user_defined);
  if (added || tok.model != "gpt2") return stored;
  std::string bytes;
  return byte_level::decode_append(bytes, stored) ? bytes : stored;
}

}  // namespace

nlohmann::ordered_json chat_context(const TokenizerData& tokenizer, const nlohmann::ordered_json& messages,
                                    const nlohmann::ordered_json* tools, bool add_generation_prompt,
                                    std::optional<bool> enable_thinking) {
  if (!messages.is_array()) {
    fail(ErrorKind::invalid_argument, "chat messages: expected a JSON array, found {}", messages.type_name());
  }
  if (tools != nullptr && !tools->is_array() && !tools->is_null()) {
    fail(ErrorKind::invalid_argument, "chat tools: expected a JSON array, found {}", tools->type_name());
  }
  nlohmann::ordered_json context = nlohmann::ordered_json::object();
  context["messages"] = messages;
  context["tools"] = tools != nullptr ? *tools : nlohmann::ordered_json();
  context["documents"] = nullptr;
  context["add_generation_prompt"] = add_generation_prompt;
  const std::pair<const char*, int32_t> specials[] = {
      {"bos_token", tokenizer.bos_id},
      {"eos_token", tokenizer.eos_id},
      {"unk_token", tokenizer.unk_id},
      {"pad_token", tokenizer.pad_id},
  };
  for (const auto& [name, id] : specials) {
    if (id >= 0 && size_t(id) < tokenizer.tokens.size()) context[name] = token_text(tokenizer, id);
  }
  if (enable_thinking) context["enable_thinking"] = *enable_thinking;
  return context;
}

}  // namespace slm
