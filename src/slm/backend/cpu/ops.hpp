// Element-wise and attention operations of the decoder forward on the CPU (f32 activations).
#pragma once

#include <cstddef>
#include <cstdint>

#include "slm/format/dtype.hpp"

namespace slm::cpu {

// y[t] = x[t] / sqrt(mean(x[t]^2) + eps) * weight, for n_rows rows of n values (in place allowed).
void rms_norm(const float* x, const float* weight, float* y, int64_t n_rows, int64_t n, float eps);

// x[t][i] += bias[i]
void add_bias(float* x, const float* bias, int64_t n_rows, int64_t n);

// x += y (n values)
void add(float* x, const float* y, int64_t n);

// gate[i] = silu(gate[i]) * up[i]
void silu_mul(float* gate, const float* up, int64_t n);
// x *= factor
void scale(float* x, float factor, int64_t n);
// gate = gelu_tanh(gate) * up (GELU with the tanh approximation, as Gemma uses)
void gelu_tanh_mul(float* gate, const float* up, int64_t n);

// Rotary embedding of n_heads heads of head_dim values for each of n_rows rows at positions[t].
// inv_freq has rope_dim/2 values; interleaved rotates pairs (2i, 2i+1), neox pairs (i, i + rope_dim/2).
// cos and sin are multiplied by `scale` (LongRoPE's attention factor), so the rotated dimensions
// are scaled and the others are not.
void rope(float* x, int64_t n_rows, int64_t n_heads, int64_t head_dim, int64_t rope_dim, const int32_t* positions,
          const float* inv_freq, bool interleaved, float scale = 1.0f);

struct AttentionShape {
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t sliding_window = 0;  // 0: none; else keys with (query_pos - key_pos) >= window are masked
  float scale = 0.0f;          // usually 1/sqrt(head_dim)
};

// Causal attention for n_rows queries at positions[t] over a cache whose row p holds the keys and
// values of position p (k_cache/v_cache: [>= max position + 1][n_kv_heads * head_dim], row stride
// kv_stride floats). out: [n_rows][n_heads * head_dim].
void attention(const float* q, const float* k_cache, const float* v_cache, int64_t kv_stride, const int32_t* positions,
               int64_t n_rows, const AttentionShape& shape, float* out);

// The keys and values of one sequence in a paged cache: position p is row p % block_size of block
// p / block_size, whose rows start at k_blocks[p / block_size] (k_row_bytes apart; likewise v).
// Rows hold n_kv_heads * head_dim values of k_type / v_type: F32, F16 or Q8_0 (head_dim a multiple
// of 32), each head's values read as floats.
struct KvBlocks {
  const uint8_t* const* k_blocks = nullptr;
  const uint8_t* const* v_blocks = nullptr;
  int64_t block_size = 0;
  size_t k_row_bytes = 0;
  size_t v_row_bytes = 0;
  DType k_type = DType::F32;
  DType v_type = DType::F32;
  const uint8_t* k(int64_t p) const { return k_blocks[p / block_size] + size_t(p % block_size) * k_row_bytes; }
  const uint8_t* v(int64_t p) const { return v_blocks[p / block_size] + size_t(p % block_size) * v_row_bytes; }
};

// One sequence's share of a batch: rows row_begin .. row_begin + n_rows - 1 of q, positions and out.
struct AttentionSequence {
  int64_t row_begin = 0;
  int64_t n_rows = 0;
  KvBlocks kv;
};

// Causal attention of several sequences in one call, each over its own paged keys and values
// (its rows' keys must already be in its cache). q: [rows][n_heads * head_dim]; out likewise.
void attention_paged(const float* q, const AttentionSequence* sequences, int64_t n_sequences, const int32_t* positions,
                     const AttentionShape& shape, float* out);

// Numerically stable log-softmax of one row into out (may alias x).
void log_softmax(const float* x, float* out, int64_t n);

}  // namespace slm::cpu
