#include "slm/engine/generate.hpp"

#include "slm/util/error.hpp"
#include "slm/util/timing.hpp"

namespace slm {

GenerationStats generate(Session& session, Sampler& sampler, std::span<const int32_t> prompt, int64_t max_tokens,
                         const std::function<bool(int32_t)>& on_token) {
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
