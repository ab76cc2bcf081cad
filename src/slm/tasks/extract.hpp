// Structured extraction: JSON generated under a schema's grammar constraint, checked again with
// validate_json. Output that did not finish (the token budget ran out inside a value) is reported
// as an error, never printed as if it were valid.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "slm/engine/scheduler.hpp"

namespace slm::tasks {

struct ExtractOptions {
  nlohmann::ordered_json schema;  // the members of generated objects follow its `properties` order
  std::string prompt_template =
      "Extract the information from the text as JSON that follows this schema:\n{schema}\n\nText: {text}\nJSON: ";
  bool chat = false;
  int64_t max_tokens = 512;
  int32_t attempts = 3;  // a run that ends unfinished is retried with sampling (temperature 0.7, new seed)
};

struct ExtractResult {
  std::optional<nlohmann::json> value;  // set when the output parsed and validated
  std::string raw;                      // the generated text
  std::vector<std::string> errors;      // why there is no value
  int32_t attempts = 0;
  int64_t tokens = 0;                   // generated tokens of the last attempt
};

class Extractor {
 public:
  // Compiles the schema (Error(unsupported) for keywords the grammar does not have).
  Extractor(Scheduler& scheduler, ExtractOptions options);
  std::vector<ExtractResult> extract(const std::vector<std::string>& texts);

 private:
  Scheduler& scheduler_;
  ExtractOptions options_;
  nlohmann::json plain_schema_;
  std::shared_ptr<TokenConstraint> constraint_;
};

}  // namespace slm::tasks
