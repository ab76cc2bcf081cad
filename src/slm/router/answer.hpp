// Reading OpenAI answers: their text, usage and token log-probabilities; the cascade's confidence
// checks; turning a whole answer into stream chunks.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "slm/router/config.hpp"

namespace slm::router {

// choices[0].message.content (chat) or choices[0].text (completions); "" when absent.
std::string answer_text(const nlohmann::json& answer);
// The text a stream chunk adds (delta.content or text).
std::string chunk_text(const nlohmann::json& chunk);

struct Usage {
  int64_t input_tokens = 0;
  int64_t output_tokens = 0;
  bool reported = false;
};
Usage answer_usage(const nlohmann::json& answer_or_chunk);

struct LogprobStats {
  size_t tokens = 0;
  double mean = 0;
  double min = 0;
};
// From choices[0].logprobs.content[].logprob (chat) or choices[0].logprobs.token_logprobs
// (completions); nullopt when the answer has none.
std::optional<LogprobStats> answer_logprobs(const nlohmann::json& answer);

// Checks `value` against the JSON-schema subset generators emit (type, properties, required,
// additionalProperties: false, items, enum, const, minItems/maxItems, minimum/maximum, anyOf);
// returns "" when it fits, else the first violation with its path.
std::string schema_violation(const nlohmann::json& schema, const nlohmann::json& value, const std::string& path = "$");

struct Verdict {
  bool accept = false;
  std::string why;
};
// The cascade's decision on a cheaper tier's answers (several when sampling). request: the client's.
Verdict judge_answers(const PolicyConfig& policy, const nlohmann::json& request, const std::vector<nlohmann::json>& answers);

// A whole answer as the chunks of a stream (role, content, finish).
std::vector<nlohmann::json> answer_to_chunks(const nlohmann::json& answer, bool chat);

}  // namespace slm::router
