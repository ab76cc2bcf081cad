// Products with block-quantized weights at Qwen2.5-0.5B shapes: weight bytes/s (and multiply-adds/s)
// of every path matmul_quant can take on this machine (the reference path dequantizes to f32 and
// multiplies; the integer ones per instruction set), against the machine's measured read bandwidth.
//
//   bench_matmul_quant [--runs N] [--tokens T] [--no-bandwidth] [--no-reference] [--cpu-time] [--llama]
//                      [--type NAME]...
// Run with OMP_NUM_THREADS set to the threads to use. Rates are from the median of N runs after a
// warm-up; the fastest run is shown too (the machine may be shared).
#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <omp.h>

#include "slm/backend/cpu/matmul.hpp"
#include "slm/backend/cpu/matmul_quant.hpp"
#include "slm/format/quant.hpp"
#include "slm/util/error.hpp"

namespace {

using slm::DType;

struct Shape {
  int64_t n_out;
  int64_t n_in;
};

const Shape kShapes[] = {{896, 896}, {128, 896}, {4864, 896}, {896, 4864}, {151936, 896}};
// --llama: Llama-3.2-1B's shapes instead.
const Shape kLlamaShapes[] = {{2048, 2048}, {512, 2048}, {8192, 2048}, {2048, 8192}, {128256, 2048}};
bool g_llama = false;

bool g_cpu_time = false;  // --cpu-time: process CPU seconds (all threads) instead of wall seconds

double now_seconds() {
  if (g_cpu_time) {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Seconds of the median and the fastest of `runs` calls after one warm-up.
std::pair<double, double> time_runs(slm::cpu::QuantPath path, DType type, const std::vector<uint8_t>& w, Shape s,
                                    const float* x, int64_t n_tokens, float* y, int runs) {
  slm::cpu::matmul_quant_path(path, type, w.data(), s.n_out, s.n_in, x, n_tokens, y);
  std::vector<double> times;
  for (int r = 0; r < runs; ++r) {
    const double start = now_seconds();
    slm::cpu::matmul_quant_path(path, type, w.data(), s.n_out, s.n_in, x, n_tokens, y);
    times.push_back(now_seconds() - start);
  }
  std::sort(times.begin(), times.end());
  return {times[times.size() / 2], times.front()};
}

int run(int argc, char** argv) {
  int runs = 7;
  int64_t n_tokens = 1;
  bool bandwidth = true, reference = true;
  std::vector<DType> types;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--runs" && i + 1 < argc) {
      runs = std::max(1, std::atoi(argv[++i]));
    } else if (arg == "--tokens" && i + 1 < argc) {
      n_tokens = std::max(1, std::atoi(argv[++i]));
    } else if (arg == "--no-bandwidth") {
      bandwidth = false;
    } else if (arg == "--llama") {
      g_llama = true;
    } else if (arg == "--cpu-time") {
      g_cpu_time = true;
    } else if (arg == "--no-reference") {
      reference = false;
    } else if (arg == "--type" && i + 1 < argc) {
      const std::string name = argv[++i];
      bool found = false;
      for (uint32_t t = 0; t < 64 && !found; ++t) {
        if (slm::dtype_traits(t) && slm::dtype_name(DType(t)) == name) {
          types.push_back(DType(t));
          found = true;
        }
      }
      if (!found) {
        std::fprintf(stderr, "unknown type %s\n", name.c_str());
        return 2;
      }
    } else {
      std::fprintf(stderr,
                   "usage: bench_matmul_quant [--runs N] [--tokens T] [--no-bandwidth] [--no-reference] "
                   "[--cpu-time] [--type NAME]...\n");
      return 2;
    }
  }
  if (types.empty()) {
    types = {DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::IQ4_NL,
             DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::IQ4_XS};
  }
  std::printf("threads %d, tokens %lld, runs %d\n", omp_get_max_threads(), static_cast<long long>(n_tokens), runs);
  if (bandwidth) std::printf("read bandwidth %.1f GB/s\n", slm::cpu::measure_read_bandwidth() / 1e9);
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::printf("%-7s %-12s %8s %-12s %10s %8s %9s %8s\n", "type", "shape", "MB", "path", "ms", "GB/s", "GMAC/s",
              "fastest");
  for (const DType type : types) {
    for (const Shape s : g_llama ? kLlamaShapes : kShapes) {
      if (s.n_in % int64_t(slm::dtype_traits(type).block_size) != 0) continue;  // K formats need rows of whole 256-blocks
      const size_t row_bytes = slm::quantized_row_bytes(type, s.n_in);
      std::vector<uint8_t> w(size_t(s.n_out) * row_bytes);
      std::vector<float> row(size_t(s.n_in));
      for (int64_t o = 0; o < s.n_out; ++o) {  // a few distinct rows, repeated: quantizing is slow
        if (o < 64) {
          for (float& v : row) v = dist(rng) * 0.05f;
          slm::quantize_row(type, row.data(), w.data() + size_t(o) * row_bytes, s.n_in);
        } else {
          std::memcpy(w.data() + size_t(o) * row_bytes, w.data() + size_t(o % 64) * row_bytes, row_bytes);
        }
      }
      std::vector<float> x(size_t(n_tokens * s.n_in));
      for (float& v : x) v = dist(rng);
      std::vector<float> y(size_t(n_tokens * s.n_out));
      const double mb = double(w.size()) / 1e6;
      const double macs = double(s.n_out) * double(s.n_in) * double(n_tokens);
      char shape[32];
      std::snprintf(shape, sizeof shape, "%lldx%lld", static_cast<long long>(s.n_out), static_cast<long long>(s.n_in));
      for (const slm::cpu::QuantPath path : slm::cpu::quant_paths()) {
        if (path == slm::cpu::QuantPath::reference ? !reference : !slm::cpu::quant_path_handles(path, type)) continue;
        const auto t = time_runs(path, type, w, s, x.data(), n_tokens, y.data(), runs);
        std::printf("%-7s %-12s %8.2f %-12s %10.3f %8.2f %9.2f %8.2f\n", std::string(slm::dtype_name(type)).c_str(),
                    shape, mb, slm::cpu::quant_path_name(path), t.first * 1e3, mb / 1e3 / t.first,
                    macs / 1e9 / t.first, mb / 1e3 / t.second);
      }
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const slm::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
