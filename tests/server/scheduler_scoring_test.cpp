// Prompt-only requests (max_tokens 0 with prompt logprobs: what echo + logprobs scoring sends) next
// to generation streams: they need no generation slot and must finish within a few scheduler steps
// while a stream runs, even with one slot and generation requests already waiting for it. Steps
// are counted (SchedulerStats::steps), not timed.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>

#include "slm/engine/scheduler.hpp"
#include "slm/util/error.hpp"
#include "../common/models.hpp"

namespace fs = std::filesystem;
using namespace slm;

namespace {

using slm_test::demo_model;

std::vector<int32_t> random_prompt(size_t n, uint32_t seed, int64_t vocab) {
  return slm_test::random_tokens(n, seed, vocab);
}

// Per request: its events, and the scheduler's step count when its first and last events came.
struct Record {
  std::vector<GenerationEvent> events;
  int64_t first_step = -1;
  int64_t last_step = -1;
};

bool ended_in(const std::map<int, Record>& records, int key) {
  const auto it = records.find(key);
  return it != records.end() && !it->second.events.empty() && it->second.events.back().finish != FinishReason::none;
}

struct Tracker {
  const Scheduler* scheduler = nullptr;
  std::mutex mutex;
  std::condition_variable cv;
  std::map<int, Record> records;

  GenerationCallback callback(int key) {
    return [this, key](const GenerationEvent& ev) {
      const int64_t steps = scheduler->stats().steps;
      std::lock_guard lock(mutex);
      Record& r = records[key];
      if (r.events.empty()) r.first_step = steps;
      if (ev.finish != FinishReason::none) r.last_step = steps;
      r.events.push_back(ev);
      cv.notify_all();
      return true;
    };
  }
  // Waits (with a generous deadline, for a loaded machine) until `pred` holds.
  template <class Pred>
  bool wait(Pred pred) {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, std::chrono::seconds(120), [&] { return pred(records); });
  }
  Record get(int key) {
    std::lock_guard lock(mutex);
    return records[key];
  }
  bool has_ended(int key) {
    std::lock_guard lock(mutex);
    return ended_in(records, key);
  }
};

GenerationRequest stream_request(std::vector<int32_t> prompt) {
  GenerationRequest r;
  r.prompt = std::move(prompt);
  r.sampling.temperature = 0.0f;
  r.max_tokens = 100000;  // runs until cancelled
  r.stop_at_eog = false;
  return r;
}

GenerationRequest scoring_request(std::vector<int32_t> prompt) {
  GenerationRequest r;
  r.prompt = std::move(prompt);
  r.max_tokens = 0;
  r.prompt_logprobs = true;
  r.top_logprobs = 2;
  return r;
}

}  // namespace

TEST(SchedulerScoring, PromptOnlyRequestDoesNotWaitForTheRunningStream) {
  const auto model = demo_model();
  const int64_t vocab = model->config().vocab_size;
  SchedulerOptions o;
  o.n_ctx = 512;
  o.max_sequences = 1;
  o.prefill_chunk = 32;  // a 100-token prompt takes 4 steps of prefill
  Tracker t;  // outlives the scheduler, whose destructor may still call back
  Scheduler scheduler(model, o);
  t.scheduler = &scheduler;
  const uint64_t stream = scheduler.submit(stream_request(random_prompt(16, 1, vocab)), t.callback(0));
  ASSERT_TRUE(t.wait([](const auto& r) { return r.count(0) != 0 && !r.at(0).events.empty(); }));
  // A generation request waiting for the only slot, then the prompt-only one.
  const uint64_t waiting = scheduler.submit(stream_request(random_prompt(16, 2, vocab)), t.callback(1));
  const int64_t submitted_at = scheduler.stats().steps;
  const std::vector<int32_t> prompt = random_prompt(100, 3, vocab);
  scheduler.submit(scoring_request(prompt), t.callback(2));
  ASSERT_TRUE(t.wait([](const auto& r) { return ended_in(r, 2); }));
  const auto scored = t.get(2);
  // Prefill in ceil(100 / 32) = 4 steps, plus a step or two of slack for when the request arrived.
  EXPECT_LE(scored.last_step - submitted_at, 7) << "the prompt-only request waited behind the stream";
  ASSERT_EQ(scored.events.size(), 1u);
  EXPECT_EQ(scored.events[0].finish, FinishReason::length);
  EXPECT_EQ(scored.events[0].completion_tokens, 0);
  ASSERT_EQ(scored.events[0].prompt_logprobs.size(), prompt.size() - 1);
  ASSERT_EQ(scored.events[0].prompt_top_logprobs.size(), prompt.size() - 1);
  for (size_t i = 0; i < prompt.size() - 1; ++i) {
    EXPECT_EQ(scored.events[0].prompt_logprobs[i].token, prompt[i + 1]);
    EXPECT_LE(scored.events[0].prompt_logprobs[i].logprob, 0.0f);
  }
  // The stream kept going meanwhile, and the generation request still waits for its slot.
  EXPECT_FALSE(t.has_ended(0));
  EXPECT_TRUE(t.get(1).events.empty());
  EXPECT_EQ(scheduler.stats().queued, 1);
  scheduler.cancel(stream);
  scheduler.cancel(waiting);
  ASSERT_TRUE(t.wait([](const auto& r) { return ended_in(r, 0) && ended_in(r, 1); }));
  EXPECT_EQ(t.get(0).events.back().finish, FinishReason::cancelled);
}

