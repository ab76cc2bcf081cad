// Block formats: hand-built blocks decode to the values their definitions give, quantizers round
// trip random data within each format's error, exactly representable data round trips exactly,
// and bad input is an error, never undefined behaviour.
#include "slm/format/quant.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "slm/util/error.hpp"

namespace slm {
namespace {

struct FormatCase {
  DType type;
  double max_relative_rms;  // bound on rms(dequantize(quantize(x)) - x) / rms(x) for N(0, 0.02) data
};

// Bounds: llama.cpp's reference quantizers give 0.0054 (Q8_0), 0.086 (Q4_0), 0.078 (Q4_1),
// 0.043 (Q5_0), 0.038 (Q5_1), 0.30 (Q2_K), 0.15 (Q3_K), 0.071 (Q4_K), 0.036 (Q5_K), 0.018 (Q6_K),
// 0.0070 (Q8_K), 0.076 (IQ4_NL), 0.077 (IQ4_XS) on such data; the bounds leave ~10% margin.
const FormatCase kFormats[] = {
    {DType::Q8_0, 0.006}, {DType::Q4_0, 0.095}, {DType::Q4_1, 0.086}, {DType::Q5_0, 0.047},
    {DType::Q5_1, 0.042}, {DType::Q2_K, 0.33},  {DType::Q3_K, 0.166}, {DType::Q4_K, 0.079},
    {DType::Q5_K, 0.040}, {DType::Q6_K, 0.0195}, {DType::Q8_K, 0.0077}, {DType::IQ4_NL, 0.084},
    {DType::IQ4_XS, 0.085},
};

std::vector<float> random_row(int64_t n, uint32_t seed, float sigma = 0.02f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, sigma);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) {
    v = normal(rng);
    if (v == 0.0f) v = sigma * 1e-3f;  // never zero
  }
  return x;
}

std::vector<float> round_trip(DType type, const std::vector<float>& x, const float* importance = nullptr) {
  const auto n = int64_t(x.size());
  std::vector<uint8_t> q(quantized_row_bytes(type, n));
  quantize_row(type, x.data(), q.data(), n, importance);
  std::vector<float> y(x.size());
  dequantize_row(type, q.data(), y.data(), n);
  return y;
}

double relative_rms(const std::vector<float>& y, const std::vector<float>& x) {
  double err = 0.0, ref = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    err += (double(y[i]) - x[i]) * (double(y[i]) - x[i]);
    ref += double(x[i]) * x[i];
  }
  return std::sqrt(err / ref);
}

std::vector<float> decode(DType type, const std::vector<uint8_t>& bytes) {
  const DTypeTraits& traits = dtype_traits(type);
  EXPECT_EQ(bytes.size(), traits.block_bytes);
  std::vector<float> y(traits.block_size);
  dequantize_row(type, bytes.data(), y.data(), int64_t(traits.block_size));
  return y;
}

void put_f16(std::vector<uint8_t>& b, size_t at, uint16_t h) {
  b[at] = uint8_t(h & 0xff);
  b[at + 1] = uint8_t(h >> 8);
}

constexpr uint16_t kHalf0_5 = 0x3800, kHalf1 = 0x3c00, kHalf2 = 0x4000, kHalfMinus1 = 0xbc00;

class Formats : public ::testing::TestWithParam<FormatCase> {};

TEST_P(Formats, RandomRoundTripErrorWithinBound) {
  const FormatCase c = GetParam();
  const auto x = random_row(256 * 64, 7);
  const double error = relative_rms(round_trip(c.type, x), x);
  EXPECT_LT(error, c.max_relative_rms) << dtype_name(c.type);
  EXPECT_GT(error, 0.0) << dtype_name(c.type);  // lossy formats: an exact result would mean no quantization
}

TEST_P(Formats, ScaleInvariance) {
  // Multiplying the data by a power of two multiplies the decoded values by it (scales are f16,
  // within range): the same relative error at another magnitude.
  const FormatCase c = GetParam();
  const auto x = random_row(256 * 8, 11, 1.0f);
  auto x4 = x;
  for (auto& v : x4) v *= 4.0f;
  const auto y = round_trip(c.type, x), y4 = round_trip(c.type, x4);
  for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(y4[i], 4.0f * y[i]) << dtype_name(c.type) << " element " << i;
}

