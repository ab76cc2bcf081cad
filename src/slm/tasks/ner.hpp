// Named entities (PERSON, LOCATION, ORGANIZATION) from a language model: the model writes
// {"entities": [{"type": ..., "text": ...}]} under a schema constraint, and every occurrence of each
// text in the input (at word boundaries) becomes a finding with source "model".
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "slm/engine/scheduler.hpp"
#include "slm/tasks/pii.hpp"

namespace slm::tasks {

const std::vector<std::string>& model_entity_types();  // PERSON, LOCATION, ORGANIZATION

// The schema the model's answer follows (types limited to `types`, at most 16 entities of at most
// 64 characters each).
nlohmann::ordered_json ner_schema(const std::vector<std::string>& types);

// Occurrences of `needle` in `text` that start and end at word boundaries, as code point ranges.
std::vector<std::pair<int64_t, int64_t>> find_word_spans(std::string_view text, std::string_view needle);

// The prompt the model is asked with ("{text}" is the input).
const std::string& ner_prompt_template();

// Throws Error(invalid_argument) unless every type is PERSON, LOCATION or ORGANIZATION; empty: all.
std::vector<std::string> check_model_types(const std::vector<std::string>& types);

// Findings from the model's answer {"entities": [{"type", "text"}]}: every occurrence of each named
// text in `text` at word boundaries, once per span; names not in the input are dropped.
std::vector<Entity> entities_from_answer(std::string_view text, const nlohmann::json& answer, double score);

// Findings of the model for `types` (empty: all three). Texts the model names that do not occur in
// the input are dropped. `score` is given to every finding.
std::vector<Entity> detect_model(Scheduler& scheduler, std::string_view text, const std::vector<std::string>& types = {},
                                 double score = 0.6, bool chat = false);

}  // namespace slm::tasks
