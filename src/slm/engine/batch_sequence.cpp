#include "slm/engine/batch_sequence.hpp"

#include <algorithm>
#include <cmath>

#include "slm/util/error.hpp"

namespace slm {

SchedulerSequence::SchedulerSequence(uint64_t id_, GenerationRequest request_, GenerationCallback callback_)
    : id(id_), request(std::move(request_)), callback(std::move(callback_)), sampler(request.sampling) {
  tokens = request.prompt;
  prompt_size = int64_t(tokens.size());
  want_prompt_logprobs = request.prompt_logprobs && prompt_size > 1;
  for (int32_t t : tokens) sampler.accept(t);
}

std::vector<TokenLogprob> top_tokens(const float* logits, int64_t vocab, int32_t k, float lse) {
  std::vector<TokenLogprob> top;
  if (k <= 0) return top;
  std::vector<int32_t> ids(size_t(std::min<int64_t>(k, vocab)));
  std::vector<float> values(ids.size());
  const int32_t n = top_logits(logits, vocab, k, ids.data(), values.data());
  for (int32_t i = 0; i < n; ++i) top.push_back({ids[size_t(i)], values[size_t(i)] - lse});
  return top;
}

namespace {

// The sampled token (in out.event) joins the sequence; the end conditions after it.
void finish_token(SchedulerSequence& seq, SampleOutcome& out, const TokenConstraint* constraint, int64_t n_ctx) {
  GenerationEvent& ev = out.event;
  ++seq.generated;
  seq.tokens.push_back(ev.token);
  if (constraint != nullptr && constraint->finished()) {
    ev.finish = FinishReason::stop;
  } else if (seq.generated >= seq.request.max_tokens || int64_t(seq.tokens.size()) >= n_ctx) {
    ev.finish = FinishReason::length;
  }
  out.finished = ev.finish != FinishReason::none;
}

}  // namespace

int32_t top_candidates(const SchedulerSequence& seq) {
  if (seq.request.constraint != nullptr) return 0;
  const int32_t k = seq.sampler.top_candidates();
  if (k <= 0) return 0;
  const int32_t need = std::max(k, seq.request.top_logprobs);
  return need <= Sampler::kMaxTopCandidates ? need : 0;
}

SampleOutcome sample_next(SchedulerSequence& seq, const LogitRow& row, int64_t vocab, int64_t n_ctx,
                          const Tokenizer* tokenizer, std::vector<float>& scratch, std::vector<uint8_t>& mask) {
  SampleOutcome out;
  GenerationEvent& ev = out.event;
  if (!seq.first_event_sent) {
    ev.prompt_logprobs = std::move(seq.prompt_logprobs);
    ev.prompt_top_logprobs = std::move(seq.prompt_top_logprobs);
  }
  if (seq.generated >= seq.request.max_tokens) {  // max_tokens == 0: the prompt only
    ev.finish = FinishReason::length;
    out.finished = true;
    return out;
  }

  TokenConstraint* constraint = seq.request.constraint.get();
  const float* logits = row.logits;
  if (logits == nullptr) {  // the row's top candidates only (no constraint, no penalties: see top_candidates)
    if (constraint != nullptr) {
      fail(ErrorKind::internal, "sampling: a constrained sequence needs the whole row of logits, found its top only");
    }
    if (row.n_top <= 0) {
      fail(ErrorKind::invalid_argument, "sampling: expected logits that are numbers, found only NaN");
    }
    const int32_t token = seq.sampler.sample_top({row.ids, size_t(row.n_top)}, {row.values, size_t(row.n_top)});
    seq.sampler.accept(token);
    if (seq.request.stop_at_eog && tokenizer != nullptr && tokenizer->is_eog(token)) {
      ev.finish = FinishReason::eog;
      out.finished = true;
      return out;
    }
    ev.token = token;
    ev.logprob = row.values[std::find(row.ids, row.ids + row.n_top, token) - row.ids] - row.lse;
    for (int32_t i = 0; i < std::min(seq.request.top_logprobs, row.n_top); ++i) {
      ev.top_logprobs.push_back({row.ids[i], row.values[i] - row.lse});
    }
    finish_token(seq, out, nullptr, n_ctx);
    return out;
  }
  // Logprobs come from the raw logits; the sampler sees a masked copy.
  const float lse = log_sum_exp(logits, vocab);
  scratch.assign(logits, logits + vocab);
  if (constraint != nullptr) {
    mask.assign(size_t(vocab), 0);
    constraint->allowed_tokens(mask);
    bool any = false;
    for (int64_t i = 0; i < vocab; ++i) {
      if (mask[size_t(i)] == 0) {
        scratch[size_t(i)] = -INFINITY;
      } else {
        any = true;
      }
    }
    if (!any) {
      ev.finish = FinishReason::error;
      ev.error = "the constraint allows no token";
      out.finished = true;
      return out;
    }
  }
  const int32_t token = seq.sampler.sample(scratch);
  seq.sampler.accept(token);
  if (constraint != nullptr) constraint->accept(token);

  if (seq.request.stop_at_eog && tokenizer != nullptr && tokenizer->is_eog(token)) {
    ev.finish = FinishReason::eog;
    out.finished = true;
    return out;
  }
  ev.token = token;
  ev.logprob = logits[token] - lse;
  ev.top_logprobs = top_tokens(logits, vocab, seq.request.top_logprobs, lse);
  finish_token(seq, out, constraint, n_ctx);
  return out;
}

void release_blocks(SchedulerSequence& seq, KvCache& cache) {
  for (int32_t b : seq.blocks) cache.release(b);
  seq.blocks.clear();
  seq.hashes.clear();
  seq.computed = 0;
}

void publish_blocks(SchedulerSequence& seq, KvCache& cache) {
  const int64_t bs = cache.block_size();
  while (int64_t(seq.hashes.size() + 1) * bs <= seq.computed) {
    const size_t i = seq.hashes.size();
    std::span<const int32_t> block_tokens(seq.tokens.data() + i * size_t(bs), size_t(bs));
    const uint64_t h = KvCache::chain_hash(i == 0 ? 0 : seq.hashes.back(), block_tokens);
    cache.publish(seq.blocks[i], h, block_tokens);
    seq.hashes.push_back(h);
  }
}

int64_t match_prefix(SchedulerSequence& seq, KvCache& cache) {
  const int64_t bs = cache.block_size();
  const int64_t max_blocks = (int64_t(seq.tokens.size()) - 1) / bs;  // the last token is always computed
  uint64_t parent = 0;
  for (int64_t i = 0; i < max_blocks; ++i) {
    std::span<const int32_t> block_tokens(seq.tokens.data() + i * bs, size_t(bs));
    const uint64_t h = KvCache::chain_hash(parent, block_tokens);
    const int32_t block = cache.lookup(h, block_tokens);
    if (block < 0) break;
    seq.blocks.push_back(block);
    seq.hashes.push_back(h);
    parent = h;
  }
  seq.computed = int64_t(seq.blocks.size()) * bs;
  return seq.computed;
}

}  // namespace slm
