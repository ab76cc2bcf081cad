// Matrix-vector products (decode), embedding rows and cuBLAS products of every DeviceMatrix type
// against the CPU reference of the formats (dequantize_row / vec_dot) on random weights.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "cuda_test_util.hpp"
#include "slm/format/quant.hpp"
#include "slm/util/error.hpp"

namespace slm::cuda {
namespace {

using test::random_floats;

constexpr DType kTypes[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q8_0, DType::Q4_0,   DType::Q5_0, DType::Q5_1,
                            DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::IQ4_NL, DType::IQ4_XS};

struct HostMatrix {
  DType type;
  int64_t n_out, n_in;
  std::vector<uint8_t> rows;   // GGUF layout
  std::vector<float> values;   // the rows dequantized (what the format stands for)
};

HostMatrix random_matrix(DType type, int64_t n_out, int64_t n_in, uint32_t seed) {
  HostMatrix m{type, n_out, n_in, {}, {}};
  const auto x = random_floats(size_t(n_out * n_in), seed, -1.0f, 1.0f);
  const size_t row_bytes = quantized_row_bytes(type, n_in);
  m.rows.resize(row_bytes * size_t(n_out));
  m.values.resize(size_t(n_out * n_in));
  for (int64_t o = 0; o < n_out; ++o) {
    quantize_row(type, x.data() + o * n_in, m.rows.data() + size_t(o) * row_bytes, n_in);
    dequantize_row(type, m.rows.data() + size_t(o) * row_bytes, m.values.data() + o * n_in, n_in);
  }
  return m;
}

std::string name(DType type) { return std::string(dtype_name(type)); }

class MatvecTest : public ::testing::TestWithParam<DType> {};

// Shapes: odd row counts (a warp's second row missing), inputs of one, several and a partial round of
// pieces per lane.
TEST_P(MatvecTest, MatchesCpuReference) {
  SLM_REQUIRE_CUDA();
  const DType type = GetParam();
  const int64_t shapes[][2] = {{37, 256}, {130, 1536}, {9, 2304}, {64, 4096}};
  uint32_t seed = 10;
  for (const auto& shape : shapes) {
    const int64_t n_out = shape[0], n_in = shape[1];
    SCOPED_TRACE(name(type) + " " + std::to_string(n_out) + "x" + std::to_string(n_in));
    const HostMatrix host = random_matrix(type, n_out, n_in, ++seed);
    const auto x = random_floats(size_t(n_in), ++seed);
    const DeviceMatrix w = upload_matrix(type, host.rows.data(), n_out, n_in);
    const DeviceBuffer x_dev = test::to_device(x);
    DeviceBuffer y_dev = test::poisoned<float>(size_t(n_out));
    matvec(w, x_dev.as<float>(), y_dev.as<float>());
    const auto y = test::to_host<float>(y_dev, size_t(n_out));
    const size_t row_bytes = quantized_row_bytes(type, n_in);
    // f32 accumulation: a lane sums n_in / 32 products (scaled per block), then 5 shuffle steps.
    const double eps = 1.2e-7 * double(n_in / 32 + 32);
    for (int64_t o = 0; o < n_out; ++o) {
      const double ref = vec_dot(type, host.rows.data() + size_t(o) * row_bytes, x.data(), n_in);
      double magnitude = 0.0, max_w = 0.0;
      for (int64_t i = 0; i < n_in; ++i) max_w = std::max(max_w, double(std::fabs(host.values[size_t(o * n_in + i)])));
      for (int64_t i = 0; i < n_in; ++i) magnitude += std::fabs(double(x[size_t(i)])) * 2.0 * max_w;
      ASSERT_TRUE(std::isfinite(y[size_t(o)])) << "row " << o;
      ASSERT_NEAR(y[size_t(o)], ref, eps * magnitude) << "row " << o;
    }
  }
}

// The integer kernels: activations rounded to 8 bits per block of 32, so each output may move by up to
// sum over blocks of max|x_b| / 254 * sum_{i in b} |w_i| from the exact product, plus f32 rounding.
TEST_P(MatvecTest, QuantizedActivationsWithinRoundingBound) {
  SLM_REQUIRE_CUDA();
  const DType type = GetParam();
  if (!matvec_quantized_supported(type)) {
    std::vector<uint8_t> bytes(quantized_row_bytes(type, 256) * 2, 1);
    const DeviceMatrix w = upload_matrix(type, bytes.data(), 2, 256);
    QuantizedVector xq(256);
    const DeviceBuffer x_dev = test::to_device(random_floats(256, 3));
    xq.quantize(x_dev.as<float>(), 256);
    DeviceBuffer y_dev(8);
    EXPECT_THROW(matvec(w, xq, y_dev.as<float>()), Error);
    return;
  }
  const int64_t shapes[][2] = {{37, 256}, {130, 1536}, {9, 2304}, {64, 4096}};
  uint32_t seed = 50;
  QuantizedVector xq;
  for (const auto& shape : shapes) {
    const int64_t n_out = shape[0], n_in = shape[1];
    SCOPED_TRACE(name(type) + " " + std::to_string(n_out) + "x" + std::to_string(n_in));
    const HostMatrix host = random_matrix(type, n_out, n_in, ++seed);
    auto x = random_floats(size_t(n_in), ++seed);
    x[5] = 40.0f;  // one block with a large value: its rounding step is larger
    const DeviceMatrix w = upload_matrix(type, host.rows.data(), n_out, n_in);
    const DeviceBuffer x_dev = test::to_device(x);
    xq.quantize(x_dev.as<float>(), n_in);
    DeviceBuffer y_dev = test::poisoned<float>(size_t(n_out));
    matvec(w, xq, y_dev.as<float>());
    const auto y = test::to_host<float>(y_dev, size_t(n_out));
    double nonzero_error = 0.0;
    for (int64_t o = 0; o < n_out; ++o) {
      double ref = 0.0, bound = 0.0, magnitude = 0.0;
      for (int64_t b = 0; b < n_in / 32; ++b) {
        double max_x = 0.0, sum_w = 0.0;
        for (int64_t i = 32 * b; i < 32 * b + 32; ++i) {
          const double wi = host.values[size_t(o * n_in + i)];
          ref += wi * double(x[size_t(i)]);
          magnitude += std::fabs(wi * double(x[size_t(i)]));
          max_x = std::max(max_x, std::fabs(double(x[size_t(i)])));
          sum_w += std::fabs(wi);
        }
        bound += max_x / 254.0 * sum_w;
      }
      bound = bound * 1.001 + 1.2e-7 * double(n_in / 32 + 32) * magnitude;
      ASSERT_TRUE(std::isfinite(y[size_t(o)])) << "row " << o;
      ASSERT_NEAR(y[size_t(o)], ref, bound) << "row " << o;
      nonzero_error = std::max(nonzero_error, std::fabs(double(y[size_t(o)]) - ref));
    }
    EXPECT_GT(nonzero_error, 0.0);  // the activations were rounded: not the float kernel
  }
  EXPECT_THROW(xq.quantize(nullptr, 48), Error);
}

TEST_P(MatvecTest, EmbeddingRowsAreTheDequantizedRows) {
  SLM_REQUIRE_CUDA();
  const DType type = GetParam();
  const int64_t n_rows = 50, n_in = 512;
  const HostMatrix host = random_matrix(type, n_rows, n_in, 77);
  const DeviceMatrix table = upload_matrix(type, host.rows.data(), n_rows, n_in);
  const std::vector<int32_t> ids = {3, 49, 0, 3, 17, 50, -1};  // the last two lie outside: zero rows
  const DeviceBuffer ids_dev = test::to_device(ids);
  DeviceBuffer out_dev = test::poisoned<float>(ids.size() * size_t(n_in));
  embedding(table, ids_dev.as<int32_t>(), int64_t(ids.size()), out_dev.as<float>());
  const auto out = test::to_host<float>(out_dev, ids.size() * size_t(n_in));
  for (size_t t = 0; t < ids.size(); ++t) {
    const bool inside = ids[t] >= 0 && ids[t] < n_rows;
    float max_w = 0.0f;
    if (inside) {
      for (int64_t i = 0; i < n_in; ++i) max_w = std::max(max_w, std::fabs(host.values[size_t(ids[t] * n_in + i)]));
    }
    for (int64_t i = 0; i < n_in; ++i) {
      const float expected = inside ? host.values[size_t(ids[t] * n_in + i)] : 0.0f;
      // Formats with a minimum may fuse (d * scale) * q - min into one rounding: a few ulps of the row.
      ASSERT_NEAR(out[t * size_t(n_in) + size_t(i)], expected, 4e-7f * max_w) << "id " << ids[t] << " element " << i;
    }
  }
}

TEST_P(MatvecTest, BlasMatmulMatchesReference) {
  SLM_REQUIRE_CUDA();
  const DType type = GetParam();
  const int64_t n_out = 300, n_in = 1024;
  const HostMatrix host = random_matrix(type, n_out, n_in, 91);
  const DeviceMatrix w = upload_matrix(type, host.rows.data(), n_out, n_in);
  Blas blas;
  for (int64_t n_tokens : {1, 7, 64}) {
    SCOPED_TRACE(name(type) + " tokens " + std::to_string(n_tokens));
    const auto x = random_floats(size_t(n_tokens * n_in), 5 + uint32_t(n_tokens));
    const DeviceBuffer x_dev = test::to_device(x);
    DeviceBuffer y_dev = test::poisoned<float>(size_t(n_tokens * n_out));
    blas.matmul(w, x_dev.as<float>(), n_tokens, y_dev.as<float>());
    const auto y = test::to_host<float>(y_dev, size_t(n_tokens * n_out));
    // Operands rounded to f16 (2^-11), bf16 (2^-8 for both) or TF32 (2^-11 for both), f32 sums.
    const double unit = type == DType::BF16 ? 8e-3 : 2e-3;
    for (int64_t t = 0; t < n_tokens; ++t) {
      for (int64_t o = 0; o < n_out; ++o) {
        double ref = 0.0, magnitude = 0.0;
        for (int64_t i = 0; i < n_in; ++i) {
          const double p = double(host.values[size_t(o * n_in + i)]) * double(x[size_t(t * n_in + i)]);
          ref += p;
          magnitude += std::fabs(p);
        }
        const float got = y[size_t(t * n_out + o)];
        ASSERT_TRUE(std::isfinite(got)) << "token " << t << " row " << o;
        ASSERT_NEAR(got, ref, unit * magnitude) << "token " << t << " row " << o;
      }
    }
  }
}

// accumulate = true adds the product to what y holds (both kernels).
TEST_P(MatvecTest, AccumulateAddsTheProduct) {
  SLM_REQUIRE_CUDA();
  const DType type = GetParam();
  const int64_t n_out = 45, n_in = 512;
  const HostMatrix host = random_matrix(type, n_out, n_in, 123);
  const auto x = random_floats(size_t(n_in), 124);
  const auto y0 = random_floats(size_t(n_out), 125, -10.0f, 10.0f);
  const DeviceMatrix w = upload_matrix(type, host.rows.data(), n_out, n_in);
  const DeviceBuffer x_dev = test::to_device(x);
  DeviceBuffer plain(size_t(n_out) * 4);
  DeviceBuffer summed = test::to_device(y0);
  matvec(w, x_dev.as<float>(), plain.as<float>());
  matvec(w, x_dev.as<float>(), summed.as<float>(), nullptr, true);
  auto expected = test::to_host<float>(plain, size_t(n_out));
  auto got = test::to_host<float>(summed, size_t(n_out));
  for (int64_t o = 0; o < n_out; ++o) ASSERT_FLOAT_EQ(got[size_t(o)], y0[size_t(o)] + expected[size_t(o)]) << o;
  if (!matvec_quantized_supported(type)) return;
  QuantizedVector xq(n_in);
  xq.quantize(x_dev.as<float>(), n_in);
  summed.upload(y0.data(), y0.size() * 4);
  matvec(w, xq, plain.as<float>());
  matvec(w, xq, summed.as<float>(), nullptr, true);
  expected = test::to_host<float>(plain, size_t(n_out));
  got = test::to_host<float>(summed, size_t(n_out));
  for (int64_t o = 0; o < n_out; ++o) ASSERT_FLOAT_EQ(got[size_t(o)], y0[size_t(o)] + expected[size_t(o)]) << o;
}

// The fused forms give what their parts give apart: the product of silu(gate) * up, and the 8-bit
// rounding of rms_norm(x) or of silu(gate) * up feeding the integer kernels.
TEST_P(MatvecTest, FusedActivationsMatchTheirParts) {
  SLM_REQUIRE_CUDA();
  const DType type = GetParam();
  const int64_t n_out = 70, n_in = 768;
  const HostMatrix host = random_matrix(type, n_out, n_in, 131);
  const DeviceMatrix w = upload_matrix(type, host.rows.data(), n_out, n_in);
  const auto gate = random_floats(size_t(n_in), 132, -4.0f, 4.0f), up = random_floats(size_t(n_in), 133);
  const auto norm_w = random_floats(size_t(n_in), 134, 0.5f, 1.5f);
  DeviceBuffer g_dev = test::to_device(gate);
  const DeviceBuffer u_dev = test::to_device(up), w_dev = test::to_device(norm_w);
  DeviceBuffer fused(size_t(n_out) * 4), apart(size_t(n_out) * 4);
  const auto close = [&](const char* what, double bound) {
    const auto a = test::to_host<float>(fused, size_t(n_out)), b = test::to_host<float>(apart, size_t(n_out));
    std::vector<double> ref(b.begin(), b.end());
    EXPECT_LT(test::relative_l2(a, ref), bound) << what;
  };
  matvec_silu_mul(w, g_dev.as<float>(), u_dev.as<float>(), fused.as<float>());
  DeviceBuffer product = test::to_device(gate);
  silu_mul(product.as<float>(), u_dev.as<float>(), n_in);
  matvec(w, product.as<float>(), apart.as<float>());
  close("matvec_silu_mul", 1e-6);
  if (!matvec_quantized_supported(type)) return;
  QuantizedVector fused_q(n_in), apart_q(n_in);
  fused_q.quantize_silu_mul(g_dev.as<float>(), u_dev.as<float>(), n_in);
  apart_q.quantize(product.as<float>(), n_in);
  matvec(w, fused_q, fused.as<float>());
  matvec(w, apart_q, apart.as<float>());
  close("quantize_silu_mul", 1e-6);
  DeviceBuffer normed(size_t(n_in) * 4), normed_fused = test::poisoned<float>(size_t(n_in));
  rms_norm(g_dev.as<float>(), w_dev.as<float>(), normed.as<float>(), 1, n_in, 1e-5f);
  apart_q.quantize(normed.as<float>(), n_in);
  fused_q.quantize_rms_norm(g_dev.as<float>(), w_dev.as<float>(), n_in, 1e-5f, normed_fused.as<float>());
  const auto y_fused = test::to_host<float>(normed_fused, size_t(n_in));
  const auto y_apart = test::to_host<float>(normed, size_t(n_in));
  for (int64_t i = 0; i < n_in; ++i) ASSERT_NEAR(y_fused[size_t(i)], y_apart[size_t(i)], 1e-5) << i;
  matvec(w, fused_q, fused.as<float>());
  matvec(w, apart_q, apart.as<float>());
  close("quantize_rms_norm", 1e-3);  // the norms' sums may differ in the last bit, moving a rounding
}

// The device layouts' sizes, which the session's memory estimate uses.
TEST(CudaMatrix, DeviceBytesOfTheSplitLayouts) {
  EXPECT_EQ(device_matrix_bytes(DType::Q4_K, 144 * 3), 148u * 3);
  EXPECT_EQ(device_matrix_bytes(DType::Q5_K, 176 * 5), 180u * 5);
  EXPECT_EQ(device_matrix_bytes(DType::IQ4_XS, 136 * 2), 138u * 2);
  EXPECT_EQ(device_matrix_bytes(DType::Q5_0, 22 * 7), 22u * 7);
}

INSTANTIATE_TEST_SUITE_P(Types, MatvecTest, ::testing::ValuesIn(kTypes),
                         [](const auto& info) { return name(info.param); });

TEST(CudaMatrix, RejectsUnsupportedTypesAndShapes) {
  std::vector<uint8_t> bytes(4096, 1);
  EXPECT_FALSE(matrix_type_supported(DType::Q3_K));
  EXPECT_THROW(upload_matrix(DType::Q3_K, bytes.data(), 1, 256), Error);
  EXPECT_THROW(upload_matrix(DType::Q8_0, bytes.data(), 2, 48), Error);  // not whole blocks
  EXPECT_THROW(upload_matrix(DType::F16, bytes.data(), 2, 12), Error);   // not whole 16-byte pieces
  EXPECT_THROW(upload_matrix(DType::F16, nullptr, 2, 16), Error);
}

}  // namespace
}  // namespace slm::cuda
