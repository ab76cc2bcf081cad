// The generic decoder forward over a batch of rows from one or more sequences. Every projection and
// MLP runs as one matrix product over all rows (weights are read once per step); attention runs per
// sequence over that sequence's own paged keys and values. Architectures are traits of ModelConfig.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "slm/engine/kv_cache.hpp"
#include "slm/engine/logit_rows.hpp"
#include "slm/model/model.hpp"

namespace slm {

// One sequence's rows in a batch: rows row_begin .. row_begin + n_rows - 1, whose positions index
// the sequence's block table (position p lives in blocks[p / block_size]). The table must cover
// every position up to the last row's.
struct BatchSequence {
  int64_t row_begin = 0;
  int64_t n_rows = 0;
  std::span<const int32_t> blocks;
};

struct ForwardBatch {
  std::vector<int32_t> tokens;          // [rows]
  std::vector<int32_t> positions;       // [rows]
  std::vector<BatchSequence> sequences; // rows grouped by sequence, in row order
  std::vector<int64_t> outputs;         // rows whose logits (or hidden states) are wanted, ascending

  void clear() {
    tokens.clear();
    positions.clear();
    sequences.clear();
    outputs.clear();
  }
  int64_t rows() const { return int64_t(tokens.size()); }
};

// What the continuous-batching scheduler runs a step with: this CPU forward, or the GPU's
// (cuda_forward.hpp), which keeps the keys and values in GPU memory under the same block ids.
class BatchForward {
 public:
  virtual ~BatchForward() = default;
  // Writes every row's keys and values into the cache and returns, for each row in batch.outputs,
  // its logits (logits: [outputs][vocab_size]).
  virtual void logits(const ForwardBatch& batch, KvCache& cache, float* logits) = 0;
  // Same, except that outputs with top.k[i] > 0 get only their summary in `top` (log-sum-exp and top
  // logits) and their logits rows are left as they are. The default computes every row and
  // summarizes on the host; a GPU forward summarizes on the device and copies only the summaries.
  virtual void logits_top(const ForwardBatch& batch, KvCache& cache, float* logits, TopLogits& top);
  // Same, returning the final-norm hidden states instead (hidden: [outputs][dim]).
  virtual void hidden(const ForwardBatch& batch, KvCache& cache, float* hidden) = 0;
  virtual int64_t max_rows() const = 0;
  virtual int64_t vocab_size() const = 0;
};

class Forward : public BatchForward {
 public:
  // max_rows: the most rows one batch may hold (scratch buffers are sized for it). n_ctx: the
  // context each sequence may reach (LongRoPE picks its factors by it; 0: the trained context).
  Forward(std::shared_ptr<const Model> model, int64_t max_rows, int64_t n_ctx = 0);

  void logits(const ForwardBatch& batch, KvCache& cache, float* logits) override;
  void hidden(const ForwardBatch& batch, KvCache& cache, float* hidden) override;

  int64_t max_rows() const override { return max_rows_; }
  int64_t vocab_size() const override { return model_->config().vocab_size; }
  const Model& model() const { return *model_; }

 private:
  void layers(const ForwardBatch& batch, KvCache& cache);
  void final_norm(const ForwardBatch& batch, float* out);
  void validate(const ForwardBatch& batch, const KvCache& cache) const;

  std::shared_ptr<const Model> model_;
  int64_t max_rows_;
  std::vector<float> inv_freq_;        // global layers (or every layer)
  std::vector<float> inv_freq_local_;  // sliding layers
  // scratch, sized for max_rows rows
  std::vector<float> x_, xn_, q_, k_, v_, attn_, tmp_, gate_, up_;
  std::vector<const uint8_t*> k_ptrs_, v_ptrs_;
};

}  // namespace slm
