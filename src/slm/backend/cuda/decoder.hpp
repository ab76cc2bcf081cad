// A prototype decode step for the Llama family on the GPU (Llama 3.x, SmolLM2, Qwen2/2.5 with q/k/v
// biases, Qwen3 with q/k norms, Mistral with a sliding window, Gemma 3 with post-norms, a GELU gate
// and local and global layers): every layer's weights and a KV cache on the device, one token
// per step, logits and the greedy token computed there; the step's kernels (whose shapes do not
// depend on the position: token and position live in device memory) are captured once as a CUDA
// graph and replayed. The engine can adopt it as its CUDA path; it
// knows nothing of model files (the caller hands it host pointers to the weights).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "slm/backend/cuda/cuda.hpp"
#include "slm/format/dtype.hpp"

namespace slm::cuda {

// A weight matrix in host memory, GGUF layout: rows = outputs, cols = inputs.
struct HostMatrix {
  DType type = DType::F32;
  int64_t rows = 0;
  int64_t cols = 0;
  const void* data = nullptr;
};

struct DecoderLayerWeights {
  const float* attn_norm = nullptr;  // [dim]
  HostMatrix wq, wk, wv, wo;
  const float* bq = nullptr;  // optional biases [q_dim], [kv_dim], [kv_dim]
  const float* bk = nullptr;
  const float* bv = nullptr;
  const float* q_norm = nullptr;  // optional per-head RMSNorm weights [head_dim] of q and k (Qwen3), both or none
  const float* k_norm = nullptr;
  const float* ffn_norm = nullptr;  // [dim]
  HostMatrix w_gate, w_up, w_down;
  const float* post_attn_norm = nullptr;  // optional RMSNorms [dim] of the attention and MLP outputs before
  const float* post_ffn_norm = nullptr;   // their residual adds (Gemma), both or none
};

struct DecoderWeights {
  HostMatrix token_embd;  // [vocab][dim]
  std::vector<DecoderLayerWeights> layers;
  const float* output_norm = nullptr;  // [dim]
  HostMatrix output;                   // [vocab][dim]
};

struct DecoderConfig {
  int64_t dim = 0;
  int64_t n_layers = 0;
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t ffn_dim = 0;
  int64_t vocab_size = 0;
  int64_t max_positions = 0;  // KV cache rows
  int64_t sliding_window = 0;
  std::vector<uint8_t> layer_sliding;  // per layer, 1: uses sliding_window; empty: every layer does
  float norm_eps = 1e-5f;
  float attention_scale = 0.0f;  // 0: 1 / sqrt(head_dim)
  std::vector<float> inv_freq;  // rope_dim / 2 inverse frequencies, scaling applied
  std::vector<float> inv_freq_local;  // the same for sliding layers (Gemma 3: another base); empty: inv_freq
  float embedding_scale = 0.0f;  // token embeddings times this (Gemma: sqrt(dim)); 0: none
  bool gelu = false;             // the MLP gate is gelu_tanh (Gemma) instead of silu
  bool rope_interleaved = false;
  float rope_cos_sin_scale = 1.0f;  // LongRoPE's attention factor on cos and sin (1: none)
  DType kv_type = DType::F32;        // F32 or F16
  bool int8_activations = true;      // block-quantized matrices use the 8-bit activation kernels
  bool cuda_graph = true;            // capture the step's kernels once and replay them (one launch per token)
  // A paged cache of kv_rows rows shared by many sequences (forward_paged; step and prefill refuse
  // it); 0: one sequence of max_positions rows. max_positions stays the most positions of a sequence.
  int64_t kv_rows = 0;
};

// One sequence's rows in a paged batch: rows row_begin .. row_begin + n_rows - 1 at consecutive
// positions; position p lives in cache row blocks[p / block_size] * block_size + p % block_size.
struct PagedSequence {
  int64_t row_begin = 0;
  int64_t n_rows = 0;
  const int32_t* blocks = nullptr;
  int64_t n_blocks = 0;
};

// The rows of several sequences evaluated together (continuous batching), host arrays.
struct PagedBatch {
  const int32_t* tokens = nullptr;     // [n_rows]
  const int32_t* positions = nullptr;  // [n_rows]
  int64_t n_rows = 0;
  const PagedSequence* sequences = nullptr;  // in row order, covering every row
  int64_t n_sequences = 0;
  const int64_t* outputs = nullptr;    // rows whose logits (or hidden states) are wanted, ascending
  int64_t n_outputs = 0;
  int64_t block_size = 0;
};

// Output rows of a paged batch that sampling needs only summarized (forward_paged): for output i with
// k[i] > 0, lse[i] and its k_max largest logits, largest first (equal logits: lower id first; id -1
// past the end), in ids/values[i * k_max ...]; its logits row is not copied. Host arrays.
struct PagedTop {
  const int32_t* k = nullptr;  // [n_outputs]; 0: the whole row
  int32_t k_max = 0;           // 1 to 64
  float* lse = nullptr;        // [n_outputs]
  int32_t* ids = nullptr;      // [n_outputs][k_max]
  float* values = nullptr;     // [n_outputs][k_max]
};

class LlamaDecoder {
 public:
  // Uploads the weights; Error(invalid_argument) when shapes disagree with the config.
  LlamaDecoder(const DecoderConfig& config, const DecoderWeights& weights);
  ~LlamaDecoder();
  LlamaDecoder(const LlamaDecoder&) = delete;
  LlamaDecoder& operator=(const LlamaDecoder&) = delete;

  // Runs `token` at `position` (0-based; the cache must hold positions [0, position)) and returns the
  // greedy next token; copies the vocab_size logits into `logits` when it is not null.
  int32_t step(int32_t token, int32_t position, float* logits = nullptr);

  // True when prefill() can run this model (head_dim <= 256 and its attention tile fits the shared memory).
  bool prefill_supported() const;
  // Runs n tokens at positions position .. position + n - 1 (the cache must hold [0, position)) as
  // one batch per chunk of up to 512 rows: every projection a cuBLAS product on the tensor cores
  // (quantized weights dequantized to f16 tiles), causal attention over the cache (attention_rows).
  // logits (host, optional): when all_logits, [n][vocab_size]; else the last token's [vocab_size].
  // Returns the greedy token after the last one.
  int32_t prefill(const int32_t* tokens, int64_t n, int32_t position, float* logits = nullptr,
                  bool all_logits = false);

  // A batch of rows from several sequences over the paged cache (config.kv_rows > 0; prefill_supported()):
  // every row's keys and values into its cache row, then for each output row its logits (out:
  // [n_outputs][vocab_size], host) or, with `hidden`, its final-norm hidden state ([n_outputs][dim]).
  // Projections are cuBLAS products over all rows; attention is one launch for all sequences.
  // With `top`, the outputs it names get only their summaries (logits rows of the others as above).
  void forward_paged(const PagedBatch& batch, float* out, bool hidden = false, const PagedTop* top = nullptr);
  int64_t max_batch_rows() const;  // the most rows forward_paged takes at once

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace slm::cuda
