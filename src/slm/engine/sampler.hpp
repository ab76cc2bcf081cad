// Token samplers: penalties, then top-k, top-p, min-p and temperature, then a seeded draw.
// Greedy (argmax) when temperature <= 0. Reproducible: the same seed, logits and history give the
// same tokens.
#pragma once

#include <cstdint>
#include <deque>
#include <random>
#include <span>
#include <unordered_map>
#include <vector>

namespace slm {

struct SamplerOptions {
  float temperature = 0.8f;
  int32_t top_k = 40;              // <= 0: off
  float top_p = 0.95f;             // >= 1: off
  float min_p = 0.05f;             // <= 0: off
  float repeat_penalty = 1.0f;     // 1: off; > 1 penalises tokens seen in the last repeat_last_n
  int32_t repeat_last_n = 64;
  float presence_penalty = 0.0f;   // subtracted once from a seen token's logit (OpenAI semantics)
  float frequency_penalty = 0.0f;  // subtracted per occurrence
  uint64_t seed = 0xFFFFFFFFu;     // fixed seed; 0xFFFFFFFF asks for a random one
};

class Sampler {
 public:
  explicit Sampler(const SamplerOptions& options);
  // Picks a token from logits[vocab] (the array is modified: penalties and filters are applied in
  // place to a copy's worth of candidates).
  int32_t sample(std::span<float> logits);
  // The most candidates sample_top() takes.
  static constexpr int32_t kMaxTopCandidates = 64;
  // How many of a row's largest logits decide this sampler's next token (1 when greedy, top_k when
  // top-k bounds the candidates), or 0 when it needs the whole row (penalties, no top-k, or a top-k
  // above kMaxTopCandidates).
  int32_t top_candidates() const;
  // The same token sample() would pick, from the top_candidates() largest logits of the row with
  // their ids, largest first (equal logits: the lower id first). Only when top_candidates() > 0.
  int32_t sample_top(std::span<const int32_t> ids, std::span<const float> logits);
  // Records a token of the sequence (prompt or generated) for the penalties.
  void accept(int32_t token);
  void reset();
  const SamplerOptions& options() const { return options_; }
  uint64_t seed() const { return seed_; }

 private:
  struct Candidate {
    int32_t id;
    float logit;
    float p;
  };
  void apply_penalties(std::span<float> logits) const;
  bool penalized() const;
  int32_t draw();  // from candidates_, sorted and cut to top-k

  SamplerOptions options_;
  uint64_t seed_;
  std::mt19937_64 rng_;
  std::deque<int32_t> recent_;                      // last repeat_last_n tokens
  std::unordered_map<int32_t, int32_t> counts_;    // occurrences within recent_
  std::vector<Candidate> candidates_;
};

}  // namespace slm
