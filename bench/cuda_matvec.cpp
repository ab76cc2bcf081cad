// One-token matrix-vector products on the GPU at the shapes of real models: for each weight format
// (block formats twice: activations in f32, and rounded to 8 bits for the integer kernels, whose
// rounding is timed apart as it serves every matrix that reads the same vector), the median time of a product (CUDA events around a CUDA graph of many products, weights rotated
// over copies larger than the L2 cache so that every product reads its weights from device memory)
// and the weight bytes read per second, against the device-to-device copy bandwidth (bytes read plus
// bytes written) measured first.
//
//   cuda_matvec [--repeats 30]
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "slm/backend/cuda/cuda.hpp"
#include "slm/format/quant.hpp"
#include "slm/util/error.hpp"

namespace {

using namespace slm;

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) fail(ErrorKind::internal, "{}: {}", what, cudaGetErrorString(status));
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Median seconds of one call of `work` (launched `batch` times per timed graph replay).
template <typename Work>
double time_graph(cudaStream_t stream, int batch, int repeats, Work&& work) {
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  check(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal), "begin capture");
  for (int i = 0; i < batch; ++i) work(i);
  check(cudaStreamEndCapture(stream, &graph), "end capture");
  check(cudaGraphInstantiate(&exec, graph, 0), "instantiate");
  cudaEvent_t start, stop;
  check(cudaEventCreate(&start), "event");
  check(cudaEventCreate(&stop), "event");
  for (int i = 0; i < 3; ++i) check(cudaGraphLaunch(exec, stream), "warm-up");
  std::vector<double> times;
  for (int r = 0; r < repeats; ++r) {
    check(cudaEventRecord(start, stream), "record");
    check(cudaGraphLaunch(exec, stream), "launch");
    check(cudaEventRecord(stop, stream), "record");
    check(cudaEventSynchronize(stop), "sync");
    float ms = 0.0f;
    check(cudaEventElapsedTime(&ms, start, stop), "elapsed");
    times.push_back(double(ms) * 1e-3 / batch);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  return median(times);
}

