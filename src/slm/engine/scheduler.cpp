#include "slm/engine/scheduler.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_set>

#include "slm/engine/batch_sequence.hpp"
#include "slm/engine/cuda_forward.hpp"
#include "slm/engine/forward.hpp"
#include "slm/engine/kv_cache.hpp"
#include "slm/util/error.hpp"

namespace slm {

const char* finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::none: return "none";
    case FinishReason::length: return "length";
    case FinishReason::stop: return "stop";
    case FinishReason::eog: return "stop";  // OpenAI reports an end-of-generation token as "stop"
    case FinishReason::cancelled: return "cancelled";
    case FinishReason::error: return "error";
    case FinishReason::timeout: return "length";  // the time budget ran out, as max_tokens would
  }
  return "error";
}

namespace {

struct EmbedJob {
  std::vector<int32_t> tokens;
  Pooling pooling = Pooling::last;
  bool normalize = true;
  std::promise<std::vector<float>> result;
};

SchedulerOptions checked(const ModelConfig& c, SchedulerOptions o) {
  if (o.max_sequences <= 0) fail(ErrorKind::invalid_argument, "expected max_sequences >= 1, found {}", o.max_sequences);
  if (o.n_ctx <= 1) fail(ErrorKind::invalid_argument, "expected a context of at least 2 positions, found {}", o.n_ctx);
  if (o.block_size <= 0) fail(ErrorKind::invalid_argument, "expected a positive block size, found {}", o.block_size);
  if (o.prefill_chunk <= 0) fail(ErrorKind::invalid_argument, "expected prefill_chunk >= 1, found {}", o.prefill_chunk);
  if (o.max_batch_tokens <= 0) {
    fail(ErrorKind::invalid_argument, "expected max_batch_tokens >= 1, found {}", o.max_batch_tokens);
  }
  if (o.max_queue < 0) fail(ErrorKind::invalid_argument, "expected max_queue >= 0, found {}", o.max_queue);
  if (c.context_length > 0) o.n_ctx = std::min(o.n_ctx, c.context_length);
  if (o.kv_tokens == 0) o.kv_tokens = int64_t(o.max_sequences) * o.n_ctx;
  if (o.kv_tokens < o.n_ctx) {
    fail(ErrorKind::invalid_argument, "expected kv_tokens >= n_ctx ({}) so one sequence always fits, found {}", o.n_ctx,
         o.kv_tokens);
  }
  return o;
}

}  // namespace

struct Scheduler::Impl {
  Impl(std::shared_ptr<const Model> m, const SchedulerOptions& o)
      : model(std::move(m)),
        options(checked(model->config(), o)),
        vocab(model->config().vocab_size),
        cache(model->config(), (options.kv_tokens + options.block_size - 1) / options.block_size, options.block_size,
              options.cache_type_k, options.cache_type_v),
        forward(options.device == Device::cuda
                    ? make_cuda_forward(model, options.max_batch_tokens, options.n_ctx, cache)
                    : std::make_unique<Forward>(model, options.max_batch_tokens, options.n_ctx)) {
    stats.kv_blocks_total = cache.n_blocks();
    thread = std::thread([this] { run(); });
  }

  std::shared_ptr<const Model> model;
  const SchedulerOptions options;
  const int64_t vocab;

  // Shared with callers, under mutex.
  mutable std::mutex mutex;
  std::condition_variable wake;
  std::deque<std::unique_ptr<SchedulerSequence>> queue;  // waiting, oldest first (preempted ones in front)
  std::unordered_set<uint64_t> cancels;
  std::deque<std::unique_ptr<EmbedJob>> embeds;
  SchedulerStats stats;
  uint64_t next_id = 1;
  bool stopping = false;
  // Running sequences per lane (generating; prompt-only), kept with the queue: a request taken from
  // the queue is counted in the same critical section.
  int32_t running_generating = 0;
  int32_t running_scoring = 0;

