// The continuous-batching scheduler against the single-sequence Session: greedy tokens, logprobs
// and embeddings must be the same however many requests share the batches, with prefix reuse,
// chunked prefill and preemption; plus the limits, cancellation and constraints.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "slm/engine/generate.hpp"
#include "slm/engine/scheduler.hpp"
#include "slm/util/error.hpp"
#include "../common/models.hpp"

namespace fs = std::filesystem;
using namespace slm;
using namespace std::chrono_literals;

namespace {

// The demo model (Q8_0: its integer kernels round activations, so logits depend slightly on how
// many rows share a product; greedy tokens do not).
using slm_test::demo_model;

// A float32 random-weight fixture: logits agree across batch shapes to float rounding.
std::shared_ptr<const Model> fixture_model(const std::string& name) {
  return Model::load((fs::path(SLM_TEST_DATA) / "models" / name).string());
}

// Random prompt token ids in [1, vocab) (never all the same).
std::vector<int32_t> random_prompt(size_t n, uint32_t seed, int64_t vocab) {
  return slm_test::random_tokens(n, seed, vocab);
}

SamplerOptions greedy() {
  SamplerOptions o;
  o.temperature = 0.0f;
  return o;
}

// Greedy continuation by Session + Sampler, the reference for every scheduler output.
std::vector<int32_t> session_greedy(const std::vector<int32_t>& prompt, int64_t max_tokens,
                                    std::shared_ptr<const Model> model = demo_model()) {
  Session session(model, SessionOptions{});
  Sampler sampler(greedy());
  std::vector<int32_t> out;
  generate(session, sampler, prompt, max_tokens, [&](int32_t t) {
    out.push_back(t);
    return true;
  });
  return out;
}

// Collects the events of many requests and waits for their ends.
class Collector {
 public:
  GenerationCallback callback(uint64_t key) {
    return [this, key](const GenerationEvent& ev) {
      std::lock_guard lock(mutex_);
      events_[key].push_back(ev);
      if (ev.finish != FinishReason::none) {
        ++finished_;
        done_.notify_all();
      }
      return true;
    };
  }
  bool wait(size_t n, std::chrono::seconds timeout = 120s) {
    std::unique_lock lock(mutex_);
    return done_.wait_for(lock, timeout, [&] { return finished_ >= n; });
  }
  std::vector<GenerationEvent> events(uint64_t key) {
    std::lock_guard lock(mutex_);
    return events_[key];
  }
  std::vector<int32_t> tokens(uint64_t key) {
    std::vector<int32_t> out;
    for (const auto& ev : events(key))
      if (ev.token >= 0) out.push_back(ev.token);
    return out;
  }