double copy_bandwidth(cudaStream_t stream, int repeats) {
  const size_t bytes = size_t(1) << 30;
  cuda::DeviceBuffer a(bytes), b(bytes);
  a.fill_bytes(0x3c);
  cudaEvent_t start, stop;
  check(cudaEventCreate(&start), "event");
  check(cudaEventCreate(&stop), "event");
  std::vector<double> rates;
  for (int r = 0; r < repeats + 2; ++r) {
    check(cudaEventRecord(start, stream), "record");
    check(cudaMemcpyAsync(b.data(), a.data(), bytes, cudaMemcpyDeviceToDevice, stream), "copy");
    check(cudaEventRecord(stop, stream), "record");
    check(cudaEventSynchronize(stop), "sync");
    float ms = 0.0f;
    check(cudaEventElapsedTime(&ms, start, stop), "elapsed");
    if (r >= 2) rates.push_back(2.0 * double(bytes) / (double(ms) * 1e-3));
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return median(rates);
}

struct Shape {
  const char* model;
  const char* matrix;
  int64_t n_out;
  int64_t n_in;
};

// Rows of `type` from random values: kDistinct rows quantized, then repeated over n_out rows.
std::vector<uint8_t> random_rows(DType type, int64_t n_out, int64_t n_in) {
  constexpr int64_t kDistinct = 32;
  std::mt19937 rng(1234);
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

int run(int argc, char** argv) {
  int repeats = 30;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--repeats") == 0 && i + 1 < argc) {
      repeats = std::max(3, std::atoi(argv[++i]));
    } else {
      std::fprintf(stderr, "usage: cuda_matvec [--repeats N]\n");
      return 2;
    }
  }
  if (!cuda::cuda_available()) {
    std::fprintf(stderr, "cuda_matvec: no CUDA device found\n");
    return 1;
  }
  const cuda::DeviceInfo info = cuda::device_info();
  cudaStream_t stream;
  check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "stream");
  const double copy = copy_bandwidth(stream, repeats);
  std::printf("device: %s, %d SMs, %.1f GiB, L2 %.0f MiB\n", info.name.c_str(), info.multiprocessors,
              double(info.global_memory) / double(1 << 30), double(info.l2_bytes) / double(1 << 20));
  std::printf("device-to-device copy: %.0f GB/s (bytes read + written, 1 GiB, median of %d)\n\n", copy * 1e-9,
              repeats);

  const Shape shapes[] = {
      {"Qwen2.5-1.5B", "attn_q/o", 1536, 1536},  {"Qwen2.5-1.5B", "ffn_gate/up", 8960, 1536},
      {"Qwen2.5-1.5B", "ffn_down", 1536, 8960},  {"Qwen2.5-1.5B", "output", 151936, 1536},
      {"Llama-3.2-3B", "attn_q/o", 3072, 3072},  {"Llama-3.2-3B", "ffn_gate/up", 8192, 3072},
      {"Llama-3.2-3B", "ffn_down", 3072, 8192},  {"Llama-3.2-3B", "output", 128256, 3072},
  };
  const DType types[] = {DType::F16, DType::BF16, DType::Q8_0, DType::Q6_K, DType::Q4_K, DType::Q4_0};
  std::printf("%-13s %-12s %-13s %-5s %-4s %9s %9s %9s %7s\n", "model", "matrix", "n_out x n_in", "type", "x",
              "MB", "us", "GB/s", "% copy");
  const size_t rotate_bytes = std::max<size_t>(size_t(256) << 20, 4 * info.l2_bytes);
  for (const Shape& s : shapes) {
    for (const DType type : types) {
      const auto rows = random_rows(type, s.n_out, s.n_in);
      const int copies = int(std::clamp<size_t>(rotate_bytes / rows.size() + 1, 1, 64));
      std::vector<cuda::DeviceMatrix> weights;
      for (int c = 0; c < copies; ++c) weights.push_back(cuda::upload_matrix(type, rows.data(), s.n_out, s.n_in));
      std::vector<float> x_host(size_t(s.n_in));
      std::mt19937 rng(7);
      std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
      for (auto& v : x_host) v = dist(rng);
      cuda::DeviceBuffer x(x_host.size() * 4), y(size_t(s.n_out) * 4);
      x.upload(x_host.data(), x_host.size() * 4);
      cuda::QuantizedVector xq(s.n_in);
      xq.quantize(x.as<float>(), s.n_in, stream);
      const int batch = std::max(copies, 64 / copies * copies);
      char dims[32];
      std::snprintf(dims, sizeof dims, "%lldx%lld", (long long)s.n_out, (long long)s.n_in);
      const auto report = [&](const char* path, double seconds) {
        const double rate = double(rows.size()) / seconds;
        std::printf("%-13s %-12s %-13s %-5s %-4s %9.2f %9.2f %9.0f %6.1f%%\n", s.model, s.matrix, dims,
                    std::string(dtype_name(type)).c_str(), path, double(rows.size()) * 1e-6, seconds * 1e6,
                    rate * 1e-9, 100.0 * rate / copy);
      };
      report("f32", time_graph(stream, batch, repeats, [&](int i) {
               cuda::matvec(weights[size_t(i % copies)], x.as<float>(), y.as<float>(), stream);
             }));
      if (cuda::matvec_quantized_supported(type)) {
        report("int8", time_graph(stream, batch, repeats, [&](int i) {
                 cuda::matvec(weights[size_t(i % copies)], xq, y.as<float>(), stream);
               }));
      }
      cuda::synchronize();
    }
  }
  for (const int64_t n : {int64_t(1536), int64_t(3072), int64_t(8960)}) {
    cuda::DeviceBuffer x(size_t(n) * 4);
    x.fill_bytes(0x3c);
    cuda::QuantizedVector xq(n);
    const double seconds = time_graph(stream, 64, repeats, [&](int) { xq.quantize(x.as<float>(), n, stream); });
    std::printf("rounding %lld activations to 8 bits: %.2f us\n", (long long)n, seconds * 1e6);
  }
  cudaStreamDestroy(stream);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cuda_matvec: %s\n", e.what());
    return 1;
  }
}