TEST_P(Formats, ZerosStayZero) {
  const FormatCase c = GetParam();
  const std::vector<float> x(256, 0.0f);
  for (float v : round_trip(c.type, x)) ASSERT_EQ(v, 0.0f) << dtype_name(c.type);
}

TEST_P(Formats, NonFiniteAndHugeInputsAreErrors) {
  const FormatCase c = GetParam();
  std::vector<uint8_t> q(quantized_row_bytes(c.type, 256));
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity()}) {
    auto x = random_row(256, 3);
    x[100] = bad;
    try {
      quantize_row(c.type, x.data(), q.data(), 256);
      ADD_FAILURE() << dtype_name(c.type) << " accepted " << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::invalid_argument);
      EXPECT_NE(std::string(e.what()).find("element 100"), std::string::npos) << e.what();
    }
  }
  auto x = random_row(256, 3);
  x[5] = 1e6f;  // beyond what an f16 block scale can express
  try {
    quantize_row(c.type, x.data(), q.data(), 256);
    ADD_FAILURE() << dtype_name(c.type) << " accepted 1e6";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::out_of_range);
  }
  x[5] = 65504.0f;  // the largest f16 is still fine, and decodes to finite values
  quantize_row(c.type, x.data(), q.data(), 256);
  std::vector<float> y(256);
  dequantize_row(c.type, q.data(), y.data(), 256);
  for (float v : y) ASSERT_TRUE(std::isfinite(v)) << dtype_name(c.type);
}

TEST_P(Formats, BadArgumentsAreErrors) {
  const FormatCase c = GetParam();
  const uint32_t block = dtype_traits(c.type).block_size;
  std::vector<float> x(512, 0.5f);
  std::vector<uint8_t> q(quantized_row_bytes(c.type, 512));
  EXPECT_THROW(quantize_row(c.type, x.data(), q.data(), int64_t(block) + 1), Error);
  EXPECT_THROW(dequantize_row(c.type, q.data(), x.data(), int64_t(block) - 1), Error);
  EXPECT_THROW(dequantize_row(c.type, q.data(), x.data(), -int64_t(block)), Error);
  EXPECT_THROW(quantize_row(c.type, nullptr, q.data(), int64_t(block)), Error);
  EXPECT_THROW(dequantize_row(c.type, nullptr, x.data(), int64_t(block)), Error);
  EXPECT_NO_THROW(dequantize_row(c.type, nullptr, nullptr, 0));
  std::vector<float> importance(512, 1.0f);
  importance[3] = -1.0f;
  EXPECT_THROW(quantize_row(c.type, x.data(), q.data(), 512, importance.data()), Error);
}

TEST_P(Formats, VecDotIsTheDotOfTheDequantizedRow) {
  const FormatCase c = GetParam();
  const int64_t n = 256 * 4;
  const auto w = random_row(n, 21), x = random_row(n, 22, 1.0f);
  std::vector<uint8_t> q(quantized_row_bytes(c.type, n));
  quantize_row(c.type, w.data(), q.data(), n);
  std::vector<float> wd(static_cast<size_t>(n));
  dequantize_row(c.type, q.data(), wd.data(), n);
  double expected = 0.0, magnitude = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    expected += double(wd[size_t(i)]) * x[size_t(i)];
    magnitude += std::fabs(double(wd[size_t(i)]) * x[size_t(i)]);
  }
  EXPECT_NEAR(vec_dot(c.type, q.data(), x.data(), n), expected, 1e-6 * magnitude) << dtype_name(c.type);
  // and close to the dot with the unquantized weights, within the format's error
  double exact = 0.0;
  for (int64_t i = 0; i < n; ++i) exact += double(w[size_t(i)]) * x[size_t(i)];
  EXPECT_NEAR(vec_dot(c.type, q.data(), x.data(), n), exact, 4.0 * c.max_relative_rms * magnitude) << dtype_name(c.type);
}