TEST(SchedulerScoring, ScoringMatchesAloneAndManyRunBesideTheStream) {
  const auto model = demo_model();
  const int64_t vocab = model->config().vocab_size;
  SchedulerOptions o;
  o.n_ctx = 512;
  o.max_sequences = 2;
  Tracker t;  // outlives the scheduler, whose destructor may still call back
  Scheduler scheduler(model, o);
  t.scheduler = &scheduler;
  // Alone first: the reference logprobs.
  const std::vector<int32_t> prompt = random_prompt(40, 4, vocab);
  scheduler.submit(scoring_request(prompt), t.callback(0));
  ASSERT_TRUE(t.wait([](const auto& r) { return ended_in(r, 0); }));
  const auto alone = t.get(0).events.at(0).prompt_logprobs;
  ASSERT_EQ(alone.size(), prompt.size() - 1);
  // Two streams fill both slots; five scoring requests still all finish while they run.
  std::vector<uint64_t> streams;
  for (int i = 0; i < 2; ++i) streams.push_back(scheduler.submit(stream_request(random_prompt(16, 10 + i, vocab)), t.callback(10 + i)));
  ASSERT_TRUE(t.wait([](const auto& r) { return r.count(11) != 0 && !r.at(11).events.empty(); }));
  for (int i = 0; i < 5; ++i) scheduler.submit(scoring_request(prompt), t.callback(20 + i));
  ASSERT_TRUE(t.wait([](const auto& r) {
    for (int i = 0; i < 5; ++i) {
      if (!ended_in(r, 20 + i)) return false;
    }
    return true;
  }));
  EXPECT_FALSE(t.has_ended(10));
  EXPECT_FALSE(t.has_ended(11));
  for (int i = 0; i < 5; ++i) {
    const auto got = t.get(20 + i).events.at(0).prompt_logprobs;
    ASSERT_EQ(got.size(), alone.size());
    for (size_t k = 0; k < got.size(); ++k) {
      EXPECT_EQ(got[k].token, alone[k].token);
      EXPECT_NEAR(got[k].logprob, alone[k].logprob, 0.05f) << "request " << i << " position " << k;
    }
  }
  for (uint64_t id : streams) scheduler.cancel(id);
  ASSERT_TRUE(t.wait([](const auto& r) { return ended_in(r, 10) && ended_in(r, 11); }));
}

// max_queue bounds the requests that wait for a slot, not the ones that start at the next step:
// with max_queue 0 a request is refused only when its lane's slots are all taken.
TEST(SchedulerScoring, MaxQueueZeroServesWhatStartsAtOnce) {
  const auto model = demo_model();
  const int64_t vocab = model->config().vocab_size;
  SchedulerOptions o;
  o.n_ctx = 512;
  o.max_sequences = 1;
  o.max_queue = 0;
  Tracker t;  // outlives the scheduler, whose destructor may still call back
  Scheduler scheduler(model, o);
  t.scheduler = &scheduler;
  const uint64_t stream = scheduler.submit(stream_request(random_prompt(16, 1, vocab)), t.callback(0));
  // A second generation request would wait for the slot: refused, whether or not the first has
  // been admitted yet.
  EXPECT_THROW(scheduler.submit(stream_request(random_prompt(16, 2, vocab)), t.callback(1)), Error);
  ASSERT_TRUE(t.wait([](const auto& r) { return r.count(0) != 0 && !r.at(0).events.empty(); }));
  EXPECT_THROW(scheduler.submit(stream_request(random_prompt(16, 3, vocab)), t.callback(2)), Error);
  // A prompt-only request has a lane of its own: it starts at once; a second one at the same time
  // would wait.
  scheduler.submit(scoring_request(random_prompt(30, 4, vocab)), t.callback(3));
  EXPECT_THROW(scheduler.submit(scoring_request(random_prompt(30, 5, vocab)), t.callback(4)), Error);
  ASSERT_TRUE(t.wait([](const auto& r) { return ended_in(r, 3); }));
  EXPECT_EQ(t.get(3).events.back().finish, FinishReason::length);
  EXPECT_EQ(scheduler.stats().queued, 0);
  scheduler.cancel(stream);
  ASSERT_TRUE(t.wait([](const auto& r) { return ended_in(r, 0); }));
  // The slot is free again (counted free before the stream's last event goes out).
  const uint64_t again = scheduler.submit(stream_request(random_prompt(16, 6, vocab)), t.callback(5));
  ASSERT_TRUE(t.wait([](const auto& r) { return r.count(5) != 0 && !r.at(5).events.empty(); }));
  EXPECT_FALSE(t.has_ended(1));
  scheduler.cancel(again);
  ASSERT_TRUE(t.wait([](const auto& r) { return ended_in(r, 5); }));
}
