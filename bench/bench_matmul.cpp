// Matrix products at Qwen2.5-0.5B shapes: weight bytes/s for generation (1 token) against the
// machine's measured read bandwidth, GFLOP/s for prompts (512 tokens), and what those times add up
// to for the whole model's matrix products (24 layers; the output head for one token).
//
//   bench_matmul [--runs N] [--types f16,bf16,f32] [--tokens 1,512] [--isa scalar|avx2|avx512]
//                [--shapes 896x896,...] [--no-bandwidth]
// Run with OMP_NUM_THREADS set to the threads to use. Rates are from the median of N runs after a
// warm-up; the fastest run is shown too (the machine may be shared).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <omp.h>

#include "slm/backend/cpu/matmul.hpp"
#include "slm/util/error.hpp"
#include "slm/util/fp16.hpp"

namespace {

using slm::DType;
using slm::cpu::Isa;

struct Shape {
  int64_t n_out;
  int64_t n_in;
};

// The matrices of one Qwen2.5-0.5B layer (q, k, v, o, gate, up, down) and the output head.
constexpr int kLayers = 24;
const std::vector<Shape> kLayerShapes = {{896, 896}, {128, 896}, {128, 896}, {896, 896},
                                         {4864, 896}, {4864, 896}, {896, 4864}};
const Shape kHead = {151936, 896};

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = text.find(',', start);
    const size_t end = comma == std::string::npos ? text.size() : comma;
    if (end > start) parts.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return parts;
}

struct Options {
  int runs = 7;
  std::vector<DType> types = {DType::F16, DType::BF16, DType::F32};
  std::vector<int64_t> tokens = {1, 512};
  std::vector<Shape> shapes = {{896, 896}, {128, 896}, {4864, 896}, {896, 4864}, {151936, 896}};
  Isa isa = slm::cpu::detect_isa();
  bool bandwidth = true;
};

Options parse(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--runs" && has_value) {
      options.runs = std::max(1, std::atoi(argv[++i]));
    } else if (arg == "--types" && has_value) {
      options.types.clear();
      for (const std::string& name : split(argv[++i])) {
        const auto type = slm::dtype_from_name(name);
        if (!type) slm::fail(slm::ErrorKind::invalid_argument, "expected a type name, found '{}'", name);
        options.types.push_back(*type);
      }
    } else if (arg == "--tokens" && has_value) {
      options.tokens.clear();
      for (const std::string& n : split(argv[++i])) options.tokens.push_back(std::max<int64_t>(1, std::atoll(n.c_str())));
    } else if (arg == "--shapes" && has_value) {
      options.shapes.clear();
      for (const std::string& s : split(argv[++i])) {
        Shape shape{};
        if (std::sscanf(s.c_str(), "%ldx%ld", &shape.n_out, &shape.n_in) != 2 || shape.n_out < 1 || shape.n_in < 1) {
          slm::fail(slm::ErrorKind::invalid_argument, "expected a shape like 896x4864, found '{}'", s);
        }
        options.shapes.push_back(shape);
      }
    } else if (arg == "--isa" && has_value) {
      const std::string name = argv[++i];
      if (name == "scalar") {
        options.isa = Isa::scalar;
      } else if (name == "avx2") {
        options.isa = Isa::avx2;
      } else if (name == "avx512") {
        options.isa = Isa::avx512;
      } else {
        slm::fail(slm::ErrorKind::invalid_argument, "expected scalar, avx2 or avx512, found '{}'", name);
      }
    } else if (arg == "--no-bandwidth") {
      options.bandwidth = false;
    } else {
      slm::fail(slm::ErrorKind::invalid_argument,
                "expected --runs N, --types LIST, --tokens LIST, --shapes LIST, --isa NAME or --no-bandwidth, found '{}'",
                arg);
    }
  }
  return options;
}

std::vector<uint8_t> random_weights(DType type, int64_t n, std::mt19937& rng) {
  std::normal_distribution<float> dist(0.0f, 0.02f);
  const size_t element = type == DType::F32 ? 4 : 2;
  std::vector<uint8_t> bytes(size_t(n) * element);
  for (int64_t i = 0; i < n; ++i) {
    const float v = dist(rng);
    if (type == DType::F32) {
      std::memcpy(bytes.data() + size_t(i) * 4, &v, 4);
    } else {
      const uint16_t h = type == DType::F16 ? slm::f32_to_f16(v) : slm::f32_to_bf16(v);
      std::memcpy(bytes.data() + size_t(i) * 2, &h, 2);
    }
  }
  return bytes;
}