TEST_P(Formats, ImportanceLowersTheErrorWhereItIsLarge) {
  // Elements with a large importance are reproduced at least as well as without importance.
  const FormatCase c = GetParam();
  if (c.type == DType::Q8_0 || c.type == DType::Q8_K) GTEST_SKIP() << "no importance-guided search";
  const auto x = random_row(256 * 32, 31);
  std::vector<float> importance(x.size(), 0.01f);
  for (size_t i = 0; i < x.size(); i += 5) importance[i] = 100.0f;
  const auto plain = round_trip(c.type, x), weighted = round_trip(c.type, x, importance.data());
  double plain_error = 0.0, weighted_error = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    plain_error += importance[i] * (double(plain[i]) - x[i]) * (double(plain[i]) - x[i]);
    weighted_error += importance[i] * (double(weighted[i]) - x[i]) * (double(weighted[i]) - x[i]);
  }
  EXPECT_LT(weighted_error, plain_error) << dtype_name(c.type);
}

INSTANTIATE_TEST_SUITE_P(Quant, Formats, ::testing::ValuesIn(kFormats),
                         [](const auto& info) { return std::string(dtype_name(info.param.type)); });

TEST(Quant, MoreBitsLessError) {
  const auto x = random_row(256 * 32, 5);
  auto error = [&](DType t) { return relative_rms(round_trip(t, x), x); };
  EXPECT_LT(error(DType::Q8_0), error(DType::Q6_K));
  EXPECT_LT(error(DType::Q6_K), error(DType::Q5_K));
  EXPECT_LT(error(DType::Q5_K), error(DType::Q4_K));
  EXPECT_LT(error(DType::Q4_K), error(DType::Q3_K));
  EXPECT_LT(error(DType::Q3_K), error(DType::Q2_K));
  EXPECT_LT(error(DType::Q5_1), error(DType::Q4_1));
  EXPECT_LT(error(DType::Q5_0), error(DType::Q4_0));
}

TEST(Quant, SupportedTypes) {
  EXPECT_TRUE(quant_supported(DType::F32));
  EXPECT_TRUE(quant_supported(DType::IQ4_XS));
  EXPECT_FALSE(is_block_quantized(DType::BF16));
  EXPECT_TRUE(is_block_quantized(DType::Q5_K));
  EXPECT_FALSE(quant_supported(DType::IQ2_XXS));
  std::vector<uint8_t> q(66);
  std::vector<float> y(256);
  try {
    dequantize_row(DType::IQ2_XXS, q.data(), y.data(), 256);
    ADD_FAILURE() << "iq2_xxs decoded";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::unsupported);
  }
  EXPECT_EQ(quantized_row_bytes(DType::Q4_K, 512), 288u);
  EXPECT_EQ(quantized_row_bytes(DType::Q8_0, 64), 68u);
  EXPECT_THROW(quantized_row_bytes(DType::Q6_K, 100), Error);
}

TEST(Quant, PlainTypesConvert) {
  const std::vector<float> x = {1.0f, -2.5f, 0.1f, 3.0e-5f};
  for (DType t : {DType::F32, DType::F16, DType::BF16}) {
    const auto y = round_trip(t, x);
    for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(y[i], x[i], std::fabs(x[i]) * 4e-3) << dtype_name(t);
  }
  EXPECT_EQ(round_trip(DType::F32, x), x);
}

// ---------------------------------------------------------------------------------------------
// Hand-built blocks: bytes written field by field, expected values worked out from the
// definitions in the comments.

TEST(QuantBlocks, Q8_0) {
  std::vector<uint8_t> b(34, 0);
  put_f16(b, 0, kHalf0_5);  // d = 0.5
  b[2] = 0x80;              // q0 = -128
  b[3] = 0x7f;              // q1 = 127
  b[33] = 0xfe;             // q31 = -2
  const auto y = decode(DType::Q8_0, b);
  EXPECT_EQ(y[0], -64.0f);
  EXPECT_EQ(y[1], 63.5f);
  EXPECT_EQ(y[2], 0.0f);
  EXPECT_EQ(y[31], -1.0f);
}

