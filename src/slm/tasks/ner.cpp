#include "slm/tasks/ner.hpp"

#include <algorithm>
#include <cctype>

#include "slm/tasks/extract.hpp"
#include "slm/util/error.hpp"

namespace slm::tasks {
namespace {
bool is_word_byte(std::string_view text, size_t at) {
  const uint8_t c = uint8_t(text[at]);
  return std::isalnum(c) || c == '_' || c >= 0x80;
}
}  // namespace

const std::vector<std::string>& model_entity_types() {
  static const std::vector<std::string> types = {"PERSON", "LOCATION", "ORGANIZATION"};
  return types;
}

nlohmann::ordered_json ner_schema(const std::vector<std::string>& types) {
  nlohmann::ordered_json item = {
      {"type", "object"},
      {"properties", {{"type", {{"enum", types}}}, {"text", {{"type", "string"}, {"minLength", 1}, {"maxLength", 64}}}}},
      {"required", {"type", "text"}},
      {"additionalProperties", false}};
  return {{"type", "object"},
          {"properties", {{"entities", {{"type", "array"}, {"maxItems", 16}, {"items", item}}}}},
          {"required", {"entities"}},
          {"additionalProperties", false}};
}

std::vector<std::pair<int64_t, int64_t>> find_word_spans(std::string_view text, std::string_view needle) {
  std::vector<std::pair<int64_t, int64_t>> out;
  if (needle.empty()) return out;
  const std::vector<int64_t> index = code_point_index(text);
  size_t at = 0;
  while ((at = text.find(needle, at)) != std::string_view::npos) {
    const size_t end = at + needle.size();
    const bool left = at == 0 || !is_word_byte(text, at - 1) || !is_word_byte(text, at);
    const bool right = end == text.size() || !is_word_byte(text, end) || !is_word_byte(text, end - 1);
    if (left && right) out.emplace_back(index[at], index[end]);
    at += 1;
  }
  return out;
}

const std::string& ner_prompt_template() {
  static const std::string prompt =
      "List the names of people (PERSON), places (LOCATION) and organizations (ORGANIZATION) in the text, "
      "copied exactly.\n\nText: {text}\nJSON: ";
  return prompt;
}

std::vector<std::string> check_model_types(const std::vector<std::string>& types) {
  std::vector<std::string> wanted = types.empty() ? model_entity_types() : types;
  for (const auto& t : wanted) {
    const auto& known = model_entity_types();
    if (std::find(known.begin(), known.end(), t) == known.end()) {
      fail(ErrorKind::invalid_argument, "expected PERSON, LOCATION or ORGANIZATION, found '{}'", t);
    }
  }
  return wanted;
}

std::vector<Entity> entities_from_answer(std::string_view text, const nlohmann::json& answer, double score) {
  std::vector<Entity> out;
  if (!answer.is_object() || !answer.contains("entities") || !answer["entities"].is_array()) return out;
  for (const auto& e : answer["entities"]) {
    if (!e.is_object() || !e.contains("type") || !e.contains("text") || !e["type"].is_string() || !e["text"].is_string()) continue;
    const std::string type = e["type"].get<std::string>();
    std::string name = e["text"].get<std::string>();
    while (!name.empty() && name.back() == ' ') name.pop_back();
    while (!name.empty() && name.front() == ' ') name.erase(name.begin());
    for (auto [s, en] : find_word_spans(text, name)) {
      const bool dup = std::any_of(out.begin(), out.end(), [&](const Entity& x) { return x.start == s && x.end == en; });
      if (!dup) out.push_back({type, s, en, score, "model"});
    }
  }
  std::sort(out.begin(), out.end(), [](const Entity& a, const Entity& b) { return a.start < b.start; });
  return out;
}

std::vector<Entity> detect_model(Scheduler& scheduler, std::string_view text, const std::vector<std::string>& types,
                                 double score, bool chat) {
  const std::vector<std::string> wanted = check_model_types(types);
  (void)code_point_bytes(text);  // UTF-8 check before the model sees it
  ExtractOptions options;
  options.schema = ner_schema(wanted);
  options.chat = chat;
  options.max_tokens = 384;
  options.prompt_template = ner_prompt_template();
  Extractor extractor(scheduler, options);
  const ExtractResult r = extractor.extract({std::string(text)}).front();
  if (!r.value) return {};
  return entities_from_answer(text, *r.value, score);
}

}  // namespace slm::tasks
