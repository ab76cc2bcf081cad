// The generation loop: evaluate a prompt, then sample and evaluate one token at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "slm/engine/sampler.hpp"
#include "slm/engine/session.hpp"

namespace slm {

struct GenerationStats {
  int64_t prompt_tokens = 0;
  double prompt_seconds = 0.0;
  int64_t generated_tokens = 0;
  double generation_seconds = 0.0;  // from the first sampled token to the last evaluated one
  bool stopped_by_eog = false;
};

// Evaluates `prompt` (appended to what the session holds) and generates up to max_tokens tokens,
// calling on_token for each; on_token returning false stops. Stops at end-of-generation tokens
// when the model has a tokenizer. Returns timing figures.
GenerationStats generate(Session& session, Sampler& sampler, std::span<const int32_t> prompt, int64_t max_tokens,
                         const std::function<bool(int32_t)>& on_token);

}  // namespace slm
