#include "slm/backend/cpu/ops.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#define SLM_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

namespace slm::cpu {

namespace {

SLM_CLONES float dot(const float* a, const float* b, int64_t n) {
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

SLM_CLONES void axpy(float* y, float a, const float* x, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

SLM_CLONES void rms_norm_row(const float* x, const float* weight, float* y, int64_t n, float eps) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += double(x[i]) * double(x[i]);
  const float inv = float(1.0 / std::sqrt(sum / double(n) + double(eps)));
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * inv * weight[i];
}

}  // namespace

void rms_norm(const float* x, const float* weight, float* y, int64_t n_rows, int64_t n, float eps) {
#pragma omp parallel for if (n_rows > 4)
  for (int64_t t = 0; t < n_rows; ++t) rms_norm_row(x + t * n, weight, y + t * n, n, eps);
}

void add_bias(float* x, const float* bias, int64_t n_rows, int64_t n) {
  for (int64_t t = 0; t < n_rows; ++t) axpy(x + t * n, 1.0f, bias, n);
}

void add(float* x, const float* y, int64_t n) { axpy(x, 1.0f, y, n); }

SLM_CLONES void silu_mul(float* gate, const float* up, int64_t n) {
#pragma omp parallel for simd if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    gate[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void rope(float* x, int64_t n_rows, int64_t n_heads, int64_t head_dim, int64_t rope_dim, const int32_t* positions,
          const float* inv_freq, bool interleaved) {
  const int64_t half = rope_dim / 2;
#pragma omp parallel for if (n_rows > 4)
  for (int64_t t = 0; t < n_rows; ++t) {
    std::vector<float> cos_v(static_cast<size_t>(half)), sin_v(static_cast<size_t>(half));
    for (int64_t i = 0; i < half; ++i) {
      const double angle = double(positions[t]) * double(inv_freq[i]);
      cos_v[size_t(i)] = float(std::cos(angle));
      sin_v[size_t(i)] = float(std::sin(angle));
    }
    for (int64_t h = 0; h < n_heads; ++h) {
      float* v = x + (t * n_heads + h) * head_dim;
      for (int64_t i = 0; i < half; ++i) {
        const int64_t a = interleaved ? 2 * i : i;
        const int64_t b = interleaved ? 2 * i + 1 : i + half;
        const float x0 = v[a], x1 = v[b];
        v[a] = x0 * cos_v[size_t(i)] - x1 * sin_v[size_t(i)];
        v[b] = x0 * sin_v[size_t(i)] + x1 * cos_v[size_t(i)];
      }
    }
  }
}

void attention(const float* q, const float* k_cache, const float* v_cache, int64_t kv_stride, const int32_t* positions,
               int64_t n_rows, const AttentionShape& s, float* out) {
  const int64_t group = s.n_heads / s.n_kv_heads;
  const int64_t hd = s.head_dim;
#pragma omp parallel
  {
    std::vector<float> scores;
#pragma omp for collapse(2) schedule(dynamic, 1)
    for (int64_t t = 0; t < n_rows; ++t) {
      for (int64_t h = 0; h < s.n_heads; ++h) {
        const int64_t pos = positions[t];
        const int64_t start = s.sliding_window > 0 ? std::max<int64_t>(0, pos - s.sliding_window + 1) : 0;
        const int64_t n_keys = pos - start + 1;
        const int64_t kvh = h / group;
        const float* qv = q + (t * s.n_heads + h) * hd;
        scores.resize(size_t(n_keys));
        float max_score = -INFINITY;
        for (int64_t j = 0; j < n_keys; ++j) {
          const float sc = dot(qv, k_cache + (start + j) * kv_stride + kvh * hd, hd) * s.scale;
          scores[size_t(j)] = sc;
          max_score = std::max(max_score, sc);
        }
        double sum = 0.0;
        for (int64_t j = 0; j < n_keys; ++j) {
          const float e = std::exp(scores[size_t(j)] - max_score);
          scores[size_t(j)] = e;
          sum += e;
        }
        const float inv = float(1.0 / sum);
        float* o = out + (t * s.n_heads + h) * hd;
        std::fill(o, o + hd, 0.0f);
        for (int64_t j = 0; j < n_keys; ++j) axpy(o, scores[size_t(j)] * inv, v_cache + (start + j) * kv_stride + kvh * hd, hd);
      }
    }
  }
}

void log_softmax(const float* x, float* out, int64_t n) {
  float max_v = -INFINITY;
  for (int64_t i = 0; i < n; ++i) max_v = std::max(max_v, x[i]);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(double(x[i]) - double(max_v));
  const float log_z = float(double(max_v) + std::log(sum));
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] - log_z;
}

}  // namespace slm::cpu
