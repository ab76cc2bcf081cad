// GGUF's block-quantized tensor formats (the block layouts ggml defines and llama.cpp files use):
// converting rows to f32 (bit-exact to the formats' definitions), reference quantizers, and a
// scalar reference dot product for testing faster kernels.
//
// Formats: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 (blocks of 32), Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K
// (super-blocks of 256), IQ4_NL (32), IQ4_XS (256); and the plain F32, F16, BF16.
// Every multi-byte field is little-endian; f16 fields are IEEE half precision.
//
// Quantizer inputs must be finite and lie within the f16 range (|x| <= 65504), because block
// scales and minimums are stored as f16: anything else is an Error (invalid_argument for NaN/Inf,
// out_of_range for larger values), never a silent clamp.
#pragma once

#include <cstddef>
#include <cstdint>

#include "slm/format/dtype.hpp"

namespace slm {

// True for the formats above that dequantize_row and quantize_row handle (F32, F16 and BF16 included).
bool quant_supported(DType type);
// True for the block formats (not F32/F16/BF16).
bool is_block_quantized(DType type);

// Bytes of a row of n elements (n a multiple of the block size; Error(format) otherwise).
size_t quantized_row_bytes(DType type, int64_t n);

// dst[0..n) = the values the n elements of row data `src` of `type` stand for; the same floats
// ggml's dequantize_row_* give. A block whose f16 scale is Inf or NaN gives Inf/NaN values, as the
// format defines (no error). Errors: unsupported type, n < 0 or not a multiple of the block size.
void dequantize_row(DType type, const void* src, float* dst, int64_t n);

// Encodes n floats as a row of `type` (dst holds quantized_row_bytes(type, n) bytes).
// `importance` (optional, n non-negative finite weights, e.g. from an importance matrix) weights
// each element's squared error in the scale searches; without it each format uses the error
// weighting of its reference quantizer.
void quantize_row(DType type, const float* src, void* dst, int64_t n, const float* importance = nullptr);

// sum_i w[i] * x[i] over a row of n elements of `weight_type`: the row dequantized, the products
// accumulated in double. The reference that faster kernels are tested against.
float vec_dot(DType weight_type, const void* w_row, const float* x, int64_t n);

// The 16 values of IQ4_NL / IQ4_XS, indexed by the 4-bit code.
extern const int8_t kIq4NonLinearValues[16];

}  // namespace slm
