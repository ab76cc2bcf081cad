// The generation loop: evaluate a prompt, then sample and evaluate one token at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "slm/engine/sampler.hpp"
#include "slm/engine/session.hpp"
#include "slm/util/error.hpp"
#include "slm/util/timing.hpp"

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

// The loop itself, for any session type with forward(tokens, logits, all_logits), n_past(),
// n_ctx(), model() and config() (Session, CudaSession).
template <typename AnySession>
GenerationStats generate_tokens(AnySession& session, Sampler& sampler, std::span<const int32_t> prompt,
                                int64_t max_tokens, const std::function<bool(int32_t)>& on_token) {
  GenerationStats stats;
  if (prompt.empty()) fail(ErrorKind::invalid_argument, "the prompt is empty: at least one token is needed");
  const Tokenizer* tokenizer = session.model().tokenizer();
  std::vector<float> logits(static_cast<size_t>(session.config().vocab_size));
  for (int32_t t : prompt) sampler.accept(t);

  Stopwatch prompt_clock;
  session.forward(prompt, logits.data(), false);
  stats.prompt_tokens = int64_t(prompt.size());
  stats.prompt_seconds = prompt_clock.seconds();

  Stopwatch gen_clock;
  for (int64_t i = 0; i < max_tokens; ++i) {
    const int32_t token = sampler.sample(logits);
    sampler.accept(token);
    if (tokenizer && tokenizer->is_eog(token)) {
      stats.stopped_by_eog = true;
      break;
    }
    ++stats.generated_tokens;
    if (!on_token(token)) break;
    if (i + 1 == max_tokens || session.n_past() >= session.n_ctx()) break;
    session.forward(std::span<const int32_t>(&token, 1), logits.data(), false);
  }
  stats.generation_seconds = gen_clock.seconds();
  return stats;
}

}  // namespace slm
