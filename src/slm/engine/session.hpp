// A Session is one sequence being evaluated: its KV cache (one block holding every position) and the
// generic batch forward, used for a single sequence. Weights are shared, read-only, by every session.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "slm/engine/forward.hpp"
#include "slm/engine/kv_cache.hpp"
#include "slm/model/model.hpp"

namespace slm {

struct SessionOptions {
  int64_t n_ctx = 4096;    // KV cache positions; capped at the model's trained context
  int64_t n_batch = 512;   // tokens per forward when processing a prompt
  DType cache_type_k = DType::F32;  // the KV cache's element types: F32, F16 or Q8_0 (kv_cache.hpp)
  DType cache_type_v = DType::F32;
};

class Session {
 public:
  Session(std::shared_ptr<const Model> model, const SessionOptions& options = {});

  // Evaluates `tokens` at positions n_past() .. n_past()+n-1 and appends them to the cache.
  // logits: when all_logits, [n][vocab_size]; else [vocab_size] for the last token only.
  void forward(std::span<const int32_t> tokens, float* logits, bool all_logits);
  // Same evaluation, returning the final-norm hidden state of every token: hidden[n][dim].
  void forward_hidden(std::span<const int32_t> tokens, float* hidden);
  int64_t n_past() const { return n_past_; }
  int64_t n_ctx() const { return n_ctx_; }
  void reset() { n_past_ = 0; }
  // Forgets every position from n on (n <= n_past()).
  void truncate(int64_t n);
  const Model& model() const { return *model_; }
  const ModelConfig& config() const { return model_->config(); }
  size_t kv_cache_bytes() const;

 private:
  // out: logits, or hidden states when `hidden`; rows from `first_output` on.
  void forward_chunk(const int32_t* tokens, int64_t n, float* out, int64_t first_output, bool hidden);
  void check_tokens(std::span<const int32_t> tokens) const;

  std::shared_ptr<const Model> model_;
  int64_t n_ctx_;
  int64_t n_batch_;
  int64_t n_past_ = 0;
  KvCache cache_;              // one block of n_ctx positions
  std::vector<int32_t> blocks_;
  Forward forward_;
  ForwardBatch batch_;
};

}  // namespace slm
