// Continuous batching throughput: S greedy streams generate at once through one Scheduler, and the
// aggregate rate (all streams' generated tokens over the wall time from the first submit to the
// last token) is measured for each S. Median of N runs after a warm-up run.
//
//   batch_throughput MODEL.gguf [--streams 1,8,32] [--tokens 64] [--prompt 16] [--runs 3] [--device cpu|cuda]
//
// Run with OMP_NUM_THREADS set to the threads to use. Prompts are random token ids (one per
// stream, different), so the prefix cache does not shorten the work.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "slm/engine/scheduler.hpp"
#include "slm/util/error.hpp"

namespace {

struct Options {
  std::string model;
  std::vector<int> streams = {1, 8, 32};
  int64_t tokens = 64;
  int64_t prompt = 16;
  int runs = 3;
  slm::Device device = slm::Device::cpu;
};

std::vector<int> split_ints(const std::string& s) {
  std::vector<int> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (!item.empty()) out.push_back(std::max(1, std::atoi(item.c_str())));
  }
  return out;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--streams" && has_value) {
      o.streams = split_ints(argv[++i]);
    } else if (arg == "--tokens" && has_value) {
      o.tokens = std::max<int64_t>(1, std::atoll(argv[++i]));
    } else if (arg == "--prompt" && has_value) {
      o.prompt = std::max<int64_t>(1, std::atoll(argv[++i]));
    } else if (arg == "--runs" && has_value) {
      o.runs = std::max(1, std::atoi(argv[++i]));
    } else if (arg == "--device" && has_value) {
      const std::string d = argv[++i];
      if (d != "cpu" && d != "cuda") slm::fail(slm::ErrorKind::invalid_argument, "--device: expected cpu or cuda, found '{}'", d);
      o.device = d == "cuda" ? slm::Device::cuda : slm::Device::cpu;
    } else if (!arg.empty() && arg[0] != '-' && o.model.empty()) {
      o.model = arg;
    } else {
      slm::fail(slm::ErrorKind::invalid_argument, "unknown argument '{}' (usage: batch_throughput MODEL "
                "[--streams 1,8,32] [--tokens N] [--prompt N] [--runs N] [--device cpu|cuda])", arg);
    }
  }
  if (o.model.empty()) slm::fail(slm::ErrorKind::invalid_argument, "expected a model path as the first argument");
  if (o.streams.empty()) slm::fail(slm::ErrorKind::invalid_argument, "expected at least one stream count");
  return o;
}

struct Run {
  double seconds = 0.0;
  int64_t generated = 0;
  double tokens_per_second() const { return seconds > 0.0 ? double(generated) / seconds : 0.0; }
};

// One round: `streams` requests submitted together, timed until the last one ends.
Run run_once(slm::Scheduler& scheduler, int streams, const Options& o, uint32_t seed) {
  const int64_t vocab = scheduler.model().config().vocab_size;
  std::mutex mutex;
  std::condition_variable done;
  int finished = 0;
  int64_t generated = 0;
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> token(1, int32_t(vocab - 1));
  const auto start = std::chrono::steady_clock::now();
  for (int s = 0; s < streams; ++s) {
    slm::GenerationRequest r;
    for (int64_t i = 0; i < o.prompt; ++i) r.prompt.push_back(token(rng));
    r.sampling.temperature = 0.0f;
    r.max_tokens = o.tokens;
    r.stop_at_eog = false;
    scheduler.submit(std::move(r), [&](const slm::GenerationEvent& ev) {
      std::lock_guard lock(mutex);
      if (ev.token >= 0) ++generated;
      if (ev.finish != slm::FinishReason::none) {
        ++finished;
        done.notify_all();
      }
      return true;
    });
  }
  std::unique_lock lock(mutex);
  done.wait(lock, [&] { return finished == streams; });
  Run run;
  run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  run.generated = generated;
  return run;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options o = parse(argc, argv);
    const auto model = slm::Model::load(o.model);
    const int max_streams = *std::max_element(o.streams.begin(), o.streams.end());
    std::printf("model %s (%s), %lld prompt + %lld generated tokens per stream, median of %d runs, %s\n",
                o.model.c_str(), model->config().name.c_str(), (long long)o.prompt, (long long)o.tokens, o.runs,
                o.device == slm::Device::cuda ? "cuda" : "cpu");
    std::printf("%8s %14s %14s %14s %12s %10s\n", "streams", "agg tok/s", "min tok/s", "max tok/s", "per stream",
                "vs 1");
    double base = 0.0;
    for (int streams : o.streams) {
      slm::SchedulerOptions so;
      so.max_sequences = streams;
      so.n_ctx = o.prompt + o.tokens + 1;
      so.max_batch_tokens = o.device == slm::Device::cuda ? 512 : std::max<int64_t>(512, streams);
      so.device = o.device;
      if (o.device == slm::Device::cuda) so.cache_type_k = so.cache_type_v = slm::DType::F16;
      so.max_queue = std::max(64, max_streams);
      slm::Scheduler scheduler(model, so);
      run_once(scheduler, streams, o, 1);  // warm-up
      std::vector<double> rates;
      for (int r = 0; r < o.runs; ++r) rates.push_back(run_once(scheduler, streams, o, uint32_t(100 + r)).tokens_per_second());
      std::sort(rates.begin(), rates.end());
      const double median = rates[rates.size() / 2];
      if (base == 0.0) base = median;
      std::printf("%8d %14.1f %14.1f %14.1f %12.1f %9.2fx\n", streams, median, rates.front(), rates.back(),
                  median / streams, median / base);
      std::fflush(stdout);
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "batch_throughput: %s\n", e.what());
    return 1;
  }
}
