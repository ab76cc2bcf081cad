// Weights in GGUF block formats (Q4_0 .. Q8_0, Q2_K .. Q8_K, IQ4_NL, IQ4_XS) on the CPU: a correct,
// simple reference path that dequantizes tiles of weight rows to f32 and multiplies them. matmul()
// and to_f32() (matmul.hpp) send block-quantized types here; faster kernels replace it per format.
#pragma once

#include <cstdint>

#include "slm/format/dtype.hpp"
#include "slm/format/quant.hpp"

namespace slm::cpu {

// y[t][o] = sum_i w[o][i] * x[t][i]; w: n_out rows of n_in elements of a block format (n_in a
// multiple of its block size), rows contiguous. OpenMP threads over tiles of rows.
void matmul_quant_ref(DType w_type, const void* w, int64_t n_out, int64_t n_in, const float* x, int64_t n_tokens,
                      float* y);

// The same through the fastest path for w_type: with AVX-512 (F, BW, VL), Q8_0, Q4_0, Q4_K and Q6_K
// weights use integer block products with the activations rounded to 8 bits per block of 32 (error per
// output at most sum over blocks of max|x_block| / 254 * sum|w_block|); other types and machines
// take matmul_quant_ref.
void matmul_quant(DType w_type, const void* w, int64_t n_out, int64_t n_in, const float* x, int64_t n_tokens,
                  float* y);
// True when matmul_quant takes an integer kernel for w_type on this machine.
bool matmul_quant_has_simd(DType w_type);

}  // namespace slm::cpu
