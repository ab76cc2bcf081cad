// Tensor element types, numbered as GGUF numbers them (ggml_type), with their block layouts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace slm {

enum class DType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
};

struct DTypeTraits {
  std::string_view name;  // as llama.cpp prints it: "f32", "f16", "bf16", "q8_0", "q4_K", ...
  uint32_t block_size;    // elements per block (1 for plain types)
  uint32_t block_bytes;   // bytes per block
};

// Traits of a known type, or nullopt for a number that is not a known type.
std::optional<DTypeTraits> dtype_traits(uint32_t type);
const DTypeTraits& dtype_traits(DType type);  // throws Error(internal) for an unknown value
std::string_view dtype_name(DType type);
// Parses "f32", "F16", "bf16", "q8_0", ... (case-insensitive); nullopt if unknown.
std::optional<DType> dtype_from_name(std::string_view name);

// Bytes of a row of `n` elements; throws Error(format) when n is not a multiple of the block size.
size_t dtype_row_bytes(DType type, uint64_t n);

}  // namespace slm
