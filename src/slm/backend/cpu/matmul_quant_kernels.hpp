// Instruction-set kernels for block-quantized weights, called by matmul_quant.cpp after its checks.
#pragma once

#include <cstdint>

#include "slm/format/dtype.hpp"

namespace slm::cpu::kernels {

// True for the weight types matmul_quant_avx512 handles (Q8_0, Q4_0, Q4_K, Q6_K).
bool quant_avx512_handles(DType w_type);

// y[t][o] = sum_i w[o][i] * x[t][i] with the activations rounded to 8-bit blocks of 32 (one f32
// scale each) and integer products per block. Arguments already checked: sizes > 0, n_in a multiple
// of 32, buffers non-null. qx: n_tokens * n_in bytes, dx: 2 * n_tokens * n_in / 32 floats of scratch.
void matmul_quant_avx512(DType w_type, const uint8_t* w, int64_t n_out, int64_t n_in, const float* x,
                         int64_t n_tokens, float* y, int8_t* qx, float* dx);

}  // namespace slm::cpu::kernels
