// Integer block kernels for every weight block format (matmul_quant), through every instruction-set path
// this machine has: against a float64 product with the dequantized weights (the formats' scalar
// definition), within the error of rounding the activations to 8-bit blocks.
//
// Bound: each activation block b of 32 is rounded with step d_b = max|x_b| / 127, so every value
// moves by at most d_b / 2 (plus f32 rounding of x / d_b, covered by the 1.01 factor). The
// product then moves by at most E = sum_b d_b / 2 * sum_{i in b} |w_i|; the f32 accumulation adds
// at most ~1e-5 * sum |w_i x_i|. Relative to sum |w_i x_i| this is about 1/254 for typical data.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "slm/backend/cpu/matmul.hpp"
#include "slm/backend/cpu/matmul_quant.hpp"
#include "slm/format/quant.hpp"
#include "slm/util/error.hpp"

namespace slm::cpu {
namespace {

std::vector<float> random_values(size_t n, std::mt19937& rng, float scale) {
  std::uniform_real_distribution<float> dist(-scale, scale);
  std::vector<float> v(n);
  for (float& x : v) {
    do x = dist(rng); while (x == 0.0f);
  }
  return v;
}

class QuantSimd : public ::testing::TestWithParam<DType> {};

std::vector<QuantPath> integer_paths(DType type) {
  std::vector<QuantPath> paths;
  for (const QuantPath p : quant_paths()) {
    if (quant_path_handles(p, type)) paths.push_back(p);
  }
  return paths;
}

TEST_P(QuantSimd, MatchesFloat64ProductWithinActivationRounding) {
  const DType type = GetParam();
  const auto paths = integer_paths(type);
  if (paths.empty()) GTEST_SKIP() << "no integer kernel for this type on this machine";
  std::mt19937 rng(29);
  const bool super = dtype_traits(type).block_size == 256;
  const std::vector<int64_t> sizes =
      super ? std::vector<int64_t>{256, 512, 2304} : std::vector<int64_t>{32, 96, 256, 896};
  for (const int64_t n_in : sizes) {
    for (const int64_t n_out : {1, 3, 7, 13, 37}) {
      for (const int64_t n_tokens : {1, 2, 3, 4, 5, 7, 9}) {
        const auto wf = random_values(size_t(n_out * n_in), rng, 0.05f);
        const size_t row_bytes = quantized_row_bytes(type, n_in);
        std::vector<uint8_t> w(size_t(n_out) * row_bytes);
        std::vector<float> wd(wf.size());
        for (int64_t o = 0; o < n_out; ++o) {
          quantize_row(type, wf.data() + o * n_in, w.data() + size_t(o) * row_bytes, n_in);
          dequantize_row(type, w.data() + size_t(o) * row_bytes, wd.data() + o * n_in, n_in);
        }
        // Activations with a different scale per block, as in real hidden states.
        auto x = random_values(size_t(n_tokens * n_in), rng, 1.0f);
        for (size_t i = 0; i < x.size(); ++i) x[i] *= float(1 + (i / 32) % 5);
        for (const QuantPath path : paths) {
        std::vector<float> y(size_t(n_tokens * n_out), std::numeric_limits<float>::quiet_NaN());
        matmul_quant_path(path, type, w.data(), n_out, n_in, x.data(), n_tokens, y.data());
        for (int64_t t = 0; t < n_tokens; ++t) {
          const float* xt = x.data() + t * n_in;
          for (int64_t o = 0; o < n_out; ++o) {
            const float* wo = wd.data() + o * n_in;
            double expected = 0.0, magnitude = 0.0, bound = 0.0;
            for (int64_t b = 0; b < n_in / 32; ++b) {
              double amax = 0.0, wsum = 0.0;
              for (int64_t i = b * 32; i < b * 32 + 32; ++i) {
                expected += double(wo[i]) * double(xt[i]);
                magnitude += std::fabs(double(wo[i]) * double(xt[i]));
                amax = std::max(amax, std::fabs(double(xt[i])));
                wsum += std::fabs(double(wo[i]));
              }
              bound += amax / 127.0 / 2.0 * wsum;
            }
            const double tol = 1.01 * bound + 1e-5 * magnitude;
            const float got = y[size_t(t * n_out + o)];
            ASSERT_TRUE(std::isfinite(got)) << "token " << t << " row " << o;
            ASSERT_NEAR(got, expected, tol) << dtype_name(type) << " path " << quant_path_name(path) << " n_in "
                                            << n_in << " n_out " << n_out << " tokens " << n_tokens << " token " << t
                                            << " row " << o;
            // The bound is not vacuous: it is a small fraction of the product's magnitude.
            ASSERT_LT(tol, 0.02 * magnitude);
          }
        }
        }
      }
    }
  }
}

TEST_P(QuantSimd, MatmulAgreesWithMatmulQuantAndRejectsPartialBlocks) {
  const DType type = GetParam();
  std::mt19937 rng(31);
  const int64_t n_out = 5, n_in = 512, n_tokens = 2;
  const auto wf = random_values(size_t(n_out * n_in), rng, 0.1f);
  const size_t row_bytes = quantized_row_bytes(type, n_in);
  std::vector<uint8_t> w(size_t(n_out) * row_bytes);
  for (int64_t o = 0; o < n_out; ++o) {
    quantize_row(type, wf.data() + o * n_in, w.data() + size_t(o) * row_bytes, n_in);
  }
  const auto x = random_values(size_t(n_tokens * n_in), rng, 1.0f);
  std::vector<float> a(size_t(n_out * n_tokens), std::nanf("")), b(a.size(), std::nanf(""));
  matmul(type, w.data(), n_out, n_in, x.data(), n_tokens, a.data());
  matmul_quant(type, w.data(), n_out, n_in, x.data(), n_tokens, b.data());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_TRUE(std::isfinite(a[i]));
    EXPECT_EQ(a[i], b[i]) << i;
  }
  EXPECT_THROW(matmul_quant(type, w.data(), n_out, 48, x.data(), n_tokens, b.data()), Error);
  EXPECT_THROW(matmul_quant(type, w.data(), n_out, 500, x.data(), n_tokens, b.data()), Error);
}

// The paths agree with one another to f32 rounding (same rounded activations, same integer sums).
TEST_P(QuantSimd, PathsAgree) {
  const DType type = GetParam();
  const auto paths = integer_paths(type);
  if (paths.size() < 2) GTEST_SKIP() << "fewer than two integer paths on this machine";
  std::mt19937 rng(37);
  const int64_t n_out = 19, n_in = 768, n_tokens = 6;
  const auto wf = random_values(size_t(n_out * n_in), rng, 0.1f);
  const size_t row_bytes = quantized_row_bytes(type, n_in);
  std::vector<uint8_t> w(size_t(n_out) * row_bytes);
  for (int64_t o = 0; o < n_out; ++o) quantize_row(type, wf.data() + o * n_in, w.data() + size_t(o) * row_bytes, n_in);
  const auto x = random_values(size_t(n_tokens * n_in), rng, 1.0f);
  std::vector<float> first(size_t(n_out * n_tokens), std::nanf(""));
  matmul_quant_path(paths[0], type, w.data(), n_out, n_in, x.data(), n_tokens, first.data());
  for (size_t p = 1; p < paths.size(); ++p) {
    std::vector<float> other(first.size(), std::nanf(""));
    matmul_quant_path(paths[p], type, w.data(), n_out, n_in, x.data(), n_tokens, other.data());
    for (size_t i = 0; i < first.size(); ++i) {
      ASSERT_TRUE(std::isfinite(other[i]));
      EXPECT_NEAR(other[i], first[i], 1e-5f * (1.0f + std::fabs(first[i]))) << quant_path_name(paths[p]) << " " << i;
    }
  }
}

// One token (the generation kernel on the packed blocks) against the same token inside a batch of
// five (the decode-and-multiply kernel): the same rounded activations and integer sums, so the two
// agree to f32 rounding. Many rows, so threads take several chunks of tiles and prefetch ahead; an
// odd number of 32-element units leaves a single unit after the pairs.
TEST_P(QuantSimd, OneTokenAgreesWithBatchedToken) {
  const DType type = GetParam();
  const auto paths = integer_paths(type);
  if (paths.empty()) GTEST_SKIP() << "no integer kernel for this type on this machine";
  std::mt19937 rng(41);
  const bool super = dtype_traits(type).block_size == 256;
  const int64_t n_out = 517, n_in = super ? 768 : 608, n_tokens = 5;
  const auto wf = random_values(size_t(n_out * n_in), rng, 0.1f);
  const size_t row_bytes = quantized_row_bytes(type, n_in);
  std::vector<uint8_t> w(size_t(n_out) * row_bytes);
  for (int64_t o = 0; o < n_out; ++o) quantize_row(type, wf.data() + o * n_in, w.data() + size_t(o) * row_bytes, n_in);
  const auto x = random_values(size_t(n_tokens * n_in), rng, 1.0f);
  for (const QuantPath path : paths) {
    std::vector<float> batch(size_t(n_out * n_tokens), std::nanf("")), one(size_t(n_out), std::nanf(""));
    matmul_quant_path(path, type, w.data(), n_out, n_in, x.data(), n_tokens, batch.data());
    for (int64_t t = 0; t < n_tokens; t += 2) {
      matmul_quant_path(path, type, w.data(), n_out, n_in, x.data() + t * n_in, 1, one.data());
      for (int64_t o = 0; o < n_out; ++o) {
        const float expected = batch[size_t(t * n_out + o)];
        ASSERT_TRUE(std::isfinite(one[size_t(o)])) << quant_path_name(path) << " row " << o;
        ASSERT_NEAR(one[size_t(o)], expected, 2e-5f * (1.0f + std::fabs(expected)))
            << dtype_name(type) << " " << quant_path_name(path) << " token " << t << " row " << o;
      }
    }
  }
}

TEST(QuantSimdPaths, UnsupportedRequestsThrow) {
  const int64_t n_in = 256;
  std::vector<uint8_t> w(quantized_row_bytes(DType::Q8_K, n_in), 1);
  std::vector<float> x(n_in, 0.5f), y(1);
  for (const QuantPath p : quant_paths()) {
    if (p == QuantPath::reference) continue;
    EXPECT_FALSE(quant_path_handles(p, DType::Q8_K));
    EXPECT_THROW(matmul_quant_path(p, DType::Q8_K, w.data(), 1, n_in, x.data(), 1, y.data()), Error);
  }
  EXPECT_EQ(quant_paths().front(), QuantPath::reference);
}

INSTANTIATE_TEST_SUITE_P(Formats, QuantSimd,
                         ::testing::Values(DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1,
                                           DType::IQ4_NL, DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K,
                                           DType::Q6_K, DType::IQ4_XS),
                         [](const ::testing::TestParamInfo<DType>& info) { return std::string(dtype_name(info.param)); });

}  // namespace
}  // namespace slm::cpu
