#include "slm/tasks/extract.hpp"

#include <algorithm>

#include "slm/engine/grammar/json_schema.hpp"
#include "slm/tasks/llm.hpp"
#include "slm/util/error.hpp"

namespace slm::tasks {

Extractor::Extractor(Scheduler& scheduler, ExtractOptions options)
    : scheduler_(scheduler), options_(std::move(options)) {
  const Tokenizer* tok = scheduler_.model().tokenizer();
  if (!tok) fail(ErrorKind::invalid_argument, "extract needs a model with a tokenizer");
  if (options_.attempts < 1) fail(ErrorKind::invalid_argument, "expected attempts >= 1, found {}", options_.attempts);
  plain_schema_ = nlohmann::json::parse(options_.schema.dump());
  constraint_ = grammar::compile_json_schema(options_.schema, *tok);
}

std::vector<ExtractResult> Extractor::extract(const std::vector<std::string>& texts) {
  const Model& model = scheduler_.model();
  const Tokenizer& tok = *model.tokenizer();
  const std::string schema_text = options_.schema.dump();
  std::vector<ExtractResult> results(texts.size());
  std::vector<std::vector<int32_t>> prompts(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    prompts[i] = encode_prompt(model, fill_template(options_.prompt_template, {{"text", texts[i]}, {"schema", schema_text}}),
                               options_.chat);
  }
  std::vector<size_t> pending(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) pending[i] = i;
  const size_t batch = std::max<int32_t>(1, scheduler_.options().max_queue);
  for (int32_t attempt = 0; attempt < options_.attempts && !pending.empty(); ++attempt) {
    std::vector<size_t> again;
    for (size_t begin = 0; begin < pending.size(); begin += batch) {
      const size_t end = std::min(pending.size(), begin + batch);
      std::vector<std::future<Completion>> futures;
      for (size_t j = begin; j < end; ++j) {
        GenerationRequest req;
        req.prompt = prompts[pending[j]];
        req.max_tokens = options_.max_tokens;
        req.sampling.temperature = attempt == 0 ? 0.0f : 0.7f;
        req.sampling.seed = 1234 + uint64_t(attempt);
        req.constraint = constraint_->clone_initial();
        futures.push_back(submit_collect(scheduler_, std::move(req)));
      }
      for (size_t j = begin; j < end; ++j) {
        ExtractResult& r = results[pending[j]];
        Completion c = futures[j - begin].get();
        r.attempts = attempt + 1;
        r.tokens = int64_t(c.tokens.size());
        r.raw = tok.decode(c.tokens, true);
        r.errors.clear();
        if (c.finish == FinishReason::error) {
          r.errors.push_back("generation failed: " + c.error);
        } else {
          nlohmann::json value = nlohmann::json::parse(r.raw, nullptr, false);
          if (value.is_discarded()) {
            if (c.finish != FinishReason::length) {
              r.errors.push_back("the output is not JSON");
            } else if (r.tokens < options_.max_tokens) {
              r.errors.push_back("the context ran out after " + std::to_string(prompts[pending[j]].size()) + " prompt and " +
                                 std::to_string(r.tokens) + " generated tokens: use a shorter prompt template");
            } else {
              r.errors.push_back("the output did not finish within max_tokens (" + std::to_string(options_.max_tokens) + ")");
            }
          } else {
            r.errors = grammar::validate_json(plain_schema_, value);
            if (r.errors.empty()) r.value = std::move(value);
          }
        }
        if (!r.value) again.push_back(pending[j]);
      }
    }
    pending = std::move(again);
  }
  return results;
}

}  // namespace slm::tasks
