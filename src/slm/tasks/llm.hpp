// Blocking helpers over the Scheduler for the tasks: prompts from a template (optionally through
// the model's chat template), requests whose events are collected into one result.
#pragma once

#include <cstdint>
#include <future>
#include <string>
#include <vector>

#include "slm/engine/scheduler.hpp"

namespace slm::tasks {

struct Completion {
  std::vector<int32_t> tokens;                // generated, end-of-generation tokens left out
  std::vector<TokenLogprob> prompt_logprobs;  // when asked: logprob of prompt[i+1] given prompt[..i]
  FinishReason finish = FinishReason::none;
  std::string error;
};

// Submits `request` and returns a future that holds every generated token once the request ends.
std::future<Completion> submit_collect(Scheduler& scheduler, GenerationRequest request);

// Replaces each "{name}" in `text` by its value; other braces stay as they are.
std::string fill_template(std::string text, const std::vector<std::pair<std::string, std::string>>& values);

// Token ids of a prompt: the text as it is (BOS added as the tokenizer says), or, with `chat`, as the
// one user message of the model's chat template with the generation prompt after it (the rendered
// text then holds every special token itself). Error(invalid_argument) when `chat` is asked of a
// model without a chat template.
std::vector<int32_t> encode_prompt(const Model& model, const std::string& text, bool chat);

}  // namespace slm::tasks