TEST(QuantBlocks, Q4_0) {
  std::vector<uint8_t> b(18, 0x88);  // every nibble 8: value 0
  put_f16(b, 0, kHalf2);             // d = 2
  b[2] = 0x9f;                       // element 0: (15 - 8) * 2 = 14; element 16: (9 - 8) * 2 = 2
  b[3] = 0x08;                       // element 1: 0; element 17: (0 - 8) * 2 = -16
  const auto y = decode(DType::Q4_0, b);
  EXPECT_EQ(y[0], 14.0f);
  EXPECT_EQ(y[16], 2.0f);
  EXPECT_EQ(y[1], 0.0f);
  EXPECT_EQ(y[17], -16.0f);
  EXPECT_EQ(y[31], 0.0f);
}

TEST(QuantBlocks, Q4_1) {
  std::vector<uint8_t> b(20, 0);
  put_f16(b, 0, kHalf1);       // d = 1
  put_f16(b, 2, kHalfMinus1);  // m = -1
  b[4] = 0xf0;                 // element 0: 0 * 1 - 1 = -1; element 16: 15 - 1 = 14
  b[19] = 0x3a;                // element 15: 10 - 1 = 9; element 31: 3 - 1 = 2
  const auto y = decode(DType::Q4_1, b);
  EXPECT_EQ(y[0], -1.0f);
  EXPECT_EQ(y[16], 14.0f);
  EXPECT_EQ(y[15], 9.0f);
  EXPECT_EQ(y[31], 2.0f);
  EXPECT_EQ(y[5], -1.0f);
}

TEST(QuantBlocks, Q5_0) {
  std::vector<uint8_t> b(22, 0);
  put_f16(b, 0, kHalf0_5);  // d = 0.5
  b[2] = 0x01;              // qh bit 0: element 0 has its fifth bit
  b[5] = 0x80;              // qh bit 31: element 31 has its fifth bit
  b[6] = 0x21;              // element 0: (1 | 16) - 16 = 1 -> 0.5; element 16: 2 - 16 = -14 -> -7
  b[21] = 0xf0;             // element 15: 0 - 16 -> -8; element 31: (15 | 16) - 16 = 15 -> 7.5
  const auto y = decode(DType::Q5_0, b);
  EXPECT_EQ(y[0], 0.5f);
  EXPECT_EQ(y[16], -7.0f);
  EXPECT_EQ(y[15], -8.0f);
  EXPECT_EQ(y[31], 7.5f);
}

TEST(QuantBlocks, Q5_1) {
  std::vector<uint8_t> b(24, 0);
  put_f16(b, 0, kHalf1);  // d = 1
  put_f16(b, 2, kHalf2);  // m = 2
  b[6] = 0x01;            // qh bit 16: element 16 has its fifth bit
  b[8] = 0x13;            // element 0: 3 + 2 = 5; element 16: (1 | 16) + 2 = 19
  const auto y = decode(DType::Q5_1, b);
  EXPECT_EQ(y[0], 5.0f);
  EXPECT_EQ(y[16], 19.0f);
  EXPECT_EQ(y[1], 2.0f);
}

TEST(QuantBlocks, Q2_K) {
  std::vector<uint8_t> b(84, 0);
  b[0] = 0x21;                 // sub-block 0: scale 1, min 2
  b[1] = 0x03;                 // sub-block 1: scale 3, min 0
  b[2] = 0x12;                 // sub-block 2: scale 2, min 1
  b[4] = 0x04;                 // sub-block 4: scale 4
  b[8] = 0x15;                 // sub-block 8: scale 5, min 1
  b[16 + 0] = 0xe4;            // byte 0 of qs: elements 0, 32, 64, 96 = 0, 1, 2, 3
  b[16 + 16] = 0x03;           // element 16 = 3
  b[16 + 32] = 0x02;           // element 128 = 2
  put_f16(b, 80, kHalf1);      // d = 1
  put_f16(b, 82, kHalf0_5);    // dmin = 0.5
  const auto y = decode(DType::Q2_K, b);
  EXPECT_EQ(y[0], -1.0f);   // 1 * 0 - 0.5 * 2
  EXPECT_EQ(y[16], 9.0f);   // 3 * 3 - 0
  EXPECT_EQ(y[32], 1.5f);   // 2 * 1 - 0.5 * 1
  EXPECT_EQ(y[64], 8.0f);   // 4 * 2
  EXPECT_EQ(y[96], 0.0f);   // sub-block 6 has scale 0
  EXPECT_EQ(y[128], 9.5f);  // 5 * 2 - 0.5
  EXPECT_EQ(y[1], -1.0f);   // level 0 of sub-block 0
}

