// The scheduler's forward on the GPU (make_cuda_forward) against the CPU Forward on the same batches:
// several sequences of different lengths in one batch, block tables that are not in order, a block
// shared by two sequences (a prefix-cache hit), decode steps after the prompts, hidden states; and the
// continuous-batching scheduler on the GPU against the CPU one (greedy tokens).
#include <gtest/gtest.h>

#include <cstring>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "cuda_test_util.hpp"
#include "slm/engine/cuda_forward.hpp"
#include "slm/engine/forward.hpp"
#include "slm/engine/kv_cache.hpp"
#include "slm/engine/scheduler.hpp"
#include "slm/model/model.hpp"
#include "slm/util/error.hpp"
#include "../common/models.hpp"
#include "../common/vectors.hpp"

namespace slm {
namespace {

namespace fs = std::filesystem;

std::shared_ptr<const Model> fixture(const std::string& name) {
  const char* env = std::getenv("SLM_TEST_DATA");
  const fs::path data = env != nullptr && *env != '\0' ? env : SLM_TEST_DATA;
  return Model::load((data / "models" / name).string());
}

using slm_test::random_tokens;

using slm_test::relative_l2;

// A sequence of the test: its tokens so far and its block table.
struct Seq {
  std::vector<int32_t> tokens;
  std::vector<int32_t> blocks;
};

// The rows [from, to) of each sequence as one batch; every row's output when all_outputs, else each
// sequence's last row.
ForwardBatch make_batch(const std::vector<Seq>& seqs, const std::vector<std::pair<int64_t, int64_t>>& ranges,
                        bool all_outputs) {
  ForwardBatch batch;
  for (size_t i = 0; i < seqs.size(); ++i) {
    const auto [from, to] = ranges[i];
    if (to <= from) continue;
    BatchSequence s;
    s.row_begin = batch.rows();
    s.n_rows = to - from;
    s.blocks = seqs[i].blocks;
    for (int64_t p = from; p < to; ++p) {
      if (all_outputs || p + 1 == to) batch.outputs.push_back(batch.rows());
      batch.tokens.push_back(seqs[i].tokens[size_t(p)]);
      batch.positions.push_back(int32_t(p));
    }
    batch.sequences.push_back(s);
  }
  return batch;
}

// The same batch again through logits_top, outputs asking for 0 (the whole row), 1, 40 or 64 top
// logits: the device's summaries must be those of the whole rows the GPU gave (same products, so
// the same numbers: ids and values exactly, lse to float rounding), and whole rows must come back
// unchanged.
void check_top(BatchForward& gpu, const ForwardBatch& batch, KvCache& cache, const std::vector<float>& rows,
               int64_t vocab) {
  TopLogits top;
  const int32_t ks[] = {1, 0, 40, 64};
  for (size_t o = 0; o < batch.outputs.size(); ++o) top.k.push_back(ks[o % 4]);
  top.k_max = *std::max_element(top.k.begin(), top.k.end());
  std::vector<float> whole(rows.size(), NAN);
  gpu.logits_top(batch, cache, whole.data(), top);
  TopLogits want = top;
  summarize_rows(rows.data(), vocab, want);
  for (size_t o = 0; o < batch.outputs.size(); ++o) {
    SCOPED_TRACE("output " + std::to_string(o) + " k " + std::to_string(top.k[o]));
    if (top.k[o] == 0) {
      EXPECT_EQ(0, std::memcmp(whole.data() + o * vocab, rows.data() + o * vocab, size_t(vocab) * 4));
      continue;
    }
    EXPECT_NEAR(top.lse[o], want.lse[o], 1e-5 * std::max(1.0f, std::fabs(want.lse[o])));
    const int32_t n = std::min<int32_t>(top.k[o], int32_t(vocab));
    for (int32_t j = 0; j < n; ++j) {
      const size_t at = o * size_t(top.k_max) + size_t(j);
      EXPECT_EQ(top.ids[at], want.ids[at]) << j;
      EXPECT_EQ(top.values[at], want.values[at]) << j;
    }
  }
}

void compare_on(const std::string& name, DType kv_type, double bound) {
  SCOPED_TRACE(name + " " + std::string(dtype_name(kv_type)));
  const auto model = fixture(name);
  const ModelConfig& c = model->config();
  const int64_t vocab = c.vocab_size, bs = 4, n_ctx = 64;
  KvCache cpu_cache(c, 40, bs), gpu_cache(c, 40, bs, kv_type, kv_type);
  Forward cpu(model, 128, n_ctx);
  const auto gpu = make_cuda_forward(model, 128, n_ctx, gpu_cache);
  // Three sequences: 13 and 6 prompt tokens, and a third whose first block (4 tokens) is the first
  // sequence's own (shared, already written when the third runs). Tables out of order.
  std::vector<Seq> seqs(3);
  seqs[0].tokens = random_tokens(13, 1, vocab);
  seqs[1].tokens = random_tokens(6, 2, vocab);
  seqs[2].tokens = seqs[0].tokens;
  seqs[2].tokens.resize(4);
  for (int32_t t : random_tokens(7, 3, vocab)) seqs[2].tokens.push_back(t);
  seqs[0].blocks = {7, 2, 30, 11, 5};
  seqs[1].blocks = {0, 19, 3};
  seqs[2].blocks = {7, 25, 12, 9};  // block 7 shared with sequence 0
  std::vector<float> want, got;
  auto run = [&](const ForwardBatch& batch, bool hidden) {
    const size_t width = size_t(hidden ? c.dim : vocab);
    want.assign(batch.outputs.size() * width, NAN);
    got.assign(batch.outputs.size() * width, NAN);
    if (hidden) {
      cpu.hidden(batch, cpu_cache, want.data());
      gpu->hidden(batch, gpu_cache, got.data());
    } else {
      cpu.logits(batch, cpu_cache, want.data());
      gpu->logits(batch, gpu_cache, got.data());
    }
    if (!hidden) check_top(*gpu, batch, gpu_cache, got, vocab);
    double worst = 0.0;
    for (size_t o = 0; o < batch.outputs.size(); ++o) {
      const double e = relative_l2(got.data() + o * width, want.data() + o * width, width);
      EXPECT_TRUE(std::isfinite(e)) << "output " << o;
      worst = std::max(worst, std::isfinite(e) ? e : 1e30);
    }
    return worst;
  };
  // Step 1: the first two prompts whole, every row's logits.
  EXPECT_LT(run(make_batch(seqs, {{0, 13}, {0, 6}, {0, 0}}, true), false), bound);
  // Step 2: the third sequence from its fifth token (its first block is the shared one) with a
  // decode row of each of the others appended first.
  seqs[0].tokens.push_back(17);
  seqs[1].tokens.push_back(23);
  EXPECT_LT(run(make_batch(seqs, {{13, 14}, {6, 7}, {4, 11}}, true), false), bound);
  // Step 3: one decode row each, hidden states.
  for (auto& s : seqs) s.tokens.push_back(31);
  EXPECT_LT(run(make_batch(seqs, {{14, 15}, {7, 8}, {11, 12}}, false), true), bound);
}

TEST(CudaForward, BatchesMatchTheCpuForward) {
  SLM_REQUIRE_CUDA();
  for (const char* name : {"llama3", "qwen2", "qwen3", "gemma3", "mistral", "phi4_mini"}) compare_on(name, DType::F32, 1e-4);
  compare_on("qwen2", DType::F16, 5e-3);
}

TEST(CudaForward, RejectsBadBatches) {
  SLM_REQUIRE_CUDA();
  const auto model = fixture("llama3");
  KvCache cache(model->config(), 8, 4);
  EXPECT_THROW(make_cuda_forward(model, 100000, 64, cache), Error);  // more rows than the decoder takes
  KvCache mixed(model->config(), 8, 4, DType::F16, DType::F32);
  EXPECT_THROW(make_cuda_forward(model, 64, 64, mixed), Error);  // one type for keys and values on the GPU
  const auto gpu = make_cuda_forward(model, 64, 64, cache);
  std::vector<Seq> seqs(1);
  seqs[0].tokens = random_tokens(9, 4, model->config().vocab_size);
  seqs[0].blocks = {1, 2};  // 8 positions: too few for 9
  std::vector<float> out(size_t(model->config().vocab_size));
  EXPECT_THROW(gpu->logits(make_batch(seqs, {{0, 9}}, false), cache, out.data()), Error);
  seqs[0].blocks = {1, 2, 8};  // block 8 is outside the pool of 8
  EXPECT_THROW(gpu->logits(make_batch(seqs, {{0, 9}}, false), cache, out.data()), Error);
  seqs[0].blocks = {1, 2, 3};
  seqs[0].tokens[3] = int32_t(model->config().vocab_size);  // not a token
  EXPECT_THROW(gpu->logits(make_batch(seqs, {{0, 9}}, false), cache, out.data()), Error);
}

// Greedy tokens of concurrent requests through the scheduler on the GPU equal the CPU scheduler's.
TEST(CudaForward, SchedulerOnTheGpuGivesTheCpuTokens) {
  SLM_REQUIRE_CUDA();
  const auto model = fixture("qwen2");
  const int64_t vocab = model->config().vocab_size;
  auto run = [&](Device device) {
    SchedulerOptions o;
    o.device = device;
    o.cache_type_k = o.cache_type_v = DType::F32;
    o.max_sequences = 4;
    o.n_ctx = 64;
    o.block_size = 4;
    o.prefill_chunk = 8;  // prompts in several chunks, mixed with decode rows
    Scheduler scheduler(model, o);
    std::mutex mutex;
    std::condition_variable done;
    std::map<int, std::vector<int32_t>> tokens;
    int finished = 0;
    for (int i = 0; i < 6; ++i) {
      GenerationRequest r;
      r.prompt = random_tokens(size_t(5 + 4 * i), uint32_t(10 + i), vocab);
      if (i % 3 == 2) std::copy_n(random_tokens(8, 99, vocab).begin(), 8, r.prompt.begin());  // a shared prefix
      r.sampling.temperature = 0.0f;
      r.max_tokens = 12;
      r.stop_at_eog = false;
      scheduler.submit(std::move(r), [&, i](const GenerationEvent& ev) {
        std::lock_guard lock(mutex);
        if (ev.token >= 0) tokens[i].push_back(ev.token);
        if (ev.finish != FinishReason::none) {
          ++finished;
          done.notify_all();
        }
        return true;
      });
    }
    std::unique_lock lock(mutex);
    EXPECT_TRUE(done.wait_for(lock, std::chrono::seconds(120), [&] { return finished == 6; }));
    return tokens;
  };
  const auto cpu = run(Device::cpu);
  const auto gpu = run(Device::cuda);
  ASSERT_EQ(cpu.size(), 6u);
  for (int i = 0; i < 6; ++i) {
    ASSERT_EQ(cpu.at(i).size(), 12u) << "request " << i;
    EXPECT_EQ(gpu.count(i) ? gpu.at(i) : std::vector<int32_t>{}, cpu.at(i)) << "request " << i;
  }
}

}  // namespace
}  // namespace slm