  // Under mutex: queued requests that will not start at the next admission (their lane's slots are
  // taken), the count max_queue bounds.
  int64_t waiting_beyond_slots() const {
    int64_t generating = 0, scoring = 0;
    for (const auto& s : queue) (s->request.max_tokens == 0 ? scoring : generating) += 1;
    const int64_t free_generating = std::max<int64_t>(0, options.max_sequences - running_generating);
    const int64_t free_scoring = std::max<int64_t>(0, options.max_sequences - running_scoring);
    return generating - std::min(generating, free_generating) + scoring - std::min(scoring, free_scoring);
  }
  // Recounts the lanes from the unfinished sequences of `running` (scheduler thread, under mutex).
  void count_running_locked() {
    int32_t generating = 0, scoring = 0;
    for (const auto& s : running) {
      if (s->finish == FinishReason::none) (s->request.max_tokens == 0 ? scoring : generating) += 1;
    }
    running_generating = generating;
    running_scoring = scoring;
  }

  // Scheduler thread only.
  KvCache cache;
  std::unique_ptr<BatchForward> forward;
  std::vector<std::unique_ptr<SchedulerSequence>> running;  // by id (arrival order)
  std::deque<std::unique_ptr<EmbedJob>> deferred_embeds;
  ForwardBatch batch;
  std::vector<SchedulerSequence*> batch_seqs;  // per batch sequence
  std::vector<float> logits, hidden;
  TopLogits top;  // per output of batch: summaries for the rows sampled from their top logits
  std::vector<std::pair<SchedulerSequence*, LogitRow>> to_sample;  // sequences and their logits row
  std::vector<SampleOutcome> outcomes;
  std::thread thread;

  void run();
  bool step();
  void take_cancels();
  void take_timeouts();
  void admit();
  bool ensure_blocks(SchedulerSequence& seq, int64_t positions);
  void preempt(SchedulerSequence& victim);
  void build_batch();
  void finish_batch();
  bool run_embeds();
  void embed_one(EmbedJob& job);
  void deliver(SchedulerSequence& seq, GenerationEvent ev, bool last);
  void end(SchedulerSequence& seq, FinishReason reason, const std::string& error = "");
  void remove_finished();
  void publish_stats();
};

// Sends one event; on the last one (or when the callback declines more) the sequence is finished.
void Scheduler::Impl::deliver(SchedulerSequence& seq, GenerationEvent ev, bool last) {
  if (!seq.first_event_sent && ev.prompt_logprobs.empty()) {
    ev.prompt_logprobs = std::move(seq.prompt_logprobs);
    ev.prompt_top_logprobs = std::move(seq.prompt_top_logprobs);
  }
  seq.first_event_sent = true;
  if (last) {
    ev.prompt_tokens = seq.prompt_size;
    ev.cached_prompt_tokens = seq.cached_prompt_tokens;
    ev.completion_tokens = seq.generated;
    seq.finish = ev.finish;
    release_blocks(seq, cache);  // free before the caller hears of the end (stats agree with it)
    std::lock_guard lock(mutex);
    stats.kv_blocks_used = cache.used();
    count_running_locked();  // and its slot: a caller that heard of the end may submit at once
  }
  bool more = false;
  try {
    more = seq.callback(ev);
  } catch (...) {
    more = false;  // a throwing callback stops its sequence
  }
  if (!last && !more) {
    GenerationEvent stop;
    stop.finish = FinishReason::stop;
    deliver(seq, std::move(stop), true);
  }
}

void Scheduler::Impl::end(SchedulerSequence& seq, FinishReason reason, const std::string& error) {
  if (seq.finish != FinishReason::none) return;
  GenerationEvent ev;
  ev.finish = reason;
  ev.error = error;
  deliver(seq, std::move(ev), true);
}