TEST(QuantBlocks, Q3_K) {
  std::vector<uint8_t> b(110, 0);
  uint8_t* hmask = b.data();
  uint8_t* qs = b.data() + 32;
  uint8_t* scales = b.data() + 96;
  // Scales stored + 32 as 6 bits: sub-block 0 -> 1 (33), 1 -> -2 (30), 5 -> -1 (31), 8 -> 3 (35),
  // every other -> 0 (32). Low nibbles of 0..7 in bytes 0..7, of 8..15 in their high nibbles;
  // high bit pairs of sub-block s at bit 2(s/4) of byte 8 + s%4.
  const uint8_t packed[12] = {0x31, 0x0e, 0x00, 0x00, 0x00, 0x0f, 0x00, 0x00, 0xaa, 0xa5, 0xaa, 0xaa};
  std::memcpy(scales, packed, 12);
  put_f16(b, 108, kHalf1);  // d = 1
  qs[0] = 0x03;             // element 0: 3, high bit set (hmask[0] bit 0) -> 3
  hmask[0] = 0x11;          //   and element 128's high bit (bit 4)
  qs[16] = 0x21;            // element 16: 1 (high bit set) ; element 80: 2 (high bit clear: 2 - 4)
  hmask[16] = 0x01;
  qs[32] = 0x02;            // element 128: 2 with high bit
  const auto y = decode(DType::Q3_K, b);
  EXPECT_EQ(y[0], 3.0f);     // 1 * 3
  EXPECT_EQ(y[1], -4.0f);    // 1 * (0 - 4)
  EXPECT_EQ(y[16], -2.0f);   // -2 * 1
  EXPECT_EQ(y[80], 2.0f);    // -1 * (2 - 4)
  EXPECT_EQ(y[128], 6.0f);   // 3 * 2
  EXPECT_EQ(y[40], -0.0f);   // scale 0
}

// Q4_K/Q5_K 6-bit scales: sub-block 0: scale 2, min 4; 1: scale 1, min 0; 5: scale 37, min 18.
std::vector<uint8_t> k4_scales() {
  std::vector<uint8_t> s(12, 0);
  s[0] = 2;
  s[4] = 4;
  s[1] = 0x81;  // scale of 1 = 1; bits 6-7 = high 2 bits of sub-block 5's scale (37 >> 4 = 2)
  s[5] = 0x40;  // bits 6-7 = high 2 bits of sub-block 5's min (18 >> 4 = 1)
  s[9] = 0x25;  // sub-block 5: low 4 bits of scale (5) | low 4 bits of min (2) << 4
  return s;
}

TEST(QuantBlocks, Q4_K) {
  std::vector<uint8_t> b(144, 0);
  put_f16(b, 0, kHalf1);    // d = 1
  put_f16(b, 2, kHalf0_5);  // dmin = 0.5
  const auto s = k4_scales();
  std::copy(s.begin(), s.end(), b.begin() + 4);
  b[16 + 0] = 0xa7;   // element 0: 7 (sub-block 0); element 32: 10 (sub-block 1)
  b[16 + 64] = 0x30;  // element 160 (high nibble of byte 64): 3, sub-block 5
  const auto y = decode(DType::Q4_K, b);
  EXPECT_EQ(y[0], 12.0f);     // 2 * 7 - 0.5 * 4
  EXPECT_EQ(y[32], 10.0f);    // 1 * 10 - 0
  EXPECT_EQ(y[160], 102.0f);  // 37 * 3 - 0.5 * 18
  EXPECT_EQ(y[128], 0.0f);    // sub-block 4: scale 0, min 0
  EXPECT_EQ(y[1], -2.0f);     // level 0 of sub-block 0
}

