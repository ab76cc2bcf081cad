// slm bench MODEL [-p 512 -n 128 -r 5] [--device cpu|cuda|auto] [--json]: prompt processing and generation speed.
#include <fmt/format.h>
#include <omp.h>
#include <sys/resource.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>

#include "common.hpp"
#include "slm/util/error.hpp"
#include "slm/backend/cpu/matmul.hpp"
#include "slm/engine/cuda_session.hpp"
#include "slm/engine/session.hpp"
#include "slm/util/timing.hpp"

namespace slm::cli {
namespace {
struct BenchArgs {
  std::string model;
  int64_t n_prompt = 512;
  int64_t n_gen = 128;
  int64_t depth = 0;
  int repetitions = 5;
  int threads = 0;
  bool json = false;
  bool no_bandwidth = false;
  std::string device = "auto";
  CacheTypeArgs cache_types;
};

struct Series {
  std::vector<double> tokens_per_s;
  double median() const {
    auto v = tokens_per_s;
    std::sort(v.begin(), v.end());
    if (v.empty()) return 0.0;
    return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
  }
  double min() const { return tokens_per_s.empty() ? 0.0 : *std::min_element(tokens_per_s.begin(), tokens_per_s.end()); }
  double max() const { return tokens_per_s.empty() ? 0.0 : *std::max_element(tokens_per_s.begin(), tokens_per_s.end()); }
};

// The model's size on disk: a GGUF file, or a folder's safetensors files.
size_t model_bytes_on_disk(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) return size_t(fs::file_size(path, ec));
  size_t total = 0;
  for (const auto& entry : fs::directory_iterator(path, ec)) {
    if (entry.is_regular_file(ec) && entry.path().extension() == ".safetensors") total += size_t(entry.file_size(ec));
  }
  return total;
}

size_t peak_rss_bytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return size_t(usage.ru_maxrss) * 1024;
}
}  // namespace

