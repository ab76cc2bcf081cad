// One request inside the scheduler: its tokens, where its KV lives (a block table), its sampler and
// constraint, and the step that turns a row of logits into the next token and its event.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <vector>

#include "slm/engine/kv_cache.hpp"
#include "slm/engine/logit_rows.hpp"
#include "slm/engine/scheduler.hpp"

namespace slm {

struct SchedulerSequence {
  SchedulerSequence(uint64_t id, GenerationRequest request, GenerationCallback callback);

  uint64_t id;
  GenerationRequest request;
  GenerationCallback callback;
  Sampler sampler;
  std::vector<int32_t> tokens;      // prompt, then generated tokens
  int64_t prompt_size = 0;
  int64_t computed = 0;             // positions whose keys and values are in the cache
  std::vector<int32_t> blocks;      // block table
  std::vector<uint64_t> hashes;     // chain hash of each full, computed block
  int64_t generated = 0;
  int64_t cached_prompt_tokens = 0; // first admission: prompt positions taken from the prefix cache
  bool admitted_once = false;
  bool want_prompt_logprobs = false;  // still to be computed (first pass over the prompt only)
  std::vector<TokenLogprob> prompt_logprobs;
  std::vector<std::vector<TokenLogprob>> prompt_top_logprobs;
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  bool first_event_sent = false;
  FinishReason finish = FinishReason::none;

  int64_t pending() const { return int64_t(tokens.size()) - computed; }  // tokens still to compute
  bool decoding() const { return pending() == 1 && computed >= prompt_size; }
};

// What one sampling step decided; the event is delivered by the scheduler.
struct SampleOutcome {
  GenerationEvent event;
  bool finished = false;
};

// The k most likely tokens of a row of raw logits as log-probabilities (lse: log_sum_exp of the
// row), most likely first.
std::vector<TokenLogprob> top_tokens(const float* logits, int64_t vocab, int32_t k, float lse);

// A row of logits as sampling gets it: the whole row, or (logits null) its log-sum-exp and top
// n_top logits with their ids, largest first.
struct LogitRow {
  const float* logits = nullptr;
  float lse = 0.0f;
  const int32_t* ids = nullptr;
  const float* values = nullptr;
  int32_t n_top = 0;
};

// How many top logits are enough to sample the sequence's next token and report its logprobs
// (0: the whole row, e.g. under a constraint or penalties).
int32_t top_candidates(const SchedulerSequence& seq);

// Turns the logits of a sequence's last token into its next token: logprobs from the raw logits,
// constraint mask, sampler, end conditions. scratch / mask are reusable buffers; tokenizer (may be
// null) says which tokens end generation.
SampleOutcome sample_next(SchedulerSequence& seq, const LogitRow& row, int64_t vocab, int64_t n_ctx,
                          const Tokenizer* tokenizer, std::vector<float>& scratch, std::vector<uint8_t>& mask);

// Block bookkeeping between a sequence and the cache.
void release_blocks(SchedulerSequence& seq, KvCache& cache);
// Publishes every full computed block not yet published (extending the hash chain).
void publish_blocks(SchedulerSequence& seq, KvCache& cache);
// Retains the longest chain of cached full blocks that is a prefix of the sequence's tokens and
// ends before its last token; returns the positions covered.
int64_t match_prefix(SchedulerSequence& seq, KvCache& cache);

}  // namespace slm
