// Constrained decoding: something that decides, before each sampling step, which tokens may come
// next (a JSON schema, a grammar, a fixed label set). The scheduler asks it for the allowed tokens,
// masks every other logit to -infinity, samples, and tells it which token was chosen.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

namespace slm {

class TokenConstraint {
 public:
  virtual ~TokenConstraint() = default;
  // Sets allowed[t] = 1 for every token t that may come next, 0 for the others
  // (allowed.size() == the model's vocab_size). End-of-generation tokens are allowed only where the
  // constrained text may end (complete()).
  virtual void allowed_tokens(std::span<uint8_t> allowed) = 0;
  // Advances past `token`; throws slm::Error(invalid_argument) when the token was not allowed.
  virtual void accept(int32_t token) = 0;
  // True when the text accepted so far is a complete match (generation may stop here).
  virtual bool complete() const = 0;
  // True when nothing more can follow (the scheduler then ends the sequence with finish "stop").
  virtual bool finished() const = 0;
  // A fresh constraint in the start state, for another sequence (the `n` choices of one request).
  virtual std::unique_ptr<TokenConstraint> clone_initial() const = 0;
};

}  // namespace slm
