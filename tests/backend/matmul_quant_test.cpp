// Block-quantized weights through matmul() and to_f32(): the products equal a float64 product with
// the dequantized weights, on every instruction-set path the machine has.
#include <gtest/gtest.h>

#include <cmath>
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

struct Quantized {
  std::vector<uint8_t> bytes;
  std::vector<float> values;  // dequantized, [n_out][n_in]
};

Quantized quantize_matrix(DType type, int64_t n_out, int64_t n_in, std::mt19937& rng) {
  const auto w = random_values(size_t(n_out * n_in), rng, 0.05f);
  const size_t row_bytes = quantized_row_bytes(type, n_in);
  Quantized q{std::vector<uint8_t>(size_t(n_out) * row_bytes), std::vector<float>(w.size())};
  for (int64_t o = 0; o < n_out; ++o) {
    quantize_row(type, w.data() + o * n_in, q.bytes.data() + size_t(o) * row_bytes, n_in);
    dequantize_row(type, q.bytes.data() + size_t(o) * row_bytes, q.values.data() + o * n_in, n_in);
  }
  return q;
}

const DType kTypes[] = {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0, DType::Q2_K, DType::Q3_K,
                        DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::Q8_K, DType::IQ4_NL, DType::IQ4_XS};

class QuantMatmul : public ::testing::TestWithParam<DType> {};

TEST_P(QuantMatmul, EqualsFloat64ProductOfDequantizedWeights) {
  const DType type = GetParam();
  std::mt19937 rng(17);
  for (const auto [n_out, n_in, n_tokens] : {std::tuple<int64_t, int64_t, int64_t>{37, 512, 1}, {20, 256, 5},
                                             {9, 768, 3}}) {
    const Quantized w = quantize_matrix(type, n_out, n_in, rng);
    const auto x = random_values(size_t(n_tokens * n_in), rng, 1.0f);
    std::vector<Isa> isas = {Isa::scalar};
    if (int(detect_isa()) >= int(Isa::avx2)) isas.push_back(Isa::avx2);
    if (detect_isa() == Isa::avx512) isas.push_back(Isa::avx512);
    for (Isa isa : isas) {
      // Integer kernels round the activations to 8 bits: matmul_quant_simd_test.cpp checks them.
      if (isa == Isa::avx512 && matmul_quant_has_simd(type)) continue;
      if (isa == Isa::avx2 && quant_path_handles(QuantPath::avx2, type)) continue;
      std::vector<float> y(size_t(n_tokens * n_out), -1.0f);
      matmul_isa(isa, type, w.bytes.data(), n_out, n_in, x.data(), n_tokens, y.data());
      for (int64_t t = 0; t < n_tokens; ++t) {
        for (int64_t o = 0; o < n_out; ++o) {
          double expected = 0.0, magnitude = 0.0;
          for (int64_t i = 0; i < n_in; ++i) {
            const double p = double(w.values[size_t(o * n_in + i)]) * double(x[size_t(t * n_in + i)]);
            expected += p;
            magnitude += std::fabs(p);
          }
          ASSERT_NEAR(y[size_t(t * n_out + o)], expected, 1e-5 * magnitude + 1e-30)
              << dtype_name(type) << " " << isa_name(isa) << " token " << t << " row " << o;
        }
      }
    }
  }
}

TEST_P(QuantMatmul, ToF32DecodesRows) {
  const DType type = GetParam();
  std::mt19937 rng(5);
  const Quantized w = quantize_matrix(type, 2, 512, rng);
  std::vector<float> row(512);
  to_f32(type, w.bytes.data() + quantized_row_bytes(type, 512), row.data(), 512);
  for (int i = 0; i < 512; ++i) ASSERT_EQ(row[size_t(i)], w.values[size_t(512 + i)]) << dtype_name(type);
}

TEST_P(QuantMatmul, RejectsRowsThatAreNotWholeBlocks) {
  const DType type = GetParam();
  std::vector<uint8_t> w(4096);
  std::vector<float> x(300), y(4);
  EXPECT_THROW(matmul(type, w.data(), 2, 300, x.data(), 1, y.data()), Error);
  EXPECT_THROW(matmul(type, nullptr, 2, 256, x.data(), 1, y.data()), Error);
}

INSTANTIATE_TEST_SUITE_P(Formats, QuantMatmul, ::testing::ValuesIn(kTypes),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

}  // namespace
}  // namespace slm::cpu
