// Element-wise ops and attention against straightforward float64 references on random inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "slm/backend/cpu/ops.hpp"

using namespace slm::cpu;

namespace {

std::vector<float> random_vector(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<double>& b) {
  double m = 0.0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(double(a[i]) - b[i]));
  return m;
}

TEST(Ops, RmsNormMatchesReference) {
  const int64_t rows = 5, n = 67;
  auto x = random_vector(size_t(rows * n), 1);
  auto w = random_vector(size_t(n), 2, 0.5f, 1.5f);
  std::vector<float> y(x.size(), NAN);
  rms_norm(x.data(), w.data(), y.data(), rows, n, 1e-6f);
  std::vector<double> ref(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int64_t i = 0; i < n; ++i) ss += double(x[r * n + i]) * x[r * n + i];
    const double inv = 1.0 / std::sqrt(ss / n + 1e-6);
    for (int64_t i = 0; i < n; ++i) ref[r * n + i] = x[r * n + i] * inv * w[i];
  }
  EXPECT_LT(max_abs_diff(y, ref), 1e-5);
}

TEST(Ops, SiluMulMatchesReference) {
  auto g = random_vector(1000, 3, -6, 6);
  auto u = random_vector(1000, 4);
  std::vector<double> ref(g.size());
  for (size_t i = 0; i < g.size(); ++i) ref[i] = g[i] / (1.0 + std::exp(-double(g[i]))) * u[i];
  silu_mul(g.data(), u.data(), int64_t(g.size()));
  EXPECT_LT(max_abs_diff(g, ref), 1e-5);
}

TEST(Ops, RopeNeoxMatchesReference) {
  const int64_t rows = 3, heads = 2, hd = 16, half = hd / 2;
  auto x = random_vector(size_t(rows * heads * hd), 5);
  const auto original = x;
  std::vector<float> inv_freq(half);
  for (int64_t i = 0; i < half; ++i) inv_freq[i] = std::pow(10000.0f, -float(2 * i) / hd);
  std::vector<int32_t> pos = {0, 7, 1000};
  rope(x.data(), rows, heads, hd, hd, pos.data(), inv_freq.data(), false);
  std::vector<double> ref(x.size());
  for (int64_t t = 0; t < rows; ++t)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < half; ++i) {
        const size_t base = size_t((t * heads + h) * hd);
        const double a = pos[t] * double(inv_freq[i]);
        const double x0 = original[base + i], x1 = original[base + i + half];
        ref[base + i] = x0 * std::cos(a) - x1 * std::sin(a);
        ref[base + i + half] = x0 * std::sin(a) + x1 * std::cos(a);
      }
  EXPECT_LT(max_abs_diff(x, ref), 1e-5);
}

TEST(Ops, RopeInterleavedOnPermutedRowsEqualsNeox) {
  // The GGUF llama layout: pair (2i, 2i+1) after permutation holds what (i, i + half) held.
  const int64_t hd = 32, half = hd / 2;
  auto x = random_vector(size_t(hd), 6);
  std::vector<float> permuted(hd);
  for (int64_t i = 0; i < half; ++i) {
    permuted[2 * i] = x[i];
    permuted[2 * i + 1] = x[i + half];
  }
  std::vector<float> inv_freq(half);
  for (int64_t i = 0; i < half; ++i) inv_freq[i] = std::pow(500000.0f, -float(2 * i) / hd);
  const int32_t pos = 123;
  rope(x.data(), 1, 1, hd, hd, &pos, inv_freq.data(), false);
  rope(permuted.data(), 1, 1, hd, hd, &pos, inv_freq.data(), true);
  for (int64_t i = 0; i < half; ++i) {
    EXPECT_NEAR(permuted[2 * i], x[i], 1e-6);
    EXPECT_NEAR(permuted[2 * i + 1], x[i + half], 1e-6);
  }
}

// Attention with GQA, positions after a cached prefix, and optionally a sliding window.
void check_attention(int64_t window, int64_t rows) {
  const int64_t heads = 6, kv_heads = 2, hd = 24, n_cache = 30;
  const int64_t kv_stride = kv_heads * hd;
  auto q = random_vector(size_t(rows * heads * hd), 7, -2, 2);
  auto k = random_vector(size_t(n_cache * kv_stride), 8, -2, 2);
  auto v = random_vector(size_t(n_cache * kv_stride), 9);
  std::vector<int32_t> pos;
  for (int64_t t = 0; t < rows; ++t) pos.push_back(int32_t(n_cache - rows + t));
  AttentionShape s{heads, kv_heads, hd, window, 1.0f / std::sqrt(float(hd))};
  std::vector<float> out(size_t(rows * heads * hd), NAN);
  attention(q.data(), k.data(), v.data(), kv_stride, pos.data(), rows, s, out.data());
  std::vector<double> ref(out.size(), 0.0);
  for (int64_t t = 0; t < rows; ++t)
    for (int64_t h = 0; h < heads; ++h) {
      const int64_t kvh = h / (heads / kv_heads);
      std::vector<double> sc;
      std::vector<int64_t> keys;
      for (int64_t j = 0; j <= pos[t]; ++j) {
        if (window > 0 && pos[t] - j >= window) continue;
        double d = 0;
        for (int64_t i = 0; i < hd; ++i) d += double(q[(t * heads + h) * hd + i]) * k[j * kv_stride + kvh * hd + i];
        sc.push_back(d / std::sqrt(double(hd)));
        keys.push_back(j);
      }
      double mx = *std::max_element(sc.begin(), sc.end()), sum = 0;
      for (auto& e : sc) sum += (e = std::exp(e - mx));
      for (size_t m = 0; m < keys.size(); ++m)
        for (int64_t i = 0; i < hd; ++i)
          ref[(t * heads + h) * hd + i] += sc[m] / sum * v[keys[m] * kv_stride + kvh * hd + i];
    }
  EXPECT_LT(max_abs_diff(out, ref), 1e-5) << "window " << window;
}

// Few rows take the per-query path, many rows the matrix-product path.
TEST(Ops, AttentionMatchesReference) {
  check_attention(0, 4);
  check_attention(0, 24);
}
TEST(Ops, SlidingWindowAttentionMatchesReference) {
  check_attention(5, 4);
  check_attention(5, 24);
}

TEST(Ops, LogSoftmaxSumsToOne) {
  auto x = random_vector(5000, 10, -30, 30);
  std::vector<float> y(x.size());
  log_softmax(x.data(), y.data(), int64_t(x.size()));
  double sum = 0;
  for (float v : y) sum += std::exp(double(v));
  EXPECT_NEAR(sum, 1.0, 1e-5);
  EXPECT_NEAR(y[0] - y[1], x[0] - x[1], 1e-4);
}

}  // namespace