 private:
  std::mutex mutex_;
  std::condition_variable done_;
  std::map<uint64_t, std::vector<GenerationEvent>> events_;
  size_t finished_ = 0;
};

GenerationRequest greedy_request(std::vector<int32_t> prompt, int64_t max_tokens) {
  GenerationRequest r;
  r.prompt = std::move(prompt);
  r.sampling = greedy();
  r.max_tokens = max_tokens;
  return r;
}

// Runs n concurrent greedy requests and checks each against its Session reference.
SchedulerStats check_concurrent(int n, SchedulerOptions options, int64_t max_tokens, size_t prompt_base,
                                std::shared_ptr<const Model> model = demo_model()) {
  const int64_t vocab = model->config().vocab_size;
  std::vector<std::vector<int32_t>> prompts, expected;
  for (int i = 0; i < n; ++i) {
    prompts.push_back(random_prompt(prompt_base + size_t(i * 7 % 41), uint32_t(100 + i), vocab));
    expected.push_back(session_greedy(prompts.back(), max_tokens, model));
  }
  Scheduler scheduler(model, options);
  Collector collector;
  std::atomic<int64_t> widest_batch{0};  // rows of the largest forward seen
  for (int i = 0; i < n; ++i) {
    auto cb = collector.callback(uint64_t(i));
    scheduler.submit(greedy_request(prompts[size_t(i)], max_tokens), [&, cb](const GenerationEvent& ev) {
      widest_batch = std::max(widest_batch.load(), scheduler.stats().last_batch_tokens);
      return cb(ev);
    });
  }
  EXPECT_TRUE(collector.wait(size_t(n)));
  EXPECT_LE(widest_batch.load(), options.max_batch_tokens);
  EXPECT_GT(widest_batch.load(), 0);
  for (int i = 0; i < n; ++i) {
    EXPECT_EQ(collector.tokens(uint64_t(i)), expected[size_t(i)]) << "request " << i << " of " << n;
    const auto events = collector.events(uint64_t(i));
    if (events.empty()) {
      ADD_FAILURE() << "no events for request " << i;
      continue;
    }
    EXPECT_NE(events.back().finish, FinishReason::none);
    EXPECT_EQ(events.back().prompt_tokens, int64_t(prompts[size_t(i)].size()));
    EXPECT_EQ(events.back().completion_tokens, int64_t(expected[size_t(i)].size()));
  }
  const SchedulerStats stats = scheduler.stats();
  EXPECT_GT(stats.steps, 0);
  EXPECT_EQ(stats.kv_blocks_used, 0);
  return stats;
}

TEST(Scheduler, SingleGreedyRequestMatchesSession) {
  SchedulerOptions o;
  o.n_ctx = 256;
  check_concurrent(1, o, 24, 9);
}

class SchedulerConcurrency : public ::testing::TestWithParam<int> {};

// A float32 model: its products give every row the same result whatever the batch holds, so
// batched tokens must equal single-sequence tokens exactly.
TEST_P(SchedulerConcurrency, ConcurrentGreedyRequestsMatchSingle) {
  SchedulerOptions o;
  o.max_sequences = GetParam();
  o.n_ctx = 256;
  const SchedulerStats stats = check_concurrent(GetParam(), o, 20, 5, fixture_model("qwen2"));
  EXPECT_EQ(stats.generated_tokens, int64_t(GetParam()) * 20);
}

INSTANTIATE_TEST_SUITE_P(Streams, SchedulerConcurrency, ::testing::Values(8, 32));

TEST(Scheduler, BatchesHoldSeveralSequences) {
  const auto model = demo_model();
  SchedulerOptions o;
  o.max_sequences = 4;
  o.n_ctx = 128;
  Scheduler scheduler(model, o);
  Collector collector;
  std::atomic<int64_t> widest{0};
  for (int i = 0; i < 4; ++i) {
    auto cb = collector.callback(uint64_t(i));
    scheduler.submit(greedy_request(random_prompt(6, uint32_t(i + 1), model->config().vocab_size), 16),
                     [&, cb](const GenerationEvent& ev) {
                       widest = std::max(widest.load(), scheduler.stats().last_batch_sequences);
                       return cb(ev);
                     });
  }
  ASSERT_TRUE(collector.wait(4));
  EXPECT_GE(widest.load(), 2);
}

TEST(Scheduler, ChunkedPrefillAndSmallBatchesMatchSession) {
  SchedulerOptions o;
  o.max_sequences = 6;
  o.n_ctx = 256;
  o.prefill_chunk = 7;
  o.max_batch_tokens = 12;
  check_concurrent(6, o, 16, 30);
}

TEST(Scheduler, BatchBudgetBelowTheSequenceCountStillServesEveryone) {
  SchedulerOptions o;
  o.max_sequences = 5;
  o.n_ctx = 96;
  o.prefill_chunk = 2;
  o.max_batch_tokens = 2;  // fewer rows per step than running sequences
  check_concurrent(5, o, 10, 4, fixture_model("smollm2"));
}

TEST(Scheduler, PreemptionWhenBlocksRunOutKeepsOutputs) {
  // 10 blocks of 8 positions for 4 sequences that each grow to ~45 positions: some must wait or be
  // preempted and recomputed.
  SchedulerOptions o;
  o.max_sequences = 4;
  o.n_ctx = 64;
  o.block_size = 8;
  o.kv_tokens = 80;
  // A recomputed prompt runs through matrix kernels instead of one-row ones: a float32 model keeps
  // both within rounding of each other.
  const SchedulerStats stats = check_concurrent(4, o, 30, 12, fixture_model("llama3"));
  EXPECT_GT(stats.preemptions, 0);
}

TEST(Scheduler, PrefixReuseGivesTheSameTokens) {
  const auto model = demo_model();
  const int64_t vocab = model->config().vocab_size;
  SchedulerOptions o;
  o.n_ctx = 256;
  o.block_size = 16;
  Scheduler scheduler(model, o);
  const auto shared = random_prompt(50, 7, vocab);
  auto first = shared;
  first.push_back(11);
  auto second = shared;
  for (int32_t t : random_prompt(5, 8, vocab)) second.push_back(t);

  Collector collector;
  scheduler.submit(greedy_request(first, 12), collector.callback(0));
  ASSERT_TRUE(collector.wait(1));
  EXPECT_EQ(scheduler.stats().prefix_cache_hit_tokens, 0);
  scheduler.submit(greedy_request(second, 12), collector.callback(1));
  ASSERT_TRUE(collector.wait(2));

  EXPECT_EQ(collector.tokens(0), session_greedy(first, 12));
  EXPECT_EQ(collector.tokens(1), session_greedy(second, 12));
  EXPECT_EQ(scheduler.stats().prefix_cache_hit_tokens, 48);  // three full blocks of the 50 shared tokens
  EXPECT_EQ(collector.events(1).back().cached_prompt_tokens, 48);
  EXPECT_EQ(collector.events(0).back().cached_prompt_tokens, 0);
}

TEST(Scheduler, CancelEndsTheRequestAndFreesItsBlocks) {
  const auto model = demo_model();
  SchedulerOptions o;
  o.n_ctx = 512;
  Scheduler scheduler(model, o);
  Collector collector;
  std::atomic<int> seen{0};
  auto cb = collector.callback(0);
  GenerationRequest r = greedy_request(random_prompt(40, 3, model->config().vocab_size), 400);
  r.stop_at_eog = false;
  const uint64_t id = scheduler.submit(std::move(r), [&](const GenerationEvent& ev) {
    ++seen;
    return cb(ev);
  });
  while (seen.load() < 3) std::this_thread::sleep_for(1ms);
  EXPECT_GT(scheduler.stats().kv_blocks_used, 0);
  scheduler.cancel(id);
  ASSERT_TRUE(collector.wait(1));
  const auto events = collector.events(0);
  EXPECT_EQ(events.back().finish, FinishReason::cancelled);
  EXPECT_LT(events.back().completion_tokens, 400);
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (scheduler.stats().kv_blocks_used != 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_EQ(scheduler.stats().kv_blocks_used, 0);
  scheduler.cancel(id);      // finished: ignored
  scheduler.cancel(999999);  // unknown: ignored
}

TEST(Scheduler, TimeoutEndsARunningRequestAndFreesItsBlocks) {
  const auto model = demo_model();
  SchedulerOptions o;
  o.n_ctx = 2048;
  Scheduler scheduler(model, o);
  Collector collector;
  GenerationRequest r = greedy_request(random_prompt(20, 13, model->config().vocab_size), 100000);
  r.stop_at_eog = false;
  r.timeout_seconds = 0.3;
  const auto start = std::chrono::steady_clock::now();
  scheduler.submit(std::move(r), collector.callback(0));
  ASSERT_TRUE(collector.wait(1));
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const auto events = collector.events(0);
  EXPECT_EQ(events.back().finish, FinishReason::timeout);
  EXPECT_STREQ(finish_reason_name(events.back().finish), "length");
  EXPECT_LT(events.back().completion_tokens, 2027);  // ended long before the context was full
  EXPECT_GE(elapsed, 0.3);
  EXPECT_LT(elapsed, 20.0);
  EXPECT_EQ(scheduler.stats().kv_blocks_used, 0);
  EXPECT_EQ(scheduler.stats().timeouts, 1);
}

TEST(Scheduler, TimeoutEndsAQueuedRequest) {
  const auto model = demo_model();
  SchedulerOptions o;
  o.n_ctx = 2048;
  o.max_sequences = 1;
  Scheduler scheduler(model, o);
  Collector collector;
  GenerationRequest first = greedy_request(random_prompt(20, 14, model->config().vocab_size), 100000);
  first.stop_at_eog = false;
  const uint64_t running = scheduler.submit(std::move(first), collector.callback(0));
  GenerationRequest second = greedy_request(random_prompt(20, 15, model->config().vocab_size), 10);
  second.timeout_seconds = 0.2;
  scheduler.submit(std::move(second), collector.callback(1));
  ASSERT_TRUE(collector.wait(1));
  const auto events = collector.events(1);
  ASSERT_EQ(events.size(), 1u);  // never admitted: one final event, no tokens
  EXPECT_EQ(events.back().finish, FinishReason::timeout);
  EXPECT_EQ(events.back().completion_tokens, 0);
  EXPECT_TRUE(collector.events(0).empty() || collector.events(0).back().finish == FinishReason::none);
  scheduler.cancel(running);
  ASSERT_TRUE(collector.wait(2));
  EXPECT_EQ(collector.events(0).back().finish, FinishReason::cancelled);
  GenerationRequest bad = greedy_request({1, 2}, 1);
  bad.timeout_seconds = -1.0;
  EXPECT_THROW(scheduler.submit(std::move(bad), collector.callback(2)), Error);
}

TEST(Scheduler, CallbackReturningFalseStopsWithFinishStop) {
  const auto model = demo_model();
  Scheduler scheduler(model, SchedulerOptions{});
  Collector collector;
  auto cb = collector.callback(0);
  int calls = 0;
  GenerationRequest r = greedy_request(random_prompt(8, 5, model->config().vocab_size), 50);
  r.stop_at_eog = false;
  scheduler.submit(std::move(r), [&](const GenerationEvent& ev) {
    cb(ev);
    return ++calls < 3;
  });
  ASSERT_TRUE(collector.wait(1));
  const auto events = collector.events(0);
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events.back().finish, FinishReason::stop);
  EXPECT_EQ(events.back().token, -1);
  EXPECT_EQ(events.back().completion_tokens, 3);
}

TEST(Scheduler, FullQueueThrowsOutOfRange) {
  const auto model = demo_model();
  SchedulerOptions o;
  o.max_sequences = 1;
  o.max_queue = 2;
  o.n_ctx = 512;
  Scheduler scheduler(model, o);
  Collector collector;
  bool threw = false;
  for (int i = 0; i < 8 && !threw; ++i) {
    GenerationRequest r = greedy_request(random_prompt(20, uint32_t(i + 1), model->config().vocab_size), 400);
    r.stop_at_eog = false;
    try {
      scheduler.submit(std::move(r), collector.callback(uint64_t(i)));
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::out_of_range);
      threw = true;
    }
  }
  EXPECT_TRUE(threw);
  EXPECT_LE(scheduler.stats().queued, 2);
}

