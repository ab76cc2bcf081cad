#include "slm/engine/forward.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "slm/backend/cpu/matmul.hpp"
#include "slm/backend/cpu/ops.hpp"
#include "slm/util/error.hpp"

namespace slm {

namespace {
void linear(const Matrix& w, const float* x, int64_t n, float* y) {
  cpu::matmul(w.type, w.data, w.rows, w.cols, x, n, y);
}
}  // namespace

Forward::Forward(std::shared_ptr<const Model> model, int64_t max_rows, int64_t n_ctx)
    : model_(std::move(model)), max_rows_(max_rows) {
  if (max_rows <= 0) fail(ErrorKind::invalid_argument, "expected a positive batch size, found {}", max_rows);
  const ModelConfig& c = model_->config();
  if (n_ctx <= 0) n_ctx = c.context_length;
  inv_freq_ = c.rope_inv_freq(false, n_ctx);
  inv_freq_local_ = c.rope_inv_freq(true, n_ctx);
  const auto rows = size_t(max_rows);
  x_.resize(rows * size_t(c.dim));
  xn_.resize(rows * size_t(c.dim));
  tmp_.resize(rows * size_t(c.dim));
  q_.resize(rows * size_t(c.q_dim()));
  k_.resize(rows * size_t(c.kv_dim()));
  v_.resize(rows * size_t(c.kv_dim()));
  attn_.resize(rows * size_t(c.q_dim()));
  gate_.resize(rows * size_t(c.ffn_dim));
  up_.resize(rows * size_t(c.ffn_dim));
}

void Forward::validate(const ForwardBatch& batch, const KvCache& cache) const {
  const ModelConfig& c = model_->config();
  const int64_t n = batch.rows();
  if (n <= 0 || n > max_rows_) fail(ErrorKind::internal, "expected 1 to {} rows in a batch, found {}", max_rows_, n);
  if (int64_t(batch.positions.size()) != n) {
    fail(ErrorKind::internal, "expected {} positions, found {}", n, batch.positions.size());
  }
  if (cache.kv_dim() != c.kv_dim()) fail(ErrorKind::internal, "KV cache rows of {} values, model needs {}", cache.kv_dim(), c.kv_dim());
  for (int32_t t : batch.tokens) {
    if (t < 0 || t >= c.vocab_size) {
      fail(ErrorKind::invalid_argument, "token id {} is outside the vocabulary [0, {})", t, c.vocab_size);
    }
  }
  int64_t next_row = 0;
  for (const BatchSequence& s : batch.sequences) {
    if (s.row_begin != next_row || s.n_rows <= 0) fail(ErrorKind::internal, "batch sequences must cover the rows in order");
    next_row += s.n_rows;
    for (int64_t r = s.row_begin; r < s.row_begin + s.n_rows; ++r) {
      const int64_t p = batch.positions[size_t(r)];
      if (p < 0 || p / cache.block_size() >= int64_t(s.blocks.size())) {
        fail(ErrorKind::internal, "position {} is not covered by a block table of {} blocks", p, s.blocks.size());
      }
    }
  }
  if (next_row != n) fail(ErrorKind::internal, "batch sequences cover {} of {} rows", next_row, n);
  int64_t last = -1;
  for (int64_t r : batch.outputs) {
    if (r <= last || r >= n) fail(ErrorKind::internal, "output rows must be ascending rows of the batch");
    last = r;
  }
}

// Every layer over the batch's rows: x[n][dim] holds the residual stream afterwards.
void Forward::layers(const ForwardBatch& batch, KvCache& cache) {
  validate(batch, cache);
  const ModelConfig& c = model_->config();
  const Weights& w = model_->weights();
  const int64_t n = batch.rows();
  const int64_t dim = c.dim, kv_dim = c.kv_dim(), q_dim = c.q_dim();
  const int64_t bs = cache.block_size();
  const int32_t* positions = batch.positions.data();

  // x[n][dim] = embedding rows
  const size_t row_bytes = dtype_row_bytes(w.token_embd.type, uint64_t(dim));
  for (int64_t t = 0; t < n; ++t) {
    cpu::to_f32(w.token_embd.type,
                static_cast<const uint8_t*>(w.token_embd.data) + size_t(batch.tokens[size_t(t)]) * row_bytes,
                x_.data() + t * dim, dim);
  }
  if (c.embedding_scale > 0.0f) cpu::scale(x_.data(), c.embedding_scale, n * dim);  // Gemma: x *= sqrt(dim)

  cpu::AttentionShape shape;
  shape.n_heads = c.n_heads;
  shape.n_kv_heads = c.n_kv_heads;
  shape.head_dim = c.head_dim;
  shape.scale = c.attention_scale_or_default();
  const float rope_scale = c.rope_cos_sin_scale();
  const bool interleaved = c.rope_style == RopeStyle::interleaved;

  std::vector<cpu::AttentionSequence> seqs(batch.sequences.size());
  size_t n_ptrs = 0;
  for (const BatchSequence& s : batch.sequences) n_ptrs += s.blocks.size();
  k_ptrs_.resize(n_ptrs);
  v_ptrs_.resize(n_ptrs);

  for (int64_t l = 0; l < c.n_layers; ++l) {
    const LayerWeights& lw = w.layers[size_t(l)];
    const bool sliding = c.layer_uses_window(l);
    shape.sliding_window = sliding ? c.sliding_window : 0;
    const float* inv_freq = sliding ? inv_freq_local_.data() : inv_freq_.data();

    cpu::rms_norm(x_.data(), lw.attn_norm.data(), xn_.data(), n, dim, c.norm_eps);  // xn[n][dim]
    linear(lw.wq, xn_.data(), n, q_.data());                                         // q[n][q_dim]
    linear(lw.wk, xn_.data(), n, k_.data());                                         // k[n][kv_dim]
    linear(lw.wv, xn_.data(), n, v_.data());                                         // v[n][kv_dim]
    if (c.qkv_bias) {
      cpu::add_bias(q_.data(), lw.bq.data(), n, q_dim);
      cpu::add_bias(k_.data(), lw.bk.data(), n, kv_dim);
      cpu::add_bias(v_.data(), lw.bv.data(), n, kv_dim);
    }
    if (c.qk_norm) {  // per-head RMSNorm over head_dim
      cpu::rms_norm(q_.data(), lw.q_norm.data(), q_.data(), n * c.n_heads, c.head_dim, c.norm_eps);
      cpu::rms_norm(k_.data(), lw.k_norm.data(), k_.data(), n * c.n_kv_heads, c.head_dim, c.norm_eps);
    }
    cpu::rope(q_.data(), n, c.n_heads, c.head_dim, c.rope_dim, positions, inv_freq, interleaved, rope_scale);
    cpu::rope(k_.data(), n, c.n_kv_heads, c.head_dim, c.rope_dim, positions, inv_freq, interleaved, rope_scale);

    // cache[block(p)][p % bs] = k[t], v[t] for each row t of each sequence
    size_t ptr = 0;
    for (size_t i = 0; i < batch.sequences.size(); ++i) {
      const BatchSequence& s = batch.sequences[i];
      for (int64_t t = s.row_begin; t < s.row_begin + s.n_rows; ++t) {
        const int64_t p = positions[t];
        const int32_t block = s.blocks[size_t(p / bs)];
        cache.write_k(l, block, p % bs, k_.data() + t * kv_dim);
        cache.write_v(l, block, p % bs, v_.data() + t * kv_dim);
      }
      cpu::AttentionSequence& a = seqs[i];
      a.row_begin = s.row_begin;
      a.n_rows = s.n_rows;
      a.kv.k_blocks = k_ptrs_.data() + ptr;
      a.kv.v_blocks = v_ptrs_.data() + ptr;
      a.kv.block_size = bs;
      a.kv.k_row_bytes = cache.k_row_bytes();
      a.kv.v_row_bytes = cache.v_row_bytes();
      a.kv.k_type = cache.k_type();
      a.kv.v_type = cache.v_type();
      for (int32_t block : s.blocks) {
        k_ptrs_[ptr] = cache.k_block(l, block);
        v_ptrs_[ptr] = cache.v_block(l, block);
        ++ptr;
      }
    }
    cpu::attention_paged(q_.data(), seqs.data(), int64_t(seqs.size()), positions, shape, attn_.data());  // attn[n][q_dim]
    linear(lw.wo, attn_.data(), n, tmp_.data());                                        // tmp[n][dim]
    if (c.post_norms) cpu::rms_norm(tmp_.data(), lw.post_attn_norm.data(), tmp_.data(), n, dim, c.norm_eps);
    cpu::add(x_.data(), tmp_.data(), n * dim);                                          // residual

    cpu::rms_norm(x_.data(), lw.ffn_norm.data(), xn_.data(), n, dim, c.norm_eps);    // xn[n][dim]
    linear(lw.w_gate, xn_.data(), n, gate_.data());                                     // gate[n][ffn]
    linear(lw.w_up, xn_.data(), n, up_.data());                                         // up[n][ffn]
    if (c.activation == Activation::gelu_tanh) {
      cpu::gelu_tanh_mul(gate_.data(), up_.data(), n * c.ffn_dim);                      // gate = gelu(gate) * up
    } else {
      cpu::silu_mul(gate_.data(), up_.data(), n * c.ffn_dim);                           // gate = silu(gate) * up
    }
    linear(lw.w_down, gate_.data(), n, tmp_.data());                                    // tmp[n][dim]
    if (c.post_norms) cpu::rms_norm(tmp_.data(), lw.post_ffn_norm.data(), tmp_.data(), n, dim, c.norm_eps);
    cpu::add(x_.data(), tmp_.data(), n * dim);                                          // residual
  }
}

// out[outputs][dim] = final RMSNorm of the output rows of x
void Forward::final_norm(const ForwardBatch& batch, float* out) {
  const ModelConfig& c = model_->config();
  const Weights& w = model_->weights();
  const int64_t dim = c.dim;
  const auto n_out = int64_t(batch.outputs.size());
  // Output rows gathered into tmp[n_out][dim] (a run of consecutive rows is read in place).
  const float* rows = x_.data();
  bool consecutive = true;
  for (int64_t i = 0; i < n_out; ++i) consecutive = consecutive && batch.outputs[size_t(i)] == batch.outputs[0] + i;
  if (consecutive) {
    rows = x_.data() + batch.outputs[0] * dim;
  } else {
    for (int64_t i = 0; i < n_out; ++i) {
      std::copy_n(x_.data() + batch.outputs[size_t(i)] * dim, dim, tmp_.data() + i * dim);
    }
    rows = tmp_.data();
  }
  cpu::rms_norm(rows, w.output_norm.data(), out, n_out, dim, c.norm_eps);
}

void Forward::logits(const ForwardBatch& batch, KvCache& cache, float* logits) {
  layers(batch, cache);
  if (batch.outputs.empty()) return;
  const auto n_out = int64_t(batch.outputs.size());
  final_norm(batch, xn_.data());                                           // xn[n_out][dim]
  linear(model_->weights().output, xn_.data(), n_out, logits);              // logits[n_out][vocab]
}

void Forward::hidden(const ForwardBatch& batch, KvCache& cache, float* hidden) {
  layers(batch, cache);
  if (batch.outputs.empty()) return;
  final_norm(batch, hidden);                                               // hidden[n_out][dim]
}

}  // namespace slm
