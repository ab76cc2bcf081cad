#include "slm/engine/session.hpp"

#include <algorithm>
#include <cmath>

#include "slm/util/error.hpp"

namespace slm {

namespace {
int64_t context_size(const ModelConfig& c, const SessionOptions& options) {
  if (options.n_ctx <= 0) fail(ErrorKind::invalid_argument, "context size must be positive, found {}", options.n_ctx);
  if (options.n_batch <= 0) fail(ErrorKind::invalid_argument, "batch size must be positive, found {}", options.n_batch);
  return c.context_length > 0 ? std::min(options.n_ctx, c.context_length) : options.n_ctx;
}
}  // namespace

Session::Session(std::shared_ptr<const Model> model, const SessionOptions& options)
    : model_(std::move(model)),
      n_ctx_(context_size(model_->config(), options)),
      n_batch_(std::min(options.n_batch, n_ctx_)),
      cache_(model_->config(), 1, n_ctx_, options.cache_type_k, options.cache_type_v),
      forward_(model_, n_batch_, n_ctx_) {
  blocks_.push_back(cache_.allocate());
}

size_t Session::kv_cache_bytes() const { return cache_.bytes(); }

void Session::truncate(int64_t n) {
  if (n < 0 || n > n_past_) fail(ErrorKind::invalid_argument, "cannot truncate to {} of {} positions", n, n_past_);
  n_past_ = n;
}

void Session::check_tokens(std::span<const int32_t> tokens) const {
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
}

void Session::forward(std::span<const int32_t> tokens, float* logits, bool all_logits) {
  check_tokens(tokens);
  const int64_t vocab = config().vocab_size;
  const auto n = int64_t(tokens.size());
  for (int64_t start = 0; start < n; start += n_batch_) {
    const int64_t count = std::min(n_batch_, n - start);
    const bool last = start + count == n;
    if (all_logits) {
      forward_chunk(tokens.data() + start, count, logits + start * vocab, 0, false);
    } else {
      forward_chunk(tokens.data() + start, count, last ? logits : nullptr, count - 1, false);
    }
  }
}

void Session::forward_hidden(std::span<const int32_t> tokens, float* hidden) {
  check_tokens(tokens);
  const auto n = int64_t(tokens.size());
  for (int64_t start = 0; start < n; start += n_batch_) {
    const int64_t count = std::min(n_batch_, n - start);
    forward_chunk(tokens.data() + start, count, hidden + start * config().dim, 0, true);
  }
}

// One chunk of n tokens at positions n_past_ .. n_past_+n-1, as a batch of one sequence.
void Session::forward_chunk(const int32_t* tokens, int64_t n, float* out, int64_t first_output, bool hidden) {
  batch_.clear();
  batch_.tokens.assign(tokens, tokens + n);
  for (int64_t t = 0; t < n; ++t) batch_.positions.push_back(int32_t(n_past_ + t));
  batch_.sequences.push_back(BatchSequence{0, n, blocks_});
  if (out != nullptr) {
    for (int64_t t = first_output; t < n; ++t) batch_.outputs.push_back(t);
  }
  if (hidden) {
    forward_.hidden(batch_, cache_, out);
  } else {
    forward_.logits(batch_, cache_, out);
  }
  n_past_ += n;
}

}  // namespace slm