TEST(Scheduler, BadRequestsThrow) {
  const auto model = demo_model();
  SchedulerOptions o;
  o.n_ctx = 64;
  Scheduler scheduler(model, o);
  auto cb = [](const GenerationEvent&) { return true; };
  const int64_t vocab = model->config().vocab_size;
  try {
    scheduler.submit(greedy_request(random_prompt(64, 1, vocab), 4), cb);
    ADD_FAILURE() << "a prompt of n_ctx tokens was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::out_of_range);
  }
  try {
    scheduler.submit(greedy_request({}, 4), cb);
    ADD_FAILURE() << "an empty prompt was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::invalid_argument);
  }
  try {
    scheduler.submit(greedy_request({1, int32_t(vocab)}, 4), cb);
    ADD_FAILURE() << "a token outside the vocabulary was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::invalid_argument);
  }
  auto r = greedy_request({1, 2}, 4);
  r.top_logprobs = 21;
  EXPECT_THROW(scheduler.submit(r, cb), Error);
  EXPECT_NO_THROW(scheduler.submit(greedy_request(random_prompt(63, 1, vocab), 4), cb));
}

class SchedulerFixtures : public ::testing::TestWithParam<std::string> {};

// Every architecture trait through paged attention (GQA, biases, QK-norm, sliding window), with
// small blocks, chunked prefill and several sequences per step.
TEST_P(SchedulerFixtures, ConcurrentGreedyMatchesSession) {
  SchedulerOptions o;
  o.max_sequences = 8;
  o.n_ctx = 96;
  o.block_size = 4;
  o.prefill_chunk = 5;
  o.max_batch_tokens = 24;
  check_concurrent(8, o, 12, 6, fixture_model(GetParam()));
}