Command add_bench(CLI::App& app) {
  auto args = std::make_shared<BenchArgs>();
  CLI::App* cmd = app.add_subcommand("bench", "Measure prompt-processing and generation tokens/s");
  cmd->add_option("model", args->model, "GGUF file, Hugging Face folder or store name (default: the demo model)");
  cmd->add_option("-p,--n-prompt", args->n_prompt, "Prompt tokens per run (0: skip)")->capture_default_str();
  cmd->add_option("-n,--n-gen", args->n_gen, "Generated tokens per run (0: skip)")->capture_default_str();
  cmd->add_option("-d,--depth", args->depth, "Tokens already in the context before each test (as llama-bench's -d)")
      ->capture_default_str();
  cmd->add_option("-r,--repetitions", args->repetitions, "Runs of each test (the median is reported)")->capture_default_str();
  cmd->add_option("-t,--threads", args->threads, "Threads (0: one per core)");
  cmd->add_flag("--json", args->json, "Print JSON");
  cmd->add_flag("--no-bandwidth", args->no_bandwidth, "Skip measuring the memory read bandwidth");
  add_cache_type_options(cmd, args->cache_types);
  cmd->add_option("--device", args->device,
                  "cpu, cuda or auto (CUDA when built with it, a GPU is present and the model runs there)")
      ->capture_default_str();
  return {cmd, [args]() {
            set_threads(args->threads);
            if (args->repetitions <= 0) fail(ErrorKind::invalid_argument, "-r must be positive, found {}", args->repetitions);
            if (args->n_prompt < 0 || args->n_gen < 0 || args->depth < 0) {
              fail(ErrorKind::invalid_argument, "-p, -n and -d must be >= 0");
            }
            auto model = load_model(args->model);
            const ModelConfig& c = model->config();
            const int64_t n_ctx = args->depth + std::max<int64_t>(std::max(args->n_prompt, args->n_gen), 1);
            const Device device = choose_device(args->device, *model, n_ctx);
            const auto [k_type, v_type] = cache_types(args->cache_types);
            std::mt19937 rng(1234);
            std::uniform_int_distribution<int32_t> pick(0, int32_t(c.vocab_size - 1));
            std::vector<float> logits(static_cast<size_t>(c.vocab_size));
            Series pp, tg;
            std::vector<int32_t> context(static_cast<size_t>(args->depth));
            for (auto& t : context) t = pick(rng);
            const auto measure = [&](auto& session) {
              // The context of --depth tokens, evaluated once and kept (untimed) before each test.
              const auto start = [&] {
                if (args->depth == 0) {
                  session.reset();
                } else if (session.n_past() >= args->depth) {
                  session.truncate(args->depth);
                } else {
                  session.reset();
                  session.forward(context, logits.data(), false);
                }
              };
              // One warm-up of each test, then the counted runs.
              for (int r = -1; r < args->repetitions; ++r) {
                if (args->n_prompt > 0) {
                  std::vector<int32_t> tokens(static_cast<size_t>(args->n_prompt));
                  for (auto& t : tokens) t = pick(rng);
                  start();
                  Stopwatch clock;
                  session.forward(tokens, logits.data(), false);
                  const double s = clock.seconds();
                  if (r >= 0) pp.tokens_per_s.push_back(double(args->n_prompt) / s);
                }
                if (args->n_gen > 0) {
                  start();
                  int32_t token = pick(rng);
                  Stopwatch clock;
                  for (int64_t i = 0; i < args->n_gen; ++i) {
                    session.forward(std::span<const int32_t>(&token, 1), logits.data(), false);
                    token = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
                  }
                  const double s = clock.seconds();
                  if (r >= 0) tg.tokens_per_s.push_back(double(args->n_gen) / s);
                }
              }
            };
            std::string gpu_name;
            size_t kv_bytes = 0;
            if (device == Device::cuda) {
              if (k_type != v_type || k_type == DType::Q8_0) {
                fail(ErrorKind::unsupported, "--device cuda: expected --cache-type-k and -v both f32 or both f16");
              }
              CudaSessionOptions co;
              co.n_ctx = n_ctx;
              co.kv_type = k_type;
              CudaSession session(model, co);
              measure(session);
              kv_bytes = 2 * size_t(c.n_layers) * size_t(n_ctx) * size_t(c.kv_dim()) * (k_type == DType::F16 ? 2 : 4);
              gpu_name = cuda_device_summary().name;
            } else {
              SessionOptions so;
              so.n_ctx = n_ctx;
              so.n_batch = std::max<int64_t>(args->n_prompt, 1);
              so.cache_type_k = k_type;
              so.cache_type_v = v_type;
              Session session(model, so);
              measure(session);
              kv_bytes = session.kv_cache_bytes();
            }
            const double bytes_per_token = double(model->weight_bytes_per_token());
            const double weight_gbps = tg.median() * bytes_per_token / 1e9;
            const size_t peak = peak_rss_bytes();  // before the bandwidth probe's own buffer
            const size_t model_file_bytes = model_bytes_on_disk(model->path());
            // The GPU's figure is its device-to-device copy (bytes read plus written), the CPU's a read probe.
            const double bandwidth = args->no_bandwidth ? 0.0
                                     : device == Device::cuda ? cuda_copy_bandwidth() / 1e9
                                                              : cpu::measure_read_bandwidth() / 1e9;
            const int threads = omp_get_max_threads();
            if (args->json) {
              nlohmann::json out;
              out["model"] = model->path();
              out["arch"] = c.arch;
              out["device"] = std::string(device_name(device));
              if (device == Device::cuda) out["gpu"] = gpu_name;
              out["threads"] = threads;
              out["isa"] = cpu::isa_name(cpu::detect_isa());
              out["weight_bytes_per_token"] = bytes_per_token;
              out["peak_rss_bytes"] = peak;
              out["model_file_bytes"] = model_file_bytes;
              out["depth"] = args->depth;
              out["cache_type_k"] = dtype_name(k_type);
              out["cache_type_v"] = dtype_name(v_type);
              out["kv_cache_bytes"] = kv_bytes;
              if (args->n_prompt > 0) out["pp"] = {{"n", args->n_prompt}, {"tokens_per_s", pp.median()}, {"runs", pp.tokens_per_s}};
              if (args->n_gen > 0) {
                out["tg"] = {{"n", args->n_gen}, {"tokens_per_s", tg.median()}, {"runs", tg.tokens_per_s}};
                out["weight_gb_per_s"] = weight_gbps;
              }
              if (bandwidth > 0) {
                out[device == Device::cuda ? "copy_bandwidth_gb_per_s" : "read_bandwidth_gb_per_s"] = bandwidth;
                if (args->n_gen > 0) out["bandwidth_fraction"] = weight_gbps / bandwidth;
              }
              std::cout << out.dump(2) << "\n";
              return 0;
            }
            if (device == Device::cuda) {
              std::cout << fmt::format("model: {} ({}, {}), CUDA on {}\n", model->path(), c.arch, model->format(), gpu_name);
            } else {
              std::cout << fmt::format("model: {} ({}, {}), {} threads, {}\n", model->path(), c.arch, model->format(),
                                       threads, cpu::isa_name(cpu::detect_isa()));
            }
            std::cout << fmt::format("KV cache: {} keys, {} values, {:.1f} MiB for {} positions{}\n", dtype_name(k_type),
                                     dtype_name(v_type), double(kv_bytes) / (1 << 20), n_ctx,
                                     args->depth > 0 ? fmt::format(" (tests at depth {})", args->depth) : "");
            std::cout << fmt::format("| {:8} | {:>10} | {:>10} | {:>10} |\n", "test", "t/s median", "min", "max");
            if (args->n_prompt > 0)
              std::cout << fmt::format("| pp{:<6} | {:10.2f} | {:10.2f} | {:10.2f} |\n", args->n_prompt, pp.median(), pp.min(), pp.max());
            if (args->n_gen > 0)
              std::cout << fmt::format("| tg{:<6} | {:10.2f} | {:10.2f} | {:10.2f} |\n", args->n_gen, tg.median(), tg.min(), tg.max());
            std::cout << fmt::format("weights read per token: {:.1f} MiB", bytes_per_token / (1 << 20));
            if (args->n_gen > 0) std::cout << fmt::format("; at tg: {:.2f} GB/s", weight_gbps);
            if (bandwidth > 0) {
              std::cout << fmt::format("; measured {} bandwidth {:.2f} GB/s",
                                       device == Device::cuda ? "device copy" : "read", bandwidth);
              if (args->n_gen > 0) std::cout << fmt::format(" ({:.0f}% of it)", 100.0 * weight_gbps / bandwidth);
            }
            std::cout << fmt::format("\npeak memory: {:.1f} MiB (file {:.1f} MiB, KV cache {:.1f} MiB)\n", double(peak) / (1 << 20),
                                     double(model_file_bytes) / (1 << 20), double(kv_bytes) / (1 << 20));
            return 0;
          }};
}

}  // namespace slm::cli
