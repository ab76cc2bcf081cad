#include "slm/engine/generate.hpp"

namespace slm {

GenerationStats generate(Session& session, Sampler& sampler, std::span<const int32_t> prompt, int64_t max_tokens,
                         const std::function<bool(int32_t)>& on_token) {
  return generate_tokens(session, sampler, prompt, max_tokens, on_token);
}

}  // namespace slm