INSTANTIATE_TEST_SUITE_P(Models, SchedulerFixtures,
                         ::testing::Values("llama3", "mistral", "qwen2", "qwen3", "smollm2"));

TEST(Scheduler, LogprobsAreLogSoftmaxOfSessionLogits) {
  const auto model = fixture_model("qwen2");
  const int64_t vocab = model->config().vocab_size;
  Scheduler scheduler(model, SchedulerOptions{});
  Collector collector;
  GenerationRequest r = greedy_request(random_prompt(12, 21, vocab), 6);
  r.top_logprobs = 5;
  r.prompt_logprobs = true;
  r.stop_at_eog = false;
  const auto prompt = r.prompt;
  scheduler.submit(r, collector.callback(0));
  ASSERT_TRUE(collector.wait(1));
  const auto events = collector.events(0);
  const auto generated = collector.tokens(0);
  ASSERT_EQ(generated.size(), 6u);

  // Reference: every position's logits over prompt + generated tokens, log-softmaxed.
  std::vector<int32_t> all = prompt;
  all.insert(all.end(), generated.begin(), generated.end());
  Session session(model, SessionOptions{});
  std::vector<float> logits(all.size() * size_t(vocab));
  session.forward(all, logits.data(), true);
  auto logprob = [&](size_t pos, int32_t token) {
    const float* row = logits.data() + pos * size_t(vocab);
    const float max_v = *std::max_element(row, row + vocab);
    double sum = 0.0;
    for (int64_t i = 0; i < vocab; ++i) sum += std::exp(double(row[i]) - max_v);
    return double(row[token]) - max_v - std::log(sum);
  };

  ASSERT_EQ(events.front().prompt_logprobs.size(), prompt.size() - 1);
  ASSERT_EQ(events.front().prompt_top_logprobs.size(), prompt.size() - 1);
  for (size_t i = 0; i + 1 < prompt.size(); ++i) {
    EXPECT_EQ(events.front().prompt_logprobs[i].token, prompt[i + 1]);
    EXPECT_NEAR(events.front().prompt_logprobs[i].logprob, logprob(i, prompt[i + 1]), 1e-4) << i;
    // The alternatives at each prompt position: the 5 best of that position's logits, best first.
    const auto& top = events.front().prompt_top_logprobs[i];
    ASSERT_EQ(top.size(), 5u);
    const float* row = logits.data() + i * size_t(vocab);
    const int32_t best = int32_t(std::max_element(row, row + vocab) - row);
    EXPECT_EQ(top[0].token, best) << i;
    for (size_t k = 0; k < 5; ++k) {
      EXPECT_NEAR(top[k].logprob, logprob(i, top[k].token), 1e-4);
      if (k > 0) EXPECT_LE(top[k].logprob, top[k - 1].logprob);
    }
  }
  for (size_t g = 0; g < generated.size(); ++g) {
    const size_t pos = prompt.size() - 1 + g;
    const GenerationEvent& ev = events[g];
    EXPECT_NEAR(ev.logprob, logprob(pos, ev.token), 1e-4);
    ASSERT_EQ(ev.top_logprobs.size(), 5u);
    EXPECT_EQ(ev.top_logprobs[0].token, ev.token);  // greedy picks the most likely
    for (size_t k = 0; k < 5; ++k) {
      EXPECT_NEAR(ev.top_logprobs[k].logprob, logprob(pos, ev.top_logprobs[k].token), 1e-4);
      if (k > 0) EXPECT_LE(ev.top_logprobs[k].logprob, ev.top_logprobs[k - 1].logprob);
    }
  }
}

