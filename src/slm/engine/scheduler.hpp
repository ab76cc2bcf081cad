// Continuous batching: many sequences share one model. Each step runs one forward over every
// running sequence's next token plus chunks of the prompts being prefilled; sequences join and
// leave between steps. The KV cache is paged (fixed-size blocks) and full blocks of identical
// prompt prefixes are shared between sequences. One scheduler thread owns the model's compute;
// callers talk to it through submit / cancel and the per-request callback.
#pragma once

#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "slm/engine/constraint.hpp"
#include "slm/engine/device.hpp"
#include "slm/engine/sampler.hpp"
#include "slm/format/dtype.hpp"
#include "slm/model/model.hpp"

namespace slm {

// timeout: the request's time limit ran out (GenerationRequest::timeout_seconds).
enum class FinishReason { none, length, stop, eog, cancelled, error, timeout };
const char* finish_reason_name(FinishReason reason);  // OpenAI's words: "length", "stop", ...

struct TokenLogprob {
  int32_t token = -1;
  float logprob = 0.0f;  // log-softmax of the raw logits (before penalties, filters, temperature)
};

struct GenerationRequest {
  std::vector<int32_t> prompt;          // must be non-empty and at most n_ctx - 1 tokens
  SamplerOptions sampling;
  int64_t max_tokens = 256;             // generated tokens; the sequence also stops at n_ctx
  int32_t top_logprobs = 0;             // alternatives reported per generated token (0..20)
  bool prompt_logprobs = false;         // report logprob of each prompt token given its prefix (echo),
                                        // with top_logprobs alternatives per prompt position too
  double timeout_seconds = 0.0;         // > 0: counted from submit, queued or running; when it runs
                                        // out the sequence ends with FinishReason::timeout, blocks freed
  bool stop_at_eog = true;              // end at the tokenizer's end-of-generation tokens
  std::shared_ptr<TokenConstraint> constraint;  // optional; masks the vocabulary each step
};

// One event per generated token, in order. The last event of a request has finish != none (and
// token == -1 when no token came with it: cancelled, error, or an end-of-generation token, which
// is not reported as text).
struct GenerationEvent {
  int32_t token = -1;
  float logprob = 0.0f;
  std::vector<TokenLogprob> top_logprobs;
  std::vector<TokenLogprob> prompt_logprobs;  // first event only, when asked: [prompt.size()-1]
  std::vector<std::vector<TokenLogprob>> prompt_top_logprobs;  // with prompt_logprobs: top_logprobs
                                                               // alternatives per prompt position
  FinishReason finish = FinishReason::none;
  std::string error;                    // finish == error
  int64_t prompt_tokens = 0;            // on the last event: usage
  int64_t cached_prompt_tokens = 0;     // prompt tokens whose KV came from the prefix cache
  int64_t completion_tokens = 0;
};

// Called on the scheduler thread; must be quick (copy and hand off). Returning false stops the
// sequence (a stop string was seen, the client went away): no further events follow except a
// final one with finish == stop that the scheduler sends itself.
using GenerationCallback = std::function<bool(const GenerationEvent&)>;

enum class Pooling { last, mean, cls };

struct SchedulerOptions {
  int32_t max_sequences = 8;       // generating sequences at once (--parallel); as many prompt-only
                                   // ones (max_tokens 0: scoring) may run beside them
  int64_t n_ctx = 4096;            // per-sequence context; capped at the model's trained context
  int64_t kv_tokens = 0;           // KV positions shared by all sequences; 0: max_sequences * n_ctx
  int32_t block_size = 16;         // KV positions per page
  int64_t prefill_chunk = 256;     // prompt tokens one sequence may add per step
  int64_t max_batch_tokens = 512;  // tokens in one forward
  int32_t max_queue = 64;          // requests waiting for a slot (beyond those that start at the next
                                   // step) past which submit throws out_of_range; 0: only what starts
  Device device = Device::cpu;     // cuda: weights and keys/values in GPU memory (cuda_forward.hpp)
  DType cache_type_k = DType::F32;  // the KV cache's element types: F32, F16 or Q8_0 (on the GPU: F32 or
  DType cache_type_v = DType::F32;  // F16, the same for both)
};

struct SchedulerStats {
  int32_t running = 0;
  int32_t queued = 0;              // waiting for a slot (not counting those that start at the next step)
  int64_t kv_blocks_used = 0;
  int64_t kv_blocks_total = 0;
  int64_t prefix_cache_hit_tokens = 0;  // cumulative
  int64_t steps = 0;                    // cumulative forwards
  int64_t last_batch_tokens = 0;
  int64_t last_batch_sequences = 0;
  int64_t prompt_tokens = 0;            // cumulative
  int64_t generated_tokens = 0;         // cumulative
  int64_t preemptions = 0;              // cumulative: sequences sent back to recompute when blocks ran out
  int64_t timeouts = 0;                 // cumulative: requests ended by their time limit
};

class Scheduler {
 public:
  Scheduler(std::shared_ptr<const Model> model, const SchedulerOptions& options);
  ~Scheduler();  // stops the thread; unfinished requests end with FinishReason::cancelled
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues a request and returns its id. Throws Error(invalid_argument) for an empty prompt or bad
  // options, Error(out_of_range) when the prompt does not fit n_ctx or the queue is full.
  uint64_t submit(GenerationRequest request, GenerationCallback callback);
  // Ends a request (queued or running) with FinishReason::cancelled and frees its KV blocks. Safe
  // from any thread, for unknown or finished ids too.
  void cancel(uint64_t id);
  // Hidden state of the final norm, pooled, L2-normalised when `normalize`. Runs on the scheduler
  // thread between steps.
  std::future<std::vector<float>> embed(std::vector<int32_t> tokens, Pooling pooling, bool normalize);

  SchedulerStats stats() const;
  const Model& model() const;
  std::shared_ptr<const Model> model_ptr() const;
  const SchedulerOptions& options() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace slm
