#include "slm/format/dtype.hpp"

#include <gtest/gtest.h>

#include <string>

#include "format_test_util.hpp"

namespace slm {
namespace {

constexpr uint32_t QK_K = 256;
constexpr uint32_t half = 2;  // an fp16 scale

struct Expected {
  DType type;
  const char* name;
  uint32_t block_size;
  uint32_t block_bytes;
};

// Block sizes derived from each block's fields (scales, mins, high bits, quants), as GGUF lays
// them out, rather than copied as totals.
const Expected kExpected[] = {
    {DType::F32, "f32", 1, 4},
    {DType::F16, "f16", 1, 2},
    {DType::BF16, "bf16", 1, 2},
    {DType::Q4_0, "q4_0", 32, half + 32 / 2},
    {DType::Q4_1, "q4_1", 32, 2 * half + 32 / 2},
    {DType::Q5_0, "q5_0", 32, half + 4 + 32 / 2},
    {DType::Q5_1, "q5_1", 32, 2 * half + 4 + 32 / 2},
    {DType::Q8_0, "q8_0", 32, half + 32},
    {DType::Q8_1, "q8_1", 32, 2 * half + 32},
    {DType::Q2_K, "q2_K", QK_K, QK_K / 16 + QK_K / 4 + 2 * half},
    {DType::Q3_K, "q3_K", QK_K, QK_K / 8 + QK_K / 4 + 12 + half},
    {DType::Q4_K, "q4_K", QK_K, 2 * half + 12 + QK_K / 2},
    {DType::Q5_K, "q5_K", QK_K, 2 * half + 12 + QK_K / 8 + QK_K / 2},
    {DType::Q6_K, "q6_K", QK_K, QK_K / 2 + QK_K / 4 + QK_K / 16 + half},
    {DType::Q8_K, "q8_K", QK_K, 4 + QK_K + QK_K / 16 * 2},
    {DType::IQ2_XXS, "iq2_xxs", QK_K, half + QK_K / 8 * 2},
    {DType::IQ2_XS, "iq2_xs", QK_K, half + QK_K / 8 * 2 + QK_K / 32},
    {DType::IQ3_XXS, "iq3_xxs", QK_K, half + 3 * QK_K / 8},
    {DType::IQ1_S, "iq1_s", QK_K, half + QK_K / 8 + QK_K / 32 * 2},
    {DType::IQ4_NL, "iq4_nl", 32, half + 32 / 2},
    {DType::IQ3_S, "iq3_s", QK_K, half + QK_K / 4 + QK_K / 32 + QK_K / 8 + QK_K / 64},
    {DType::IQ2_S, "iq2_s", QK_K, half + QK_K / 4 + QK_K / 16},
    {DType::IQ4_XS, "iq4_xs", QK_K, half + 2 + QK_K / 64 + QK_K / 2},
    {DType::I8, "i8", 1, 1},
    {DType::I16, "i16", 1, 2},
    {DType::I32, "i32", 1, 4},
    {DType::I64, "i64", 1, 8},
    {DType::F64, "f64", 1, 8},
    {DType::IQ1_M, "iq1_m", QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32},
    {DType::TQ1_0, "tq1_0", QK_K, half + QK_K / 64 + (QK_K - 4 * QK_K / 64) / 5},
    {DType::TQ2_0, "tq2_0", QK_K, half + QK_K / 4},
};

TEST(DType, EveryTypeHasItsBlockLayout) {
  for (const Expected& e : kExpected) {
    SCOPED_TRACE(e.name);
    const DTypeTraits& t = dtype_traits(e.type);
    EXPECT_EQ(t.name, e.name);
    EXPECT_EQ(t.block_size, e.block_size);
    EXPECT_EQ(t.block_bytes, e.block_bytes);
    const auto by_number = dtype_traits(uint32_t(e.type));
    ASSERT_TRUE(by_number.has_value());
    EXPECT_EQ(by_number->block_bytes, e.block_bytes);
    EXPECT_EQ(dtype_name(e.type), e.name);
  }
}

TEST(DType, GgufNumbers) {
  // The numbers files store (ggml_type); gaps are types that were removed from the format.
  EXPECT_EQ(uint32_t(DType::Q5_0), 6u);
  EXPECT_EQ(uint32_t(DType::Q6_K), 14u);
  EXPECT_EQ(uint32_t(DType::IQ4_XS), 23u);
  EXPECT_EQ(uint32_t(DType::BF16), 30u);
  EXPECT_EQ(uint32_t(DType::TQ2_0), 35u);
  for (uint32_t removed : {4u, 5u, 31u, 32u, 33u, 36u, 37u, 38u, 39u, 1000u}) {
    EXPECT_FALSE(dtype_traits(removed).has_value()) << removed;
  }
}

TEST(DType, BitsPerWeightOfCommonFormats) {
  auto bpw = [](DType t) { return 8.0 * dtype_traits(t).block_bytes / dtype_traits(t).block_size; };
  EXPECT_DOUBLE_EQ(bpw(DType::Q4_0), 4.5);
  EXPECT_DOUBLE_EQ(bpw(DType::Q8_0), 8.5);
  EXPECT_DOUBLE_EQ(bpw(DType::Q4_K), 4.5);
  EXPECT_DOUBLE_EQ(bpw(DType::Q6_K), 6.5625);
  EXPECT_DOUBLE_EQ(bpw(DType::Q2_K), 2.625);
}

TEST(DType, NamesParseCaseInsensitively) {
  for (const Expected& e : kExpected) {
    EXPECT_EQ(dtype_from_name(e.name), e.type) << e.name;
    std::string upper = e.name;
    for (char& c : upper) c = char(std::toupper(static_cast<unsigned char>(c)));
    EXPECT_EQ(dtype_from_name(upper), e.type) << upper;
  }
  EXPECT_FALSE(dtype_from_name("q4_2").has_value());
  EXPECT_FALSE(dtype_from_name("").has_value());
  EXPECT_FALSE(dtype_from_name("f3").has_value());
}

TEST(DType, RowBytes) {
  EXPECT_EQ(dtype_row_bytes(DType::F32, 10), 40u);
  EXPECT_EQ(dtype_row_bytes(DType::BF16, 7), 14u);
  EXPECT_EQ(dtype_row_bytes(DType::Q8_0, 64), 68u);
  EXPECT_EQ(dtype_row_bytes(DType::Q4_K, 4096), 16u * 144u);
  EXPECT_EQ(dtype_row_bytes(DType::Q6_K, 0), 0u);
  EXPECT_SLM_ERROR(dtype_row_bytes(DType::Q4_0, 33), ErrorKind::format, "multiple of 32");
  EXPECT_SLM_ERROR(dtype_row_bytes(DType::Q4_K, 128), ErrorKind::format, "q4_K");
  EXPECT_SLM_ERROR(dtype_row_bytes(DType::Q8_K, UINT64_MAX / 256 * 256), ErrorKind::out_of_range, "q8_K");
}

TEST(DType, UnknownEnumValueIsAnInternalError) {
  EXPECT_SLM_ERROR(dtype_traits(DType(31)), ErrorKind::internal, "31");
}

}  // namespace
}  // namespace slm