TEST(QuantBlocks, Q5_K) {
  std::vector<uint8_t> b(176, 0);
  put_f16(b, 0, kHalf1);
  put_f16(b, 2, kHalf0_5);
  const auto s = k4_scales();
  std::copy(s.begin(), s.end(), b.begin() + 4);
  b[16 + 0] = 0x21;   // qh[0]: bit 0 (element 0) and bit 5 (element 160)
  b[48 + 0] = 0xa7;   // element 0: 7 + 16; element 32: 10
  b[48 + 64] = 0x30;  // element 160: 3 + 16
  const auto y = decode(DType::Q5_K, b);
  EXPECT_EQ(y[0], 44.0f);     // 2 * 23 - 2
  EXPECT_EQ(y[32], 10.0f);    // 1 * 10
  EXPECT_EQ(y[160], 694.0f);  // 37 * 19 - 9
}

TEST(QuantBlocks, Q6_K) {
  std::vector<uint8_t> b(210, 0);
  uint8_t* ql = b.data();
  uint8_t* qh = b.data() + 128;
  auto* scales = reinterpret_cast<int8_t*>(b.data() + 192);
  scales[0] = 2;
  scales[2] = -1;
  scales[12] = 3;
  put_f16(b, 208, kHalf0_5);  // d = 0.5
  ql[0] = 0x05;               // element 0: low 4 bits 5
  qh[0] = 0x02;               // element 0: high bits 2 -> q = 37; element 32: high bits 0
  ql[64] = 0xf0;              // element 192: low 4 bits 15 (high nibble of ql[64])
  qh[32] = 0x30;              // element 192: high bits 3 -> q = 63
  const auto y = decode(DType::Q6_K, b);
  EXPECT_EQ(y[0], 5.0f);     // 0.5 * 2 * (37 - 32)
  EXPECT_EQ(y[32], 16.0f);   // 0.5 * -1 * (0 - 32)
  EXPECT_EQ(y[192], 46.5f);  // 0.5 * 3 * (63 - 32)
  EXPECT_EQ(y[64], -0.0f);   // scale 0
}

TEST(QuantBlocks, Q8_K) {
  std::vector<uint8_t> b(292, 0);
  const float d = 0.25f;
  std::memcpy(b.data(), &d, 4);
  b[4] = 0x80;        // -128
  b[4 + 255] = 100;
  const auto y = decode(DType::Q8_K, b);
  EXPECT_EQ(y[0], -32.0f);
  EXPECT_EQ(y[255], 25.0f);
  EXPECT_EQ(y[1], 0.0f);
}

TEST(QuantBlocks, Iq4Nl) {
  std::vector<uint8_t> b(18, 0);
  put_f16(b, 0, kHalf2);  // d = 2
  b[2] = 0xf0;            // element 0: code 0 (-127); element 16: code 15 (113)
  b[5] = 0x78;            // element 3: code 8 (1); element 19: code 7 (-10)
  const auto y = decode(DType::IQ4_NL, b);
  EXPECT_EQ(y[0], -254.0f);
  EXPECT_EQ(y[16], 226.0f);
  EXPECT_EQ(y[3], 2.0f);
  EXPECT_EQ(y[19], -20.0f);
}

TEST(QuantBlocks, Iq4Xs) {
  std::vector<uint8_t> b(136, 0);
  put_f16(b, 0, kHalf0_5);  // d = 0.5
  // Sub-block scales stored + 32: sub-block 0 -> 1 (33: low 1, high 2), 3 -> -4 (28: low 12,
  // high 1), others 0 (32: low 0, high 2). High pairs at bit 2s of scales_h.
  put_f16(b, 2, 0xaa6a);
  b[4] = 0x01;  // sub-blocks 0 (low nibble) and 1
  b[5] = 0xc0;  // sub-blocks 2 and 3 (high nibble)
  b[8 + 0] = 0x0f;        // element 0: code 15 (113); element 16: code 0 (-127)
  b[8 + 16 * 3 + 1] = 0x90;  // element 97: code 0; element 113: code 9 (13)
  const auto y = decode(DType::IQ4_XS, b);
  EXPECT_EQ(y[0], 56.5f);    // 0.5 * 1 * 113
  EXPECT_EQ(y[16], -63.5f);  // 0.5 * 1 * -127
  EXPECT_EQ(y[97], 254.0f);  // 0.5 * -4 * -127
  EXPECT_EQ(y[113], -26.0f); // 0.5 * -4 * 13
  EXPECT_EQ(y[40], -0.0f);   // scale 0
}

