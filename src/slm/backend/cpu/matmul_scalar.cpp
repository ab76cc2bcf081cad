// The portable path: plain C++ for CPUs without AVX2 (and the reference the other paths are tested
// against). Dot products keep eight partial sums, so the compiler can use whatever vector unit the
// baseline has and the rounding stays close to the vector paths.
#include <omp.h>

#include <algorithm>
#include <cstring>

#include "slm/backend/cpu/matmul_kernels.hpp"
#include "slm/util/fp16.hpp"

namespace slm::cpu::kernels {
namespace {

constexpr int64_t kRowBlock = 8;  // weight rows converted to f32 together (n_tokens > 1)

void convert_row(WeightType type, const void* src, float* dst, int64_t n) {
  switch (type) {
    case WeightType::f32:
      std::memcpy(dst, src, size_t(n) * sizeof(float));
      break;
    case WeightType::f16: {
      const auto* h = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(h[i]);
      break;
    }
    case WeightType::bf16: {
      const auto* h = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(h[i]);
      break;
    }
  }
}

size_t element_bytes(WeightType type) { return type == WeightType::f32 ? 4 : 2; }

float dot(const float* a, const float* b, int64_t n) {
  float partial[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int j = 0; j < 8; ++j) partial[j] += a[i + j] * b[i + j];
  }
  for (int j = 0; i < n; ++i, ++j) partial[j] += a[i] * b[i];
  return ((partial[0] + partial[4]) + (partial[1] + partial[5])) + ((partial[2] + partial[6]) + (partial[3] + partial[7]));
}

// The range [begin, end) of `count` items that thread `thread` of `threads` takes, in multiples of `unit`.
void thread_range(int64_t count, int64_t unit, int thread, int threads, int64_t* begin, int64_t* end) {
  const int64_t units = (count + unit - 1) / unit;
  *begin = std::min(count, units * thread / threads * unit);
  *end = std::min(count, units * (thread + 1) / threads * unit);
}

}  // namespace

size_t scratch_floats_scalar(int64_t n_out, int64_t n_in, int64_t n_tokens, int n_threads) {
  return size_t(n_threads) * size_t(kRowBlock) * size_t(n_in);
}

void matmul_scalar(const MatmulTask& task) {
  const int64_t n_in = task.n_in;
  const size_t row_bytes = size_t(n_in) * element_bytes(task.w_type);
  const auto* w = static_cast<const uint8_t*>(task.w);
  const bool parallel = task.n_out * n_in * task.n_tokens >= 32768;
#pragma omp parallel num_threads(task.n_threads) if (parallel)
  {
    const int thread = omp_get_thread_num();
    int64_t begin = 0, end = 0;
    thread_range(task.n_out, kRowBlock, thread, omp_get_num_threads(), &begin, &end);
    float* rows = task.scratch + size_t(thread) * size_t(kRowBlock) * size_t(n_in);
    for (int64_t o0 = begin; o0 < end; o0 += kRowBlock) {
      const int64_t n_rows = std::min(kRowBlock, end - o0);
      for (int64_t r = 0; r < n_rows; ++r) convert_row(task.w_type, w + size_t(o0 + r) * row_bytes, rows + r * n_in, n_in);
      for (int64_t t = 0; t < task.n_tokens; ++t) {
        const float* x = task.x + t * n_in;
        float* y = task.y + t * task.n_out + o0;
        for (int64_t r = 0; r < n_rows; ++r) y[r] = dot(rows + r * n_in, x, n_in);
      }
    }
  }
}

void to_f32_scalar(WeightType type, const void* src, float* dst, int64_t n) { convert_row(type, src, dst, n); }

float stream_sum_scalar(const float* data, size_t n) {
  float partial[8] = {};
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int j = 0; j < 8; ++j) partial[j] += data[i + j];
  }
  for (int j = 0; i < n; ++i, ++j) partial[j] += data[i];
  float total = 0.0f;
  for (float p : partial) total += p;
  return total;
}

}  // namespace slm::cpu::kernels