// Sampled (not greedy) requests, several at once: each must give the tokens a Session with a sampler of
// the same options and seed gives. Options within top_candidates() go through the top-logits rows,
// the others (penalties, no top-k) through whole rows.
class SchedulerSampling : public ::testing::TestWithParam<int> {};

TEST_P(SchedulerSampling, SeededRequestsMatchSession) {
  const auto model = fixture_model("qwen2");
  const int64_t vocab = model->config().vocab_size;
  SamplerOptions o;
  o.seed = 1234;
  switch (GetParam()) {
    case 0: o.temperature = 0.9f; break;  // top_k 40, top_p 0.95, min_p 0.05 (the defaults)
    case 1: o.temperature = 1.4f; o.top_k = 64; o.top_p = 1.0f; o.min_p = 0.0f; break;
    case 2: o.temperature = 0.7f; o.top_k = 0; o.top_p = 0.8f; break;  // whole rows: no top-k
    case 3: o.temperature = 1.0f; o.presence_penalty = 0.5f; o.frequency_penalty = 0.2f; break;  // whole rows
  }
  {
    Sampler probe(o);
    EXPECT_EQ(probe.top_candidates() > 0, GetParam() < 2);
  }
  const int n = 5;
  std::vector<std::vector<int32_t>> prompts, expected;
  for (int i = 0; i < n; ++i) {
    prompts.push_back(random_prompt(6 + size_t(i * 3), uint32_t(300 + i), vocab));
    Session session(model, SessionOptions{});
    SamplerOptions oi = o;
    oi.seed = o.seed + uint64_t(i);
    Sampler sampler(oi);
    std::vector<int32_t> out;
    generate(session, sampler, prompts.back(), 16, [&](int32_t t) {
      out.push_back(t);
      return true;
    });
    expected.push_back(out);
  }
  SchedulerOptions so;
  so.n_ctx = 256;
  Scheduler scheduler(model, so);
  Collector collector;
  for (int i = 0; i < n; ++i) {
    GenerationRequest r;
    r.prompt = prompts[size_t(i)];
    r.sampling = o;
    r.sampling.seed = o.seed + uint64_t(i);
    r.max_tokens = 16;
    r.top_logprobs = 3;
    scheduler.submit(r, collector.callback(uint64_t(i)));
  }
  ASSERT_TRUE(collector.wait(size_t(n)));
  for (int i = 0; i < n; ++i) {
    EXPECT_EQ(collector.tokens(uint64_t(i)), expected[size_t(i)]) << "request " << i;
    for (const auto& ev : collector.events(uint64_t(i))) {
      if (ev.token < 0) continue;
      ASSERT_EQ(ev.top_logprobs.size(), 3u);
      EXPECT_LE(ev.logprob, ev.top_logprobs[0].logprob + 1e-6f);
      EXPECT_LE(ev.top_logprobs[1].logprob, ev.top_logprobs[0].logprob);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Options, SchedulerSampling, ::testing::Values(0, 1, 2, 3));

// Allows only even token ids; counts accepted tokens.
class EvenTokens : public TokenConstraint {
 public:
  void allowed_tokens(std::span<uint8_t> allowed) override {
    for (size_t i = 0; i < allowed.size(); ++i) allowed[i] = i % 2 == 0 ? 1 : 0;
  }
  void accept(int32_t token) override {
    if (token % 2 != 0) fail(ErrorKind::invalid_argument, "odd token {}", token);
    ++accepted;
  }
  bool complete() const override { return true; }
  bool finished() const override { return accepted >= limit; }
  std::unique_ptr<TokenConstraint> clone_initial() const override { return std::make_unique<EvenTokens>(); }
  int accepted = 0;
  int limit = 1000;
};

TEST(Scheduler, ConstraintMasksTheVocabulary) {
  const auto model = demo_model();
  Scheduler scheduler(model, SchedulerOptions{});
  Collector collector;
  auto constraint = std::make_shared<EvenTokens>();
  constraint->limit = 9;
  GenerationRequest r;
  r.prompt = random_prompt(10, 9, model->config().vocab_size);
  r.sampling.seed = 42;
  r.sampling.temperature = 1.5f;  // sampling, so that odd tokens would come up unmasked
  r.sampling.top_k = 0;
  r.sampling.top_p = 1.0f;
  r.sampling.min_p = 0.0f;
  r.max_tokens = 20;
  r.stop_at_eog = false;
  r.constraint = constraint;
  scheduler.submit(r, collector.callback(0));
  ASSERT_TRUE(collector.wait(1));
  const auto tokens = collector.tokens(0);
  ASSERT_EQ(tokens.size(), 9u);
  for (int32_t t : tokens) EXPECT_EQ(t % 2, 0) << t;
  EXPECT_EQ(constraint->accepted, 9);
  EXPECT_EQ(collector.events(0).back().finish, FinishReason::stop);
}

TEST(Scheduler, EmbeddingsMatchSessionHiddenStates) {
  const auto model = fixture_model("qwen2");
  const int64_t dim = model->config().dim;
  SchedulerOptions o;
  o.max_batch_tokens = 16;  // the 37 tokens take three forwards
  Scheduler scheduler(model, o);
  const auto tokens = random_prompt(37, 77, model->config().vocab_size);
  Session session(model, SessionOptions{});
  std::vector<float> hidden(tokens.size() * size_t(dim));
  session.forward_hidden(tokens, hidden.data());

  for (Pooling pooling : {Pooling::mean, Pooling::last, Pooling::cls}) {
    std::vector<double> expected(size_t(dim), 0.0);
    for (size_t t = 0; t < tokens.size(); ++t) {
      const bool take = pooling == Pooling::mean || (pooling == Pooling::last && t + 1 == tokens.size()) ||
                        (pooling == Pooling::cls && t == 0);
      if (!take) continue;
      for (int64_t d = 0; d < dim; ++d) expected[size_t(d)] += hidden[t * size_t(dim) + size_t(d)];
    }
    double norm = 0.0;
    for (double v : expected) norm += v * v;
    norm = std::sqrt(norm);
    const auto got = scheduler.embed(tokens, pooling, true).get();
    ASSERT_EQ(got.size(), size_t(dim));
    for (int64_t d = 0; d < dim; ++d) EXPECT_NEAR(got[size_t(d)], expected[size_t(d)] / norm, 1e-4) << d;
    const auto raw = scheduler.embed(tokens, pooling, false).get();
    const double scale = pooling == Pooling::mean ? double(tokens.size()) : 1.0;
    EXPECT_NEAR(raw[0], expected[0] / scale, 1e-4 * std::abs(expected[0] / scale) + 1e-5);
  }
  EXPECT_THROW(scheduler.embed({}, Pooling::mean, true), Error);
}

TEST(Scheduler, DestructorCancelsUnfinishedRequests) {
  const auto model = demo_model();
  Collector collector;
  {
    SchedulerOptions o;
    o.max_sequences = 1;
    Scheduler scheduler(model, o);
    for (int i = 0; i < 3; ++i) {
      GenerationRequest r = greedy_request(random_prompt(10, uint32_t(i + 1), model->config().vocab_size), 2000);
      r.stop_at_eog = false;
      scheduler.submit(std::move(r), collector.callback(uint64_t(i)));
    }
  }
  ASSERT_TRUE(collector.wait(3, 1s));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(collector.events(uint64_t(i)).back().finish, FinishReason::cancelled);
}

}  // namespace
