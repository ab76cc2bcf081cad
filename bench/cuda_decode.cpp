// Generation speed of the prototype GPU decode step (LlamaDecoder) at the shapes of real models with
// random weights: tokens/s of one stream over 128 steps (tg128, after 8 warm-up steps), and the weight
// bytes one token reads over the time per token, against the device-to-device copy bandwidth.
// Each step is launched from the host and synchronised (no graph yet): the gap to the bandwidth is the
// launch and host overhead the engine integration has to remove.
//
//   cuda_decode [--tokens 128]
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "slm/backend/cuda/cuda.hpp"
#include "slm/backend/cuda/decoder.hpp"
#include "slm/format/quant.hpp"
#include "slm/util/error.hpp"

namespace {

using namespace slm;

struct Shape {
  const char* name;
  int64_t dim, n_layers, n_heads, n_kv_heads, head_dim, ffn_dim, vocab_size;
  bool qkv_bias;
};

// n_out rows of `type`: 32 distinct random rows repeated.
std::vector<uint8_t> random_rows(DType type, int64_t n_out, int64_t n_in, uint32_t seed) {
  constexpr int64_t kDistinct = 32;
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 0.02f);
  const size_t row_bytes = quantized_row_bytes(type, n_in);
  std::vector<uint8_t> distinct(row_bytes * kDistinct);
  std::vector<float> row(static_cast<size_t>(n_in));
  for (int64_t r = 0; r < kDistinct; ++r) {
    for (auto& v : row) v = dist(rng);
    quantize_row(type, row.data(), distinct.data() + size_t(r) * row_bytes, n_in);
  }
  std::vector<uint8_t> rows(row_bytes * size_t(n_out));
  for (int64_t r = 0; r < n_out; ++r) {
    std::memcpy(rows.data() + size_t(r) * row_bytes, distinct.data() + size_t(r % kDistinct) * row_bytes, row_bytes);
  }
  return rows;
}

double copy_bandwidth() {
  const size_t bytes = size_t(1) << 30;
  cuda::DeviceBuffer a(bytes), b(bytes);
  a.fill_bytes(0x3c);
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  std::vector<float> ms(12);
  for (auto& m : ms) {
    cudaEventRecord(start);
    cudaMemcpy(b.data(), a.data(), bytes, cudaMemcpyDeviceToDevice);
    cudaEventRecord(stop);
    cudaEventSynchronize(stop);
    cudaEventElapsedTime(&m, start, stop);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(ms.begin(), ms.end());
  return 2.0 * double(bytes) / (double(ms[ms.size() / 2]) * 1e-3);
}

int run(int argc, char** argv) {
  int tokens = 128;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--tokens") == 0 && i + 1 < argc) {
      tokens = std::max(8, std::atoi(argv[++i]));
    } else {
      std::fprintf(stderr, "usage: cuda_decode [--tokens N]\n");
      return 2;
    }
  }
  if (!cuda::cuda_available()) {
    std::fprintf(stderr, "cuda_decode: no CUDA device found\n");
    return 1;
  }
  const double copy = copy_bandwidth();
  std::printf("device: %s; device-to-device copy %.0f GB/s\n\n", cuda::device_info().name.c_str(), copy * 1e-9);
  const Shape shapes[] = {{"Qwen2.5-1.5B", 1536, 28, 12, 2, 128, 8960, 151936, true},
                          {"Llama-3.2-3B", 3072, 28, 24, 8, 128, 8192, 128256, false}};
  const DType types[] = {DType::F16, DType::Q8_0, DType::Q6_K, DType::Q4_K, DType::Q4_0};
  std::printf("%-13s %-5s %10s %10s %10s %9s %7s\n", "model", "type", "MB/token", "ms/token", "tokens/s", "GB/s",
              "% copy");
  for (const Shape& s : shapes) {
    const int64_t q_dim = s.n_heads * s.head_dim, kv_dim = s.n_kv_heads * s.head_dim;
    cuda::DecoderConfig config;
    config.dim = s.dim;
    config.n_layers = s.n_layers;
    config.n_heads = s.n_heads;
    config.n_kv_heads = s.n_kv_heads;
    config.head_dim = s.head_dim;
    config.ffn_dim = s.ffn_dim;
    config.vocab_size = s.vocab_size;
    config.max_positions = 1024;
    config.kv_type = DType::F16;
    for (int64_t i = 0; i < s.head_dim / 2; ++i) {
      config.inv_freq.push_back(float(std::pow(1000000.0, -double(2 * i) / double(s.head_dim))));
    }
    std::vector<float> norm(size_t(std::max(s.dim, s.ffn_dim)), 1.0f), bias(size_t(q_dim), 0.01f);
    for (const DType type : types) {
      const auto wq = random_rows(type, q_dim, s.dim, 1), wk = random_rows(type, kv_dim, s.dim, 2);
      const auto wo = random_rows(type, s.dim, q_dim, 3), gate = random_rows(type, s.ffn_dim, s.dim, 4);
      const auto down = random_rows(type, s.dim, s.ffn_dim, 5), embd = random_rows(type, s.vocab_size, s.dim, 6);
      cuda::DecoderWeights weights;
      weights.token_embd = {type, s.vocab_size, s.dim, embd.data()};
      weights.output = weights.token_embd;
      weights.output_norm = norm.data();
      cuda::DecoderLayerWeights layer;
      layer.attn_norm = layer.ffn_norm = norm.data();
      layer.wq = {type, q_dim, s.dim, wq.data()};
      layer.wk = layer.wv = {type, kv_dim, s.dim, wk.data()};
      layer.wo = {type, s.dim, q_dim, wo.data()};
      layer.w_gate = layer.w_up = {type, s.ffn_dim, s.dim, gate.data()};
      layer.w_down = {type, s.dim, s.ffn_dim, down.data()};
      if (s.qkv_bias) layer.bq = layer.bk = layer.bv = bias.data();
      weights.layers.assign(size_t(s.n_layers), layer);
      const double bytes = double(s.n_layers) * double(wq.size() + 2 * wk.size() + wo.size() + 2 * gate.size() +
                                                       down.size()) +
                           double(embd.size());
      cuda::LlamaDecoder decoder(config, weights);
      int32_t token = 1;
      for (int32_t p = 0; p < 8; ++p) token = decoder.step(token, p);
      const auto start = std::chrono::steady_clock::now();
      for (int32_t p = 8; p < 8 + tokens; ++p) token = decoder.step(token % int32_t(s.vocab_size), p);
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / double(tokens);
      std::printf("%-13s %-5s %10.1f %10.3f %10.1f %9.0f %6.1f%%\n", s.name, std::string(dtype_name(type)).c_str(),
                  bytes * 1e-6, seconds * 1e3, 1.0 / seconds, bytes / seconds * 1e-9, 100.0 * bytes / seconds / copy);
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cuda_decode: %s\n", e.what());
    return 1;
  }
}
