// Matrix-vector products with block-quantized weights at Qwen2.5-0.5B shapes (one token): weight
// bytes/s of the reference path (dequantize to f32, then multiply) and of matmul_quant (integer
// block kernels where the machine has them), against the machine's measured read bandwidth.
//
//   bench_matmul_quant [--runs N] [--tokens T] [--no-bandwidth]
// Run with OMP_NUM_THREADS set to the threads to use. Rates are from the median of N runs after a
// warm-up; the fastest run is shown too (the machine may be shared).
#include <algorithm>
#include <chrono>
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

using Fn = void (*)(DType, const void*, int64_t, int64_t, const float*, int64_t, float*);

// Seconds of the median and the fastest of `runs` calls after one warm-up.
std::pair<double, double> time_runs(Fn fn, DType type, const std::vector<uint8_t>& w, Shape s, const float* x,
                                    int64_t n_tokens, float* y, int runs) {
  fn(type, w.data(), s.n_out, s.n_in, x, n_tokens, y);
  std::vector<double> times;
  for (int r = 0; r < runs; ++r) {
    const auto start = std::chrono::steady_clock::now();
    fn(type, w.data(), s.n_out, s.n_in, x, n_tokens, y);
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  return {times[times.size() / 2], times.front()};
}

int run(int argc, char** argv) {
  int runs = 7;
  int64_t n_tokens = 1;
  bool bandwidth = true;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--runs" && i + 1 < argc) {
      runs = std::max(1, std::atoi(argv[++i]));
    } else if (arg == "--tokens" && i + 1 < argc) {
      n_tokens = std::max(1, std::atoi(argv[++i]));
    } else if (arg == "--no-bandwidth") {
      bandwidth = false;
    } else {
      std::fprintf(stderr, "usage: bench_matmul_quant [--runs N] [--tokens T] [--no-bandwidth]\n");
      return 2;
    }
  }
  std::printf("threads %d, tokens %lld, runs %d\n", omp_get_max_threads(), static_cast<long long>(n_tokens), runs);
  if (bandwidth) std::printf("read bandwidth %.1f GB/s\n", slm::cpu::measure_read_bandwidth() / 1e9);
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::printf("%-6s %-12s %8s | %10s %8s | %10s %8s | %7s\n", "type", "shape", "MB", "ref ms", "GB/s", "simd ms",
              "GB/s", "speedup");
  for (const DType type : {DType::Q8_0, DType::Q4_0, DType::Q4_K, DType::Q6_K}) {
    for (const Shape s : kShapes) {
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
      const auto ref = time_runs(slm::cpu::matmul_quant_ref, type, w, s, x.data(), n_tokens, y.data(), runs);
      const auto simd = time_runs(slm::cpu::matmul_quant, type, w, s, x.data(), n_tokens, y.data(), runs);
      const double mb = double(w.size()) / 1e6;
      char shape[32];
      std::snprintf(shape, sizeof shape, "%lldx%lld", static_cast<long long>(s.n_out), static_cast<long long>(s.n_in));
      std::printf("%-6s %-12s %8.2f | %10.3f %8.2f | %10.3f %8.2f | %6.1fx   (fastest %.2f / %.2f GB/s)\n",
                  std::string(slm::dtype_name(type)).c_str(), shape, mb, ref.first * 1e3,
                  mb / 1e3 / ref.first, simd.first * 1e3, mb / 1e3 / simd.first, ref.first / simd.first,
                  mb / 1e3 / ref.second, mb / 1e3 / simd.second);
    }
  }
  std::printf("integer kernels:");
  for (const DType type : {DType::Q8_0, DType::Q4_0, DType::Q4_K, DType::Q6_K}) {
    std::printf(" %s %s", std::string(slm::dtype_name(type)).c_str(),
                slm::cpu::matmul_quant_has_simd(type) ? "yes" : "no");
  }
  std::printf("\n");
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
