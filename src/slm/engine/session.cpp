#include "slm/engine/session.hpp"

#include <algorithm>
#include <cmath>

#include "slm/backend/cpu/matmul.hpp"
#include "slm/backend/cpu/ops.hpp"
#include "slm/util/error.hpp"

namespace slm {

namespace {
void linear(const Matrix& w, const float* x, int64_t n, float* y) {
  cpu::matmul(w.type, w.data, w.rows, w.cols, x, n, y);
}
}  // namespace

Session::Session(std::shared_ptr<const Model> model, const SessionOptions& options) : model_(std::move(model)) {
  const ModelConfig& c = model_->config();
  if (options.n_ctx <= 0) fail(ErrorKind::invalid_argument, "context size must be positive, found {}", options.n_ctx);
  if (options.n_batch <= 0) fail(ErrorKind::invalid_argument, "batch size must be positive, found {}", options.n_batch);
  n_ctx_ = c.context_length > 0 ? std::min(options.n_ctx, c.context_length) : options.n_ctx;
  n_batch_ = std::min(options.n_batch, n_ctx_);
  inv_freq_ = c.rope_inv_freq();
  k_cache_.assign(size_t(c.n_layers), std::vector<float>(size_t(n_ctx_ * c.kv_dim())));
  v_cache_.assign(size_t(c.n_layers), std::vector<float>(size_t(n_ctx_ * c.kv_dim())));
  const auto rows = size_t(n_batch_);
  x_.resize(rows * size_t(c.dim));
  xn_.resize(rows * size_t(c.dim));
  tmp_.resize(rows * size_t(c.dim));
  q_.resize(rows * size_t(c.q_dim()));
  attn_.resize(rows * size_t(c.q_dim()));
  gate_.resize(rows * size_t(c.ffn_dim));
  up_.resize(rows * size_t(c.ffn_dim));
  positions_.resize(rows);
}

size_t Session::kv_cache_bytes() const {
  const ModelConfig& c = model_->config();
  return size_t(2 * c.n_layers * n_ctx_ * c.kv_dim()) * sizeof(float);
}

void Session::truncate(int64_t n) {
  if (n < 0 || n > n_past_) fail(ErrorKind::invalid_argument, "cannot truncate to {} of {} positions", n, n_past_);
  n_past_ = n;
}

void Session::forward(std::span<const int32_t> tokens, float* logits, bool all_logits) {
  const ModelConfig& c = model_->config();
  const auto n = int64_t(tokens.size());
  if (n == 0) fail(ErrorKind::invalid_argument, "forward needs at least one token");
  if (n_past_ + n > n_ctx_) {
    fail(ErrorKind::out_of_range, "{} tokens after {} already in the context exceed the context size {}", n, n_past_,
         n_ctx_);
  }
  for (int32_t t : tokens) {
    if (t < 0 || t >= c.vocab_size) {
      fail(ErrorKind::invalid_argument, "token id {} is outside the vocabulary [0, {})", t, c.vocab_size);
    }
  }
  for (int64_t start = 0; start < n; start += n_batch_) {
    const int64_t count = std::min(n_batch_, n - start);
    const bool last = start + count == n;
    float* out = nullptr;
    if (all_logits) {
      out = logits + start * c.vocab_size;
    } else if (last) {
      out = logits;
    }
    forward_chunk(tokens.data() + start, count, out, all_logits);
  }
}

// The generic decoder forward: one chunk of n tokens at positions n_past_ .. n_past_+n-1.
void Session::forward_chunk(const int32_t* tokens, int64_t n, float* logits, bool all_logits) {
  const ModelConfig& c = model_->config();
  const Weights& w = model_->weights();
  const int64_t dim = c.dim, kv_dim = c.kv_dim(), q_dim = c.q_dim();
  for (int64_t t = 0; t < n; ++t) positions_[size_t(t)] = int32_t(n_past_ + t);

  // x[n][dim] = embedding rows
  const size_t row_bytes = dtype_row_bytes(w.token_embd.type, uint64_t(dim));
  for (int64_t t = 0; t < n; ++t) {
    cpu::to_f32(w.token_embd.type, static_cast<const uint8_t*>(w.token_embd.data) + size_t(tokens[t]) * row_bytes,
                x_.data() + t * dim, dim);
  }

  cpu::AttentionShape shape;
  shape.n_heads = c.n_heads;
  shape.n_kv_heads = c.n_kv_heads;
  shape.head_dim = c.head_dim;
  shape.sliding_window = c.sliding_window;
  shape.scale = 1.0f / std::sqrt(float(c.head_dim));
  const bool interleaved = c.rope_style == RopeStyle::interleaved;

  for (int64_t l = 0; l < c.n_layers; ++l) {
    const LayerWeights& lw = w.layers[size_t(l)];
    float* k = k_cache_[size_t(l)].data() + n_past_ * kv_dim;  // [n][kv_dim] rows of this chunk
    float* v = v_cache_[size_t(l)].data() + n_past_ * kv_dim;

    cpu::rms_norm(x_.data(), lw.attn_norm.data(), xn_.data(), n, dim, c.norm_eps);  // xn[n][dim]
    linear(lw.wq, xn_.data(), n, q_.data());                                         // q[n][q_dim]
    linear(lw.wk, xn_.data(), n, k);                                                 // k[n][kv_dim]
    linear(lw.wv, xn_.data(), n, v);                                                 // v[n][kv_dim]
    if (c.qkv_bias) {
      cpu::add_bias(q_.data(), lw.bq.data(), n, q_dim);
      cpu::add_bias(k, lw.bk.data(), n, kv_dim);
      cpu::add_bias(v, lw.bv.data(), n, kv_dim);
    }
    if (c.qk_norm) {  // per-head RMSNorm over head_dim
      cpu::rms_norm(q_.data(), lw.q_norm.data(), q_.data(), n * c.n_heads, c.head_dim, c.norm_eps);
      cpu::rms_norm(k, lw.k_norm.data(), k, n * c.n_kv_heads, c.head_dim, c.norm_eps);
    }
    cpu::rope(q_.data(), n, c.n_heads, c.head_dim, c.rope_dim, positions_.data(), inv_freq_.data(), interleaved);
    cpu::rope(k, n, c.n_kv_heads, c.head_dim, c.rope_dim, positions_.data(), inv_freq_.data(), interleaved);
    cpu::attention(q_.data(), k_cache_[size_t(l)].data(), v_cache_[size_t(l)].data(), kv_dim, positions_.data(), n,
                   shape, attn_.data());                                                // attn[n][q_dim]
    linear(lw.wo, attn_.data(), n, tmp_.data());                                        // tmp[n][dim]
    cpu::add(x_.data(), tmp_.data(), n * dim);                                          // residual

    cpu::rms_norm(x_.data(), lw.ffn_norm.data(), xn_.data(), n, dim, c.norm_eps);    // xn[n][dim]
    linear(lw.w_gate, xn_.data(), n, gate_.data());                                     // gate[n][ffn]
    linear(lw.w_up, xn_.data(), n, up_.data());                                         // up[n][ffn]
    cpu::silu_mul(gate_.data(), up_.data(), n * c.ffn_dim);                             // gate = silu(gate) * up
    linear(lw.w_down, gate_.data(), n, tmp_.data());                                    // tmp[n][dim]
    cpu::add(x_.data(), tmp_.data(), n * dim);                                          // residual
  }
  n_past_ += n;

  if (logits == nullptr) return;
  const int64_t first = all_logits ? 0 : n - 1;  // rows whose logits are wanted
  const int64_t rows = n - first;
  cpu::rms_norm(x_.data() + first * dim, w.output_norm.data(), xn_.data(), rows, dim, c.norm_eps);
  linear(w.output, xn_.data(), rows, logits);                                           // logits[rows][vocab]
}

}  // namespace slm