void Scheduler::Impl::take_cancels() {
  std::unordered_set<uint64_t> ids;
  std::vector<std::unique_ptr<SchedulerSequence>> dropped;
  {
    std::lock_guard lock(mutex);
    ids.swap(cancels);
    for (auto it = queue.begin(); it != queue.end();) {
      if (ids.count((*it)->id) != 0) {
        dropped.push_back(std::move(*it));
        it = queue.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& seq : dropped) {
    release_blocks(*seq, cache);
    end(*seq, FinishReason::cancelled);
  }
  for (auto& seq : running) {
    if (ids.count(seq->id) != 0) end(*seq, FinishReason::cancelled);
  }
}

// Ends every request, queued or running, whose time limit has passed.
void Scheduler::Impl::take_timeouts() {
  const auto now = std::chrono::steady_clock::now();
  std::vector<std::unique_ptr<SchedulerSequence>> dropped;
  {
    std::lock_guard lock(mutex);
    for (auto it = queue.begin(); it != queue.end();) {
      if ((*it)->deadline <= now) {
        dropped.push_back(std::move(*it));
        it = queue.erase(it);
      } else {
        ++it;
      }
    }
  }
  // Counted before the events go out: a caller that has heard its last event sees it in stats().
  auto count = [this] {
    std::lock_guard lock(mutex);
    ++stats.timeouts;
  };
  for (auto& seq : dropped) {
    release_blocks(*seq, cache);
    count();
    end(*seq, FinishReason::timeout);
  }
  for (auto& seq : running) {
    if (seq->finish == FinishReason::none && seq->deadline <= now) {
      count();
      end(*seq, FinishReason::timeout);
    }
  }
}

// Gives every finished running sequence's blocks back.
void Scheduler::Impl::remove_finished() {
  for (auto& seq : running) {
    if (seq->finish != FinishReason::none) release_blocks(*seq, cache);
  }
  std::erase_if(running, [](const auto& s) { return s->finish != FinishReason::none; });
  std::lock_guard lock(mutex);
  count_running_locked();
}

// Admits waiting sequences while a slot and the blocks for their whole pending tokens are free
// (prefix-cache hits need no new blocks). Generation requests take one of the max_sequences slots
// each, oldest first. A request for its prompt's logits only (max_tokens 0: echo / log-likelihood
// scoring) ends as soon as its prompt is computed, so it takes no slot: up to max_sequences of them
// run beside the generating ones, admitted past generation requests that wait for a slot (never
// past one that waits for blocks), rather than wait for a whole stream to end.
void Scheduler::Impl::admit() {
  const int64_t bs = cache.block_size();
  int32_t generating = 0, scoring = 0;
  for (const auto& s : running) (s->request.max_tokens == 0 ? scoring : generating) += 1;
  size_t at = 0;  // queue position: requests before it wait for a slot
  for (;;) {
    std::unique_ptr<SchedulerSequence> seq;
    {
      std::lock_guard lock(mutex);
      while (at < queue.size() &&
             (queue[at]->request.max_tokens == 0 ? scoring : generating) >= options.max_sequences) {
        ++at;
      }
      if (at >= queue.size()) return;
      seq = std::move(queue[at]);
      queue.erase(queue.begin() + std::ptrdiff_t(at));
      (seq->request.max_tokens == 0 ? running_scoring : running_generating) += 1;
    }
    int64_t hit = 0;
    if (!seq->want_prompt_logprobs) hit = match_prefix(*seq, cache);
    const int64_t needed = (int64_t(seq->tokens.size()) + bs - 1) / bs - int64_t(seq->blocks.size());
    if (cache.available() < needed) {
      release_blocks(*seq, cache);
      std::lock_guard lock(mutex);
      (seq->request.max_tokens == 0 ? running_scoring : running_generating) -= 1;
      queue.insert(queue.begin() + std::ptrdiff_t(at), std::move(seq));
      return;
    }
    for (int64_t i = 0; i < needed; ++i) seq->blocks.push_back(cache.allocate());
    if (!seq->admitted_once) seq->cached_prompt_tokens = std::min(hit, seq->prompt_size);
    seq->admitted_once = true;
    (seq->request.max_tokens == 0 ? scoring : generating) += 1;
    {
      std::lock_guard lock(mutex);
      stats.prefix_cache_hit_tokens += hit;
    }
    auto pos = std::upper_bound(running.begin(), running.end(), seq->id,
                                [](uint64_t id, const auto& s) { return id < s->id; });
    running.insert(pos, std::move(seq));
  }
}

// Sends a running sequence back to the front of the queue, without its blocks; it recomputes its
// tokens when admitted again (published blocks may still be cached then).
void Scheduler::Impl::preempt(SchedulerSequence& victim) {
  release_blocks(victim, cache);
  if (victim.want_prompt_logprobs) {
    victim.prompt_logprobs.clear();
    victim.prompt_top_logprobs.clear();
  }
  auto it = std::find_if(running.begin(), running.end(), [&](const auto& s) { return s.get() == &victim; });
  std::unique_ptr<SchedulerSequence> seq = std::move(*it);
  running.erase(it);
  std::lock_guard lock(mutex);
  (seq->request.max_tokens == 0 ? running_scoring : running_generating) -= 1;
  queue.push_front(std::move(seq));
  ++stats.preemptions;
}

// Makes the block table of `seq` cover `positions` positions, preempting the newest running
// sequences when the pool is empty. False when `seq` itself had to go.
bool Scheduler::Impl::ensure_blocks(SchedulerSequence& seq, int64_t positions) {
  const int64_t bs = cache.block_size();
  while (int64_t(seq.blocks.size()) * bs < positions) {
    const int32_t block = cache.allocate();
    if (block >= 0) {
      seq.blocks.push_back(block);
      continue;
    }
    SchedulerSequence& victim = *running.back();
    const bool self = &victim == &seq;
    preempt(victim);
    if (self) return false;
  }
  return true;
}

// Rows of one step: every decoding sequence's next token, then prompt chunks, oldest first, within
// max_batch_tokens.
void Scheduler::Impl::build_batch() {
  batch.clear();
  batch_seqs.clear();
  top.clear();
  // Blocks for the decoding sequences' next positions first: this may preempt the newest ones.
  for (size_t i = 0; i < running.size();) {
    SchedulerSequence& seq = *running[i];
    if (seq.decoding() && !ensure_blocks(seq, seq.computed + 1)) continue;  // seq was the newest: gone
    ++i;
  }
  int64_t budget = options.max_batch_tokens;
  auto add = [&](SchedulerSequence& seq, int64_t n) {
    const int64_t begin = batch.rows();
    for (int64_t t = 0; t < n; ++t) {
      const int64_t p = seq.computed + t;
      batch.tokens.push_back(seq.tokens[size_t(p)]);
      batch.positions.push_back(int32_t(p));
      if (seq.want_prompt_logprobs && p < seq.prompt_size - 1) {
        batch.outputs.push_back(begin + t);
        top.k.push_back(0);  // prompt logprobs read the whole row
      }
    }
    if (seq.computed + n == int64_t(seq.tokens.size()) &&
        (batch.outputs.empty() || batch.outputs.back() != begin + n - 1)) {
      batch.outputs.push_back(begin + n - 1);  // the row whose logits give the next token
      top.k.push_back(top_candidates(seq));
      top.k_max = std::max(top.k_max, top.k.back());
    }
    batch.sequences.push_back(BatchSequence{begin, n, seq.blocks});
    batch_seqs.push_back(&seq);
    budget -= n;
  };
  for (auto& seq : running) {
    if (budget > 0 && seq->decoding()) add(*seq, 1);
  }
  for (auto& seq : running) {
    if (budget <= 0) break;
    if (seq->decoding() || seq->pending() <= 0) continue;
    add(*seq, std::min({seq->pending(), options.prefill_chunk, budget}));
  }
  // Rows must be grouped by sequence in row order: they are, one append per sequence.
}

// After the forward: prompt logprobs, the next token of every sequence whose pending tokens are
// all computed, events, published blocks.
void Scheduler::Impl::finish_batch() {
  const int64_t n_ctx = options.n_ctx;
  size_t out = 0;  // index into batch.outputs
  int64_t generated = 0, prompt = 0;
  to_sample.clear();
  for (size_t i = 0; i < batch.sequences.size(); ++i) {
    const BatchSequence& bseq = batch.sequences[i];
    SchedulerSequence& seq = *batch_seqs[i];
    const int64_t end_row = bseq.row_begin + bseq.n_rows;
    LogitRow sample_row;
    bool sample = false;
    for (; out < batch.outputs.size() && batch.outputs[out] < end_row; ++out) {
      const float* row = logits.data() + out * size_t(vocab);
      const int64_t p = batch.positions[size_t(batch.outputs[out])];
      if (seq.want_prompt_logprobs && p < seq.prompt_size - 1) {
        const int32_t next = seq.tokens[size_t(p + 1)];
        const float lse = log_sum_exp(row, vocab);
        seq.prompt_logprobs.push_back({next, row[next] - lse});
        if (seq.request.top_logprobs > 0) {
          seq.prompt_top_logprobs.push_back(top_tokens(row, vocab, seq.request.top_logprobs, lse));
        }
      }
      if (batch.outputs[out] == end_row - 1 && seq.computed + bseq.n_rows == int64_t(seq.tokens.size())) {
        sample = true;
        const int32_t k = top.k[out];
        if (k > 0) {
          const size_t at = out * size_t(top.k_max);
          const int32_t* ids = top.ids.data() + at;
          int32_t n = int32_t(std::min<int64_t>(k, vocab));
          n = int32_t(std::find_if(ids, ids + n, [](int32_t id) { return id < 0; }) - ids);  // NaN rows: fewer
          sample_row = LogitRow{nullptr, top.lse[out], ids, top.values.data() + at, n};
        } else {
          sample_row.logits = row;
        }
      }
    }
    prompt += std::max<int64_t>(0, std::min(seq.prompt_size, seq.computed + bseq.n_rows) - seq.computed);
    seq.computed += bseq.n_rows;
    if (seq.computed >= seq.prompt_size - 1) seq.want_prompt_logprobs = false;
    publish_blocks(seq, cache);
    if (sample && seq.finish == FinishReason::none) to_sample.push_back({&seq, sample_row});
  }
  // Sequences sample independently (each has its own sampler): in parallel, unless constraints are
  // involved (implementations may share caches between their instances).
  outcomes.assign(to_sample.size(), SampleOutcome{});
  const Tokenizer* tokenizer = model->tokenizer();
  bool constrained = false;
  for (const auto& [seq, row] : to_sample) constrained = constrained || seq->request.constraint != nullptr;
#pragma omp parallel for schedule(dynamic, 1) if (to_sample.size() > 1 && !constrained)
  for (size_t i = 0; i < to_sample.size(); ++i) {
    thread_local std::vector<float> scratch;
    thread_local std::vector<uint8_t> mask;
    try {
      outcomes[i] = sample_next(*to_sample[i].first, to_sample[i].second, vocab, n_ctx, tokenizer, scratch, mask);
    } catch (const std::exception& e) {
      outcomes[i] = SampleOutcome{};
      outcomes[i].event.finish = FinishReason::error;
      outcomes[i].event.error = e.what();
      outcomes[i].finished = true;
    }
  }
  for (size_t i = 0; i < to_sample.size(); ++i) {
    if (outcomes[i].event.token >= 0) ++generated;
  }
  {
    // Counted before the events go out: a caller that has heard its last event sees its tokens in stats().
    std::lock_guard lock(mutex);
    stats.generated_tokens += generated;
    stats.prompt_tokens += prompt;
  }
  for (size_t i = 0; i < to_sample.size(); ++i) {
    deliver(*to_sample[i].first, std::move(outcomes[i].event), outcomes[i].finished);
  }
}

// One scheduling round; false when there was nothing to do.
bool Scheduler::Impl::step() {
  take_cancels();
  take_timeouts();
  remove_finished();
  const bool embedded = run_embeds();
  if (deferred_embeds.empty()) admit();  // an embedding waiting for blocks goes before new sequences
  build_batch();
  if (batch.rows() == 0) return embedded;
  logits.resize(batch.outputs.size() * size_t(vocab));
  try {
    forward->logits_top(batch, cache, logits.data(), top);
  } catch (const std::exception& e) {
    for (SchedulerSequence* seq : batch_seqs) end(*seq, FinishReason::error, e.what());
    remove_finished();
    return true;
  }
  finish_batch();
  remove_finished();
  std::lock_guard lock(mutex);
  ++stats.steps;
  stats.last_batch_tokens = batch.rows();
  stats.last_batch_sequences = int64_t(batch.sequences.size());
  return true;
}

void Scheduler::Impl::publish_stats() {
  std::lock_guard lock(mutex);
  stats.running = int32_t(running.size());
  stats.queued = int32_t(waiting_beyond_slots());
  stats.kv_blocks_used = cache.used();
}

void Scheduler::Impl::run() {
  for (;;) {
    {
      std::unique_lock lock(mutex);
      if (stopping) break;
    }
    const bool worked = step();
    publish_stats();
    if (!worked) {
      std::unique_lock lock(mutex);
      if (stopping) break;
      // Nothing runnable: sleep until a caller submits, cancels or embeds (or a moment passes).
      wake.wait_for(lock, std::chrono::milliseconds(50), [this] {
        return stopping || !cancels.empty() || !embeds.empty() || (!queue.empty() && running.empty());
      });
    }
  }
  // Shutting down: every unfinished request ends as cancelled.
  for (auto& seq : running) end(*seq, FinishReason::cancelled);
  remove_finished();
  std::deque<std::unique_ptr<SchedulerSequence>> left;
  std::deque<std::unique_ptr<EmbedJob>> jobs;
  {
    std::lock_guard lock(mutex);
    left.swap(queue);
    jobs.swap(embeds);
  }
  for (auto& seq : left) {
    release_blocks(*seq, cache);
    end(*seq, FinishReason::cancelled);
  }
  for (auto* list : {&jobs, &deferred_embeds}) {
    for (auto& job : *list) {
      job->result.set_exception(std::make_exception_ptr(Error(ErrorKind::unsupported, "the scheduler stopped")));
    }
  }
  publish_stats();
}

// Embedding jobs run between steps, each in blocks of its own (not published).
bool Scheduler::Impl::run_embeds() {
  bool ran = false;
  {
    std::lock_guard lock(mutex);
    while (!embeds.empty()) {
      deferred_embeds.push_back(std::move(embeds.front()));
      embeds.pop_front();
    }
  }
  while (!deferred_embeds.empty()) {
    EmbedJob& job = *deferred_embeds.front();
    const int64_t needed = (int64_t(job.tokens.size()) + cache.block_size() - 1) / cache.block_size();
    if (cache.available() < needed) break;  // waits for running sequences to free blocks
    try {
      embed_one(job);
    } catch (...) {
      job.result.set_exception(std::current_exception());
    }
    deferred_embeds.pop_front();
    ran = true;
  }
  return ran;
}

void Scheduler::Impl::embed_one(EmbedJob& job) {
  const ModelConfig& c = model->config();
  const auto n = int64_t(job.tokens.size());
  std::vector<int32_t> blocks;
  for (int64_t i = 0; i < (n + cache.block_size() - 1) / cache.block_size(); ++i) blocks.push_back(cache.allocate());
  std::vector<float> pooled(size_t(c.dim), 0.0f);
  try {
    for (int64_t start = 0; start < n; start += forward->max_rows()) {
      const int64_t count = std::min(forward->max_rows(), n - start);
      batch.clear();
      for (int64_t t = 0; t < count; ++t) {
        batch.tokens.push_back(job.tokens[size_t(start + t)]);
        batch.positions.push_back(int32_t(start + t));
      }
      batch.sequences.push_back(BatchSequence{0, count, blocks});
      if (job.pooling == Pooling::mean) {
        for (int64_t t = 0; t < count; ++t) batch.outputs.push_back(t);
      } else if (job.pooling == Pooling::cls && start == 0) {
        batch.outputs.push_back(0);
      } else if (job.pooling == Pooling::last && start + count == n) {
        batch.outputs.push_back(count - 1);
      }
      hidden.resize(batch.outputs.size() * size_t(c.dim));
      forward->hidden(batch, cache, hidden.data());  // hidden[outputs][dim]
      for (size_t r = 0; r < batch.outputs.size(); ++r) {
        for (int64_t d = 0; d < c.dim; ++d) pooled[size_t(d)] += hidden[r * size_t(c.dim) + size_t(d)];
      }
    }
  } catch (...) {
    for (int32_t b : blocks) cache.release(b);
    throw;
  }
  for (int32_t b : blocks) cache.release(b);
  if (job.pooling == Pooling::mean) {
    for (auto& v : pooled) v /= float(n);
  }
  if (job.normalize) {
    double sum = 0.0;
    for (float v : pooled) sum += double(v) * double(v);
    const double norm = std::sqrt(sum);
    if (norm > 0.0) {
      for (auto& v : pooled) v = float(double(v) / norm);
    }
  }
  job.result.set_value(std::move(pooled));
}

Scheduler::Scheduler(std::shared_ptr<const Model> model, const SchedulerOptions& options) {
  if (!model) fail(ErrorKind::invalid_argument, "the scheduler needs a model");
  impl_ = std::make_unique<Impl>(std::move(model), options);
}

Scheduler::~Scheduler() {
  {
    std::lock_guard lock(impl_->mutex);
    impl_->stopping = true;
  }
  impl_->wake.notify_all();
  if (impl_->thread.joinable()) impl_->thread.join();
}

uint64_t Scheduler::submit(GenerationRequest request, GenerationCallback callback) {
  const Impl& m = *impl_;
  const auto n = int64_t(request.prompt.size());
  if (n == 0) fail(ErrorKind::invalid_argument, "the prompt is empty: at least one token is needed");
  if (n > m.options.n_ctx - 1) {
    fail(ErrorKind::out_of_range, "a prompt of {} tokens leaves no room to generate in a context of {}", n,
         m.options.n_ctx);
  }
  for (int32_t t : request.prompt) {
    if (t < 0 || t >= m.vocab) fail(ErrorKind::invalid_argument, "token id {} is outside the vocabulary [0, {})", t, m.vocab);
  }
  if (request.max_tokens < 0) fail(ErrorKind::invalid_argument, "expected max_tokens >= 0, found {}", request.max_tokens);
  if (request.top_logprobs < 0 || request.top_logprobs > 20) {
    fail(ErrorKind::invalid_argument, "expected top_logprobs in [0, 20], found {}", request.top_logprobs);
  }
  if (!callback) fail(ErrorKind::invalid_argument, "a request needs a callback");
  if (!(request.timeout_seconds >= 0.0) || !std::isfinite(request.timeout_seconds)) {
    fail(ErrorKind::invalid_argument, "expected a finite timeout_seconds >= 0, found {}", request.timeout_seconds);
  }
  const auto submitted = std::chrono::steady_clock::now();
  const bool scoring = request.max_tokens == 0;
  std::unique_lock lock(impl_->mutex);
  if (impl_->stopping) fail(ErrorKind::unsupported, "the scheduler is stopping");
  // A request that will start at the next admission (its lane has a slot that the requests queued
  // before it do not take) does not wait; max_queue bounds the ones that do.
  int64_t lane_queued = 0;
  for (const auto& s : impl_->queue) lane_queued += (s->request.max_tokens == 0) == scoring ? 1 : 0;
  const int64_t lane_free =
      m.options.max_sequences - int64_t(scoring ? impl_->running_scoring : impl_->running_generating);
  const int64_t waiting = impl_->waiting_beyond_slots();
  if (lane_queued >= lane_free && waiting >= m.options.max_queue) {
    fail(ErrorKind::out_of_range, "the queue is full: {} requests are waiting", waiting);
  }
  const uint64_t id = impl_->next_id++;
  lock.unlock();
  const double timeout = request.timeout_seconds;
  auto seq = std::make_unique<SchedulerSequence>(id, std::move(request), std::move(callback));  // may throw (sampler)
  if (timeout > 0.0) {
    // Capped at a year so that the time point cannot overflow.
    seq->deadline = submitted + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                    std::chrono::duration<double>(std::min(timeout, 3.15e7)));
  }
  lock.lock();
  impl_->queue.push_back(std::move(seq));
  impl_->stats.queued = int32_t(impl_->waiting_beyond_slots());
  lock.unlock();
  impl_->wake.notify_all();
  return id;
}

void Scheduler::cancel(uint64_t id) {
  {
    std::lock_guard lock(impl_->mutex);
    if (id == 0 || id >= impl_->next_id) return;
    impl_->cancels.insert(id);
  }
  impl_->wake.notify_all();
}

std::future<std::vector<float>> Scheduler::embed(std::vector<int32_t> tokens, Pooling pooling, bool normalize) {
  if (tokens.empty()) fail(ErrorKind::invalid_argument, "nothing to embed: at least one token is needed");
  if (int64_t(tokens.size()) > impl_->options.n_ctx) {
    fail(ErrorKind::out_of_range, "{} tokens exceed the context size {}", tokens.size(), impl_->options.n_ctx);
  }
  for (int32_t t : tokens) {
    if (t < 0 || t >= impl_->vocab) {
      fail(ErrorKind::invalid_argument, "token id {} is outside the vocabulary [0, {})", t, impl_->vocab);
    }
  }
  auto job = std::make_unique<EmbedJob>();
  job->tokens = std::move(tokens);
  job->pooling = pooling;
  job->normalize = normalize;
  auto future = job->result.get_future();
  {
    std::lock_guard lock(impl_->mutex);
    if (impl_->stopping) fail(ErrorKind::unsupported, "the scheduler is stopping");
    impl_->embeds.push_back(std::move(job));
  }
  impl_->wake.notify_all();
  return future;
}

SchedulerStats Scheduler::stats() const {
  std::lock_guard lock(impl_->mutex);
  SchedulerStats s = impl_->stats;
  s.queued = int32_t(impl_->waiting_beyond_slots());
  return s;
}

const Model& Scheduler::model() const { return *impl_->model; }
std::shared_ptr<const Model> Scheduler::model_ptr() const { return impl_->model; }
const SchedulerOptions& Scheduler::options() const { return impl_->options; }

}  // namespace slm