TEST(QuantBlocks, NonFiniteScalesDecodeToNonFiniteValues) {
  // A block whose f16 scale is Inf or NaN decodes to Inf/NaN as the format defines: no error, no crash.
  std::vector<uint8_t> b(18, 0x99);
  put_f16(b, 0, 0x7c00);  // +Inf
  auto y = decode(DType::Q4_0, b);
  EXPECT_EQ(y[0], std::numeric_limits<float>::infinity());
  put_f16(b, 0, 0x7e00);  // NaN
  y = decode(DType::Q4_0, b);
  EXPECT_TRUE(std::isnan(y[0]));
}

// ---------------------------------------------------------------------------------------------
// Exactly representable data round trips exactly.

TEST(QuantExact, LegacySymmetric) {
  // Values q * d with the most negative level present: d = extreme / -8 (-16) is exact.
  std::vector<float> x4(32), x5(32), x8(32);
  for (int j = 0; j < 32; ++j) {
    x4[size_t(j)] = float((j * 7) % 16 - 8) * 0.5f;    // levels -8..7 of d = 0.5
    x5[size_t(j)] = float((j * 11) % 32 - 16) * 0.25f; // levels -16..15 of d = 0.25
    x8[size_t(j)] = float((j * 37) % 255 - 127) * 0.125f;
  }
  x4[3] = -4.0f;
  x5[3] = -4.0f;
  x8[3] = -127 * 0.125f;
  EXPECT_EQ(round_trip(DType::Q4_0, x4), x4);
  EXPECT_EQ(round_trip(DType::Q5_0, x5), x5);
  EXPECT_EQ(round_trip(DType::Q8_0, x8), x8);
}

TEST(QuantExact, LegacyAffine) {
  // Values m + q * d spanning all levels: d = (max - min) / 15 (31) and m = min are exact.
  std::vector<float> x4(32), x5(32);
  for (int j = 0; j < 32; ++j) {
    x4[size_t(j)] = -1.5f + float((j * 7) % 16) * 0.25f;
    x5[size_t(j)] = -2.0f + float(j % 32) * 0.125f;
  }
  x4[0] = -1.5f;
  x4[1] = -1.5f + 15 * 0.25f;
  EXPECT_EQ(round_trip(DType::Q4_1, x4), x4);
  EXPECT_EQ(round_trip(DType::Q5_1, x5), x5);
}

TEST(QuantExact, Q6_K) {
  // Sub-block s holds k_s * u * l with l in [-32, 31] (l = -32 present) and integer k_s <= 128,
  // k_0 = 128: the sub-block fits are exact, the super-block scale is u, the 8-bit scales k_s.
  const float u = 1.0f / 1024.0f;
  std::vector<float> x(256);
  for (int s = 0; s < 16; ++s) {
    const int k = s == 0 ? 128 : 3 + 7 * s;
    for (int i = 0; i < 16; ++i) {
      const int l = i == 0 ? -32 : (i * 13 + s) % 64 - 32;
      x[size_t(16 * s + i)] = float(k) * u * float(l);
    }
  }
  EXPECT_EQ(round_trip(DType::Q6_K, x), x);
}

TEST(QuantExact, Q8_K) {
  const float u = 1.0f / 64.0f;
  std::vector<float> x(256);
  for (int i = 0; i < 256; ++i) x[size_t(i)] = float((i * 29) % 255 - 127) * u;
  x[7] = -127 * u;
  EXPECT_EQ(round_trip(DType::Q8_K, x), x);
}

TEST(QuantExact, Iq4Nl) {
  // d * T[code] with the table's first entry present (the extreme): the fit finds d exactly.
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[size_t(j)] = 0.0625f * float(kIq4NonLinearValues[(j * 5) % 16]);
  x[9] = 0.0625f * -127.0f;
  EXPECT_EQ(round_trip(DType::IQ4_NL, x), x);
}

}  // namespace
}  // namespace slm
