// Instruction-set kernels for block-quantized weights, called by matmul_quant.cpp after its checks
// and a run-time check of the CPU. One implementation (matmul_quant_impl.hpp) built three ways.
#pragma once

#include <cstdint>

#include "slm/format/dtype.hpp"

namespace slm::cpu::kernels {

// y[t][o] = sum_i w[o][i] * x[t][i] with the activations rounded to 8-bit blocks of 32 (one f32
// scale each) and integer products per block, for Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL, Q2_K, Q3_K,
// Q4_K, Q5_K, Q6_K and IQ4_XS weights. Arguments already checked: sizes > 0, n_in a multiple of the
// block size, buffers non-null.
void matmul_quant_avx2(DType w_type, const uint8_t* w, int64_t n_out, int64_t n_in, const float* x,
                       int64_t n_tokens, float* y);
void matmul_quant_avx512(DType w_type, const uint8_t* w, int64_t n_out, int64_t n_in, const float* x,
                         int64_t n_tokens, float* y);
void matmul_quant_avx512vnni(DType w_type, const uint8_t* w, int64_t n_out, int64_t n_in, const float* x,
                             int64_t n_tokens, float* y);

}  // namespace slm::cpu::kernels