struct Result {
  double seconds;  // median
  double best;     // fastest run
  double bytes;    // of weights
  double flops;
};

Result run(const Options& options, DType type, Shape shape, int64_t n_tokens, std::mt19937& rng) {
  const std::vector<uint8_t> w = random_weights(type, shape.n_out * shape.n_in, rng);
  std::vector<float> x(size_t(n_tokens * shape.n_in));
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (float& v : x) v = dist(rng);
  std::vector<float> y(size_t(n_tokens * shape.n_out));
  auto once = [&] {
    const auto start = std::chrono::steady_clock::now();
    slm::cpu::matmul_isa(options.isa, type, w.data(), shape.n_out, shape.n_in, x.data(), n_tokens, y.data());
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  const double first = once();  // warm-up (also pages the weights in)
  // Small cases get more runs so that the median is stable; long ones at most about 10 s in all.
  int runs = options.runs;
  if (first < 0.01) runs = std::max(runs, int(std::min(200.0, 0.5 / std::max(first, 1e-6))));
  if (first * runs > 10.0) runs = std::max(3, int(10.0 / first));
  std::vector<double> times;
  for (int i = 0; i < runs; ++i) times.push_back(once());
  std::sort(times.begin(), times.end());
  return {times[times.size() / 2], times.front(), double(w.size()), 2.0 * double(shape.n_out * shape.n_in * n_tokens)};
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options options = parse(argc, argv);
    std::printf("path %s, %d OpenMP threads\n", slm::cpu::isa_name(options.isa), omp_get_max_threads());
    double bandwidth = 0.0;
    if (options.bandwidth) {
      bandwidth = slm::cpu::measure_read_bandwidth(size_t(1) << 30, 5);
      std::printf("measured read bandwidth: %.2f GB/s\n", bandwidth / 1e9);
    }
    std::printf("\n%-6s %-14s %7s %10s %10s %10s %10s %8s\n", "type", "shape", "tokens", "median ms", "best ms", "GB/s",
                "GFLOP/s", "of bw");
    std::mt19937 rng(1234);
    std::map<std::pair<int64_t, int64_t>, double> layer_times;  // (n_out, n_in) -> seconds, per type/tokens
    for (DType type : options.types) {
      for (int64_t n_tokens : options.tokens) {
        layer_times.clear();
        for (const Shape& shape : options.shapes) {
          const Result r = run(options, type, shape, n_tokens, rng);
          layer_times[{shape.n_out, shape.n_in}] = r.seconds;
          const double gbps = r.bytes / r.seconds / 1e9;
          char shape_text[32];
          std::snprintf(shape_text, sizeof shape_text, "%ldx%ld", shape.n_out, shape.n_in);
          char ratio[16] = "-";
          if (bandwidth > 0.0 && n_tokens == 1) std::snprintf(ratio, sizeof ratio, "%.2f", r.bytes / r.seconds / bandwidth);
          std::printf("%-6s %-14s %7ld %10.4f %10.4f %10.2f %10.1f %8s\n", std::string(slm::dtype_name(type)).c_str(),
                      shape_text, n_tokens, r.seconds * 1e3, r.best * 1e3, gbps, r.flops / r.seconds / 1e9, ratio);
          std::fflush(stdout);
        }
        // The whole model's matrix products, when every shape they need was measured.
        double layer = 0.0;
        bool complete = true;
        for (const Shape& shape : kLayerShapes) {
          const auto it = layer_times.find({shape.n_out, shape.n_in});
          if (it == layer_times.end()) {
            complete = false;
            break;
          }
          layer += it->second;
        }
        if (complete && n_tokens > 1) {
          std::printf("  -> %s model matmuls at %ld tokens: %.1f tokens/s (output head excluded)\n",
                      std::string(slm::dtype_name(type)).c_str(), n_tokens, double(n_tokens) / (kLayers * layer));
        }
        const auto head = layer_times.find({kHead.n_out, kHead.n_in});
        if (complete && n_tokens == 1 && head != layer_times.end()) {
          std::printf("  -> %s model matmuls at 1 token: %.1f tokens/s (24 layers + output head)\n",
                      std::string(slm::dtype_name(type)).c_str(), 1.0 / (kLayers * layer + head->second));
        }
      }
    }
    return 0;
  } catch (const slm::Error& e) {
    std::fprintf(stderr, "bench_matmul: %s\n", e.what());
    return 1;
  }
}
